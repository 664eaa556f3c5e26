//! Checks that need the server: one ssh connection runs a small POSIX sh
//! script (sent on stdin, so the user's login shell does not matter) that
//! prints tagged sections; everything is judged locally.

use std::collections::BTreeMap;
use std::time::Duration;

use super::report::{Check, Status};
use super::ssh::{self, Ssh};
use super::sshd::{self, ClientAlive};

/// Generous: ConnectTimeout is 10 s, and the script only reads files.
const REMOTE_LIMIT: Duration = Duration::from_secs(40);
const TAG: &str = "@@abide-doctor ";

/// Read-only: it looks for abide, asks sshd and logind for their settings, and
/// reads world-readable config files. No sudo (a refused sudo mails the admin).
const SCRIPT: &str = r#"
echo '@@abide-doctor abide'
d="$HOME/.local/share/abide/bin/@VERSION@/abide"
if [ -x "$d" ]; then
  echo "deployed $d"; "$d" --version 2>&1 | head -n 1
elif p=$(command -v abide 2>/dev/null); then
  echo "path $p"; abide --version 2>&1 | head -n 1
else
  for p in "$HOME/.cargo/bin/abide" "$HOME/.local/bin/abide" /usr/local/bin/abide /opt/homebrew/bin/abide; do
    if [ -x "$p" ]; then echo "offpath $p"; "$p" --version 2>&1 | head -n 1; break; fi
  done
fi
echo '@@abide-doctor sshd-T'
for s in sshd /usr/sbin/sshd /usr/local/sbin/sshd; do
  if command -v "$s" >/dev/null 2>&1; then
    out=$("$s" -T 2>&1); st=$?
    echo "status $st"
    printf '%s\n' "$out" | grep -i '^clientalive'
    [ "$st" -ne 0 ] && printf '%s\n' "$out" | head -n 1
    break
  fi
done
echo '@@abide-doctor sshd-files'
for f in /etc/ssh/sshd_config /etc/ssh/sshd_config.d/*; do
  if [ -f "$f" ] && [ -r "$f" ]; then echo "@@abide-doctor file $f"; cat "$f"; echo; fi
done
echo '@@abide-doctor unit'
for u in ssh sshd; do
  if systemctl cat "$u.service" >/dev/null 2>&1; then echo "$u"; break; fi
done
echo '@@abide-doctor logind'
u=$(id -un)
echo "user $u"
if [ -d /run/systemd/system ]; then echo "systemd yes"; else echo "systemd no"; fi
if command -v busctl >/dev/null 2>&1; then
  busctl get-property org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager KillUserProcesses 2>/dev/null | sed 's/^/kill /'
  busctl get-property org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager KillExcludeUsers 2>/dev/null | sed 's/^/exclude /'
fi
if command -v loginctl >/dev/null 2>&1; then loginctl show-user "$u" -p Linger 2>/dev/null | sed 's/^/linger /'; fi
if [ -f "/var/lib/systemd/linger/$u" ]; then echo "linger-file yes"; fi
for f in /etc/systemd/logind.conf /etc/systemd/logind.conf.d/*.conf /run/systemd/logind.conf.d/*.conf /usr/lib/systemd/logind.conf.d/*.conf; do
  if [ -r "$f" ]; then grep -E '^[[:space:]]*(KillUserProcesses|KillExcludeUsers)=' "$f" | sed 's/^[[:space:]]*/conf /'; fi
done
echo '@@abide-doctor end'
"#;

/// The script's output, by section name.
#[derive(Debug, Default)]
pub struct Remote {
    sections: BTreeMap<String, String>,
}

impl Remote {
    pub fn parse(stdout: &str) -> Remote {
        let mut sections = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in stdout.lines() {
            if let Some(name) = line.strip_prefix(TAG) {
                current = Some(name.trim().to_string());
                sections.insert(name.trim().to_string(), String::new());
            } else if let Some(name) = &current {
                let s: &mut String = sections.get_mut(name).expect("inserted");
                s.push_str(line);
                s.push('\n');
            }
            // Lines before the first tag: shell start-up noise, ignored.
        }
        Remote { sections }
    }

    pub fn section_text(&self, name: &str) -> &str {
        self.sections.get(name).map(String::as_str).unwrap_or("")
    }

    fn complete(&self) -> bool {
        self.sections.contains_key("end")
    }

    fn files(&self) -> Vec<(String, String)> {
        self.sections
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("file ").map(|p| (p.to_string(), v.clone())))
            .collect()
    }

    pub fn unit(&self) -> Option<&str> {
        self.section_text("unit")
            .lines()
            .next()
            .map(str::trim)
            .filter(|u| !u.is_empty())
    }

    /// sshd -T when it worked, else the config files.
    pub fn client_alive(&self) -> Option<ClientAlive> {
        let t = self.section_text("sshd-T");
        let ok = t.lines().any(|l| l.trim() == "status 0");
        let mut from_files = sshd::from_files(&self.files());
        match (
            ok.then(|| sshd::from_sshd_t(t)).flatten(),
            from_files.as_mut(),
        ) {
            // sshd -T is authoritative; the files still say where to edit.
            (Some(mut ca), Some(f)) => {
                ca.interval_file = f.interval_file.take();
                ca.has_drop_ins = f.has_drop_ins;
                ca.conditional = std::mem::take(&mut f.conditional);
                Some(ca)
            }
            (Some(ca), None) => Some(ca),
            (None, _) => from_files,
        }
    }
}

/// Runs the script on `host`. `Err` carries ssh's reason when it could not.
pub fn run(ssh_cmd: &Ssh, host: &str) -> anyhow::Result<Result<Remote, String>> {
    let cmd = ssh_cmd.batch(host, &[], &["sh", "-s"]);
    let script = SCRIPT.replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    let out = ssh::run_with_timeout(cmd, &script, REMOTE_LIMIT)?;
    if out.timed_out {
        return Ok(Err(format!(
            "no answer within {} s",
            REMOTE_LIMIT.as_secs()
        )));
    }
    let remote = Remote::parse(&out.stdout);
    if !remote.complete() {
        let reason = match ssh::last_line(&out.stderr) {
            "" => match out.status {
                Some(s) => format!("ssh exited with {s} before the checks finished"),
                None => "ssh ended before the checks finished".to_string(),
            },
            line => line.to_string(),
        };
        return Ok(Err(reason));
    }
    Ok(Ok(remote))
}

/// Where abide is on the server (on the PATH or not), if anywhere.
pub fn abide_path(remote: &Remote) -> Option<String> {
    let section = remote.section_text("abide");
    let first = section.lines().next().unwrap_or("");
    first
        .strip_prefix("path ")
        .or_else(|| first.strip_prefix("deployed "))
        .or_else(|| first.strip_prefix("offpath "))
        .map(|p| p.trim().to_string())
}

/// abide on the server: installed by abide itself, or on the PATH ssh commands
/// get with the same version. Anything else is context, not a problem:
/// `abide HOST` installs its own version there on first connect.
pub fn abide_check(remote: &Remote, host: &str, local_version: &str) -> Check {
    let id = "server.abide";
    let section = remote.section_text("abide");
    let mut lines = section.lines();
    let first = lines.next().unwrap_or("");
    let version = lines
        .next()
        .map(|v| {
            // `abide 0.1.0 (protocol 1)`: the version is the word after the name.
            let v = v.trim().trim_start_matches("abide").trim();
            v.split_whitespace().next().unwrap_or("").to_string()
        })
        .unwrap_or_default();
    let deploys = format!("`abide {host}` installs abide {local_version} there over ssh on first connect (--no-deploy would use the one on the PATH).");
    if let Some(path) = first.strip_prefix("deployed ") {
        return Check::new(
            id,
            Status::Ok,
            format!("abide {version} installed on {host} by abide itself ({path})."),
            "",
        );
    }
    if let Some(path) = first.strip_prefix("path ") {
        if version == local_version {
            return Check::new(
                id,
                Status::Ok,
                format!("abide {version} installed on {host} ({path})."),
                "",
            );
        }
        let shown = if version.is_empty() {
            "an unknown version".to_string()
        } else {
            version
        };
        return Check::new(
            id,
            Status::Info,
            format!("abide on {host} is {shown} ({path}), here it is {local_version}."),
            deploys,
        );
    }
    if let Some(path) = first.strip_prefix("offpath ") {
        return Check::new(
            id,
            Status::Info,
            format!("abide is at {path} on {host}, but not on the PATH that ssh commands get."),
            format!("Put it on that PATH (see `ssh {host} 'echo $PATH'`), e.g. `sudo install {path} /usr/local/bin/`."),
        );
    }
    Check::new(
        id,
        Status::Info,
        format!("abide is not installed on {host} yet."),
        deploys,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "motd noise\n@@abide-doctor abide\npath /usr/local/bin/abide\nabide 0.1.0\n\
        @@abide-doctor sshd-T\nstatus 1\nsshd: no hostkeys available -- exiting.\n\
        @@abide-doctor sshd-files\n@@abide-doctor file /etc/ssh/sshd_config\nClientAliveInterval 30\n\n\
        @@abide-doctor unit\nssh\n@@abide-doctor logind\nuser alice\n@@abide-doctor end\n";

    #[test]
    fn parses_sections_and_falls_back_to_files() {
        let r = Remote::parse(SAMPLE);
        assert!(r.complete());
        assert_eq!(r.unit(), Some("ssh"));
        let ca = r.client_alive().unwrap();
        assert_eq!((ca.interval, ca.count), (30, 3));
        assert_eq!(ca.source, "/etc/ssh/sshd_config");
        assert_eq!(abide_check(&r, "h", "0.1.0").status, Status::Ok);
        let other = abide_check(&r, "h", "0.2.0");
        assert_eq!(other.status, Status::Info);
        assert!(other.summary.contains("0.1.0"));
        assert!(other.advice.contains("installs abide 0.2.0"));
        // --version names the protocol too.
        let r = Remote::parse(&SAMPLE.replace("abide 0.1.0\n", "abide 0.1.0 (protocol 1)\n"));
        assert_eq!(abide_check(&r, "h", "0.1.0").status, Status::Ok);
    }

    #[test]
    fn sshd_t_wins_when_permitted() {
        let out = SAMPLE.replace(
            "status 1\nsshd: no hostkeys available -- exiting.\n",
            "status 0\nclientaliveinterval 0\nclientalivecountmax 3\n",
        );
        let ca = Remote::parse(&out).client_alive().unwrap();
        assert_eq!(ca.interval, 0);
        assert_eq!(ca.source, "sshd -T");
        assert_eq!(ca.interval_file.as_deref(), Some("/etc/ssh/sshd_config"));
    }

    #[test]
    fn abide_missing_or_off_path() {
        let missing = Remote::parse("@@abide-doctor abide\n@@abide-doctor end\n");
        let c = abide_check(&missing, "h", "0.1.0");
        assert_eq!(c.status, Status::Info);
        assert!(c.summary.contains("not installed"));
        assert!(c.advice.contains("installs abide 0.1.0 there"));
        let deployed = Remote::parse("@@abide-doctor abide\ndeployed /home/a/.local/share/abide/bin/0.1.0/abide\nabide 0.1.0 (protocol 1)\n@@abide-doctor end\n");
        let c = abide_check(&deployed, "h", "0.1.0");
        assert_eq!(c.status, Status::Ok);
        assert!(c.summary.contains("by abide itself"), "{}", c.summary);
        assert_eq!(
            abide_path(&deployed).as_deref(),
            Some("/home/a/.local/share/abide/bin/0.1.0/abide")
        );
        let off = Remote::parse("@@abide-doctor abide\noffpath /home/a/.cargo/bin/abide\nabide 0.1.0\n@@abide-doctor end\n");
        assert!(abide_check(&off, "h", "0.1.0")
            .summary
            .contains("not on the PATH"));
    }

    #[test]
    fn the_script_runs_here_and_reports_every_section() {
        // Runs the real script on this machine (read-only, no network): every
        // section must appear whatever is installed, and the parser must cope.
        let out = std::process::Command::new("sh")
            .args(["-c", SCRIPT])
            .output()
            .expect("sh");
        let r = Remote::parse(&String::from_utf8_lossy(&out.stdout));
        assert!(r.complete(), "{}", String::from_utf8_lossy(&out.stdout));
        for s in ["abide", "sshd-T", "sshd-files", "unit", "logind"] {
            assert!(r.sections.contains_key(s), "missing section {s}");
        }
        assert!(r.section_text("logind").contains("user "));
    }

    #[test]
    fn the_script_is_posix_sh() {
        // `sh -n` parses without running: catches a quoting slip in SCRIPT.
        let status = std::process::Command::new("sh")
            .args(["-n", "-c", SCRIPT])
            .status()
            .expect("sh");
        assert!(status.success());
    }
}
