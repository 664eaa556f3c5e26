//! `abide doctor` through the real binary, with a temporary home
//! (ABIDE_SSH_HOME and HOME) and a fake `ssh` first on PATH: a shell script
//! that logs its arguments, answers `ssh -G` with what the test wrote, and
//! plays the server. Nothing touches the real ~/.ssh or the network; one test
//! uses the real `ssh -G` (configuration parsing only, no connection).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `ssh -G` output as OpenSSH prints it, with the keepalive values filled in.
fn g_output(interval: u64, count: u64) -> String {
    format!(
        "host web\nuser me\nhostname web\nport 22\ncontrolmaster false\ntcpkeepalive yes\n\
         serveralivecountmax {count}\nserveraliveinterval {interval}\nconnecttimeout none\ncontrolpersist no\n"
    )
}

/// Output of abide's remote script on a server with abide (this version:
/// `@VERSION@`, see `remote_tight`), sshd -T not
/// permitted, ClientAlive set too tight in a drop-in, and logind killing
/// user processes.
const REMOTE_TIGHT: &str = "\
@@abide-doctor abide
path /usr/local/bin/abide
abide @VERSION@
@@abide-doctor sshd-T
status 1
sshd: no hostkeys available -- exiting.
@@abide-doctor sshd-files
@@abide-doctor file /etc/ssh/sshd_config
Include /etc/ssh/sshd_config.d/*.conf
PasswordAuthentication no
@@abide-doctor file /etc/ssh/sshd_config.d/50-cloud.conf
ClientAliveInterval 10
ClientAliveCountMax 1
@@abide-doctor unit
ssh
@@abide-doctor logind
user me
systemd yes
kill b true
exclude as 1 \"root\"
linger Linger=no
@@abide-doctor end
";

/// `REMOTE_TIGHT` with the same abide version as this one on the server.
fn remote_tight() -> String {
    REMOTE_TIGHT.replace("@VERSION@", env!("CARGO_PKG_VERSION"))
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    bin: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        let bin = root.join("bin");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let env = Env {
            _dir: dir,
            root,
            home,
            bin,
        };
        env.set_g(&g_output(0, 3));
        env.set_remote(&remote_tight(), 0);
        env.write_fake_ssh();
        env
    }

    fn ssh_dir(&self) -> PathBuf {
        self.home.join(".ssh")
    }

    fn config(&self) -> PathBuf {
        self.ssh_dir().join("config")
    }

    fn write_config(&self, text: &str) {
        fs::create_dir_all(self.ssh_dir()).unwrap();
        fs::write(self.config(), text).unwrap();
    }

    /// What the fake answers to `ssh -G`.
    fn set_g(&self, text: &str) {
        fs::write(self.root.join("G"), text).unwrap();
    }

    fn set_g_failure(&self, stderr: &str) {
        fs::write(self.root.join("G"), "").unwrap();
        fs::write(self.root.join("G_stderr"), stderr).unwrap();
    }

    /// How the fake answers `abide server --probe-udp`: "real" or "silent".
    fn set_probe(&self, mode: &str) {
        fs::write(self.root.join("probe"), mode).unwrap();
    }

    /// What the fake prints for the remote script, and its exit status.
    fn set_remote(&self, stdout: &str, status: i32) {
        fs::write(self.root.join("remote"), stdout).unwrap();
        fs::write(self.root.join("remote_status"), status.to_string()).unwrap();
    }

    fn write_fake_ssh(&self) {
        let fake = self.root.display();
        let abide = env!("CARGO_BIN_EXE_abide");
        let script = format!(
            r#"#!/bin/sh
# Fake ssh for abide's tests.
echo "$*" >> "{fake}/calls"
for a in "$@"; do
  if [ "$a" = "-G" ]; then
    if [ -s "{fake}/G_stderr" ]; then cat "{fake}/G_stderr" >&2; exit 255; fi
    cat "{fake}/G"; exit 0
  fi
done
last=""
for a in "$@"; do last=$a; done
case "$last" in
  *"server --probe-udp")
    # The UDP probe: a real `abide server --probe-udp` reached over loopback,
    # a line naming a port nobody answers on, or an abide too old to know it.
    case "$(cat "{fake}/probe" 2>/dev/null)" in
      real) SSH_CONNECTION="127.0.0.1 40000 127.0.0.1 22" exec "{abide}" server --probe-udp ;;
      silent) cat "{fake}/probe_line"; exec sleep 30 ;;
    esac
    echo "error: unexpected argument '--probe-udp' found" >&2
    exit 2
    ;;
  -s)
    cat > "{fake}/script"
    cat "{fake}/remote"
    if [ -s "{fake}/remote_stderr" ]; then cat "{fake}/remote_stderr" >&2; fi
    exit "$(cat "{fake}/remote_status")"
    ;;
  cat)
    # An echo behind a NAT that forgets flows idle for 3 s or more: the
    # line sent after that is answered with a reset.
    IFS= read -r first || exit 0
    printf '%s\n' "$first"
    start=$(date +%s)
    IFS= read -r second || exit 0
    now=$(date +%s)
    if [ $((now - start)) -ge 3 ]; then
      echo "client_loop: send disconnect: Broken pipe" >&2
      exit 255
    fi
    printf '%s\n' "$second"
    exec cat
    ;;
esac
echo "fake ssh: unexpected arguments: $*" >&2
exit 255
"#
        );
        common::write_executable(&self.bin.join("ssh"), &script);
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.root.join("calls")).unwrap_or_default()
    }

    fn doctor(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(env!("CARGO_BIN_EXE_abide"))
            .arg("doctor")
            .args(args)
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("ABIDE_SSH_HOME", &self.home)
            .env("NO_COLOR", "1")
            .env_remove("ABIDE_PROBE_IDLE_DURATIONS")
            .output()
            .unwrap()
    }

    fn doctor_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.doctor(&all);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not json ({e}):\n{}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap(), v)
    }

    fn backups(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.ssh_dir()) else {
            return Vec::new();
        };
        let mut b: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(".abide-backup-")
            })
            .collect();
        b.sort();
        b
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {v:#}"))
}

/// `needle` lines appear in `hay` in the same order (other lines may be between).
fn in_order(needle: &str, hay: &str) -> bool {
    let mut rest = hay.lines();
    needle.lines().all(|n| rest.any(|h| h == n))
}

#[test]
fn a_config_without_keepalives_is_a_problem_explained_by_nat_timeouts() {
    let env = Env::new();
    env.write_config("Host web\n    User me\n");
    let out = env.doctor(&["web", "--no-remote"]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("✗ ServerAliveInterval 0 (off)"), "{t}");
    assert!(t.contains("dies behind any NAT or firewall"), "{t}");
    assert!(t.contains("e.g. after 60 s"), "{t}");
    assert!(t.contains("abide doctor web --fix"), "{t}");
    assert!(!t.contains('\x1b'), "no colours when piped");
    // The effective values came from `ssh -G web`, asked the right way.
    assert!(
        env.calls().lines().any(|l| l == "-G -- web"),
        "{}",
        env.calls()
    );
}

#[test]
fn a_config_with_keepalives_passes() {
    let env = Env::new();
    env.set_g(&g_output(15, 4));
    let (code, v) = env.doctor_json(&["web", "--no-remote"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(check(&v, "client.server_alive_interval")["status"], "ok");
    assert_eq!(check(&v, "client.server_alive_count_max")["status"], "ok");
    assert_eq!(check(&v, "client.tcp_keepalive")["status"], "info");
    assert_eq!(v["host"], "web");
}

#[test]
fn a_long_interval_is_a_problem_too() {
    let env = Env::new();
    env.set_g(&g_output(300, 3));
    let (code, v) = env.doctor_json(&["web", "--no-remote"]);
    assert_eq!(code, 1);
    let c = check(&v, "client.server_alive_interval");
    assert_eq!(c["status"], "problem");
    assert!(
        c["summary"].as_str().unwrap().contains("silent for 5 min"),
        "{c}"
    );
}

#[test]
fn fix_twice_changes_once_keeps_a_backup_and_goes_before_host_star() {
    let env = Env::new();
    let original = "# my settings\nHost *\n    ServerAliveInterval 0\n\nHost web\n    User me\n";
    env.write_config(original);
    fs::set_permissions(env.config(), fs::Permissions::from_mode(0o640)).unwrap();

    let out = env.doctor(&["web", "--fix", "--no-remote"]);
    let t = text(&out);
    let after = fs::read_to_string(env.config()).unwrap();
    // The new block must come before `Host *`, which sets the option first.
    let new_block = "Host web\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n\n# my settings\nHost *\n";
    assert!(after.contains(new_block), "{after}");
    assert!(
        in_order(original, &after),
        "original lines kept in order:\n{after}"
    );
    // The diff is shown, with the added lines.
    assert!(
        t.contains("+Host web\n  +    ServerAliveInterval 15"),
        "{t}"
    );
    let backups = env.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(fs::read_to_string(&backups[0]).unwrap(), original);
    assert_eq!(
        fs::metadata(&backups[0]).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(
        fs::metadata(env.config()).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Second run, even with ssh still reporting the old value: no change.
    let out2 = env.doctor(&["web", "--fix", "--no-remote"]);
    assert_eq!(fs::read_to_string(env.config()).unwrap(), after);
    assert_eq!(env.backups().len(), 1);
    let t2 = text(&out2);
    assert!(t2.contains("already set on line"), "{t2}");
    assert!(t2.contains("Nothing to change"), "{t2}");

    // And once ssh reports the new values, the doctor is satisfied.
    env.set_g(&g_output(15, 4));
    let out3 = env.doctor(&["web", "--fix", "--no-remote"]);
    assert_eq!(out3.status.code(), Some(0), "{}", text(&out3));
    assert_eq!(fs::read_to_string(env.config()).unwrap(), after);
}

#[test]
fn fix_keeps_comments_includes_and_match_blocks() {
    let env = Env::new();
    fs::create_dir_all(env.ssh_dir().join("conf.d")).unwrap();
    fs::write(
        env.ssh_dir().join("conf.d/work"),
        "Host *.work\n  ServerAliveInterval 5\n",
    )
    .unwrap();
    let original = "\
# Managed by hand.
Include conf.d/*

Host web
    # the box under the desk
    User me

Match exec \"test -n \\\"$VPN\\\"\"
    ProxyJump bastion
";
    env.write_config(original);
    let (code, v) = env.doctor_json(&["web", "--fix", "--no-remote"]);
    // The fake ssh still says 0 after the change, so the client check fails.
    assert_eq!(code, 1, "{v:#}");
    let after = fs::read_to_string(env.config()).unwrap();
    assert!(in_order(original, &after), "{after}");
    // The Include may set ServerAliveInterval (its file mentions it), so the
    // setting cannot simply be appended to `Host web` below it: a new block
    // goes above the Include, and `Host *` keeps the global lines global.
    let expected_top = "# Managed by hand.\n# Added by `abide doctor --fix`";
    assert!(after.starts_with(expected_top), "{after}");
    assert!(
        after.contains("Host web\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n\n"),
        "{after}"
    );
    assert!(after.contains("Host *\nInclude conf.d/*\n"), "{after}");
    assert!(after.contains("Match exec \"test -n \\\"$VPN\\\"\"\n    ProxyJump bastion\n"));
    assert_eq!(v["fix"]["changed"], true);
    assert!(v["fix"]["diff"].as_str().unwrap().contains("+Host *"));
}

#[test]
fn fix_appends_to_the_hosts_own_block_when_nothing_earlier_sets_it() {
    let env = Env::new();
    env.write_config("Host web\n\tUser me\n\nHost *\n\tForwardAgent no\n");
    let out = env.doctor(&["web", "--fix", "--no-remote"]);
    assert!(out.status.code().is_some());
    assert_eq!(
        fs::read_to_string(env.config()).unwrap(),
        "Host web\n\tUser me\n\tServerAliveInterval 15\n\tServerAliveCountMax 4\n\nHost *\n\tForwardAgent no\n"
    );
}

#[test]
fn fix_creates_a_missing_ssh_directory_and_config_with_safe_modes() {
    let env = Env::new();
    assert!(!env.ssh_dir().exists());
    let out = env.doctor(&["web", "--fix", "--no-remote"]);
    assert!(out.status.code().is_some(), "no crash");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.ssh_dir()), 0o700);
    assert_eq!(mode(&env.config()), 0o600);
    let cfg = fs::read_to_string(env.config()).unwrap();
    assert!(
        cfg.contains("Host web\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n"),
        "{cfg}"
    );
    assert!(env.backups().is_empty(), "nothing to back up");
    assert!(
        text(&out).contains("Created ~/.ssh/config (mode 0600)"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_read_only_config_is_a_clear_error_not_a_panic() {
    let env = Env::new();
    let original = "Host web\n  User me\n";
    env.write_config(original);
    fs::set_permissions(env.config(), fs::Permissions::from_mode(0o444)).unwrap();
    let out = env.doctor(&["web", "--fix", "--no-remote"]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("is read-only (mode 0444); not changing it"),
        "{t}"
    );
    assert!(
        t.contains("+  ServerAliveInterval 15"),
        "shows what to add:\n{t}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert_eq!(fs::read_to_string(env.config()).unwrap(), original);
    assert!(env.backups().is_empty());
}

#[test]
fn dash_f_checks_and_fixes_that_file_only() {
    let env = Env::new();
    env.write_config("Host web\n  User me\n");
    let other = env.root.join("other_config");
    fs::write(&other, "Host web\n  Port 2222\n").unwrap();
    let other_s = other.display().to_string();
    env.doctor(&["web", "-F", &other_s, "--fix", "--no-remote"]);
    assert_eq!(
        fs::read_to_string(env.config()).unwrap(),
        "Host web\n  User me\n"
    );
    assert_eq!(
        fs::read_to_string(&other).unwrap(),
        "Host web\n  Port 2222\n  ServerAliveInterval 15\n  ServerAliveCountMax 4\n"
    );
    assert!(
        env.calls()
            .lines()
            .any(|l| l == format!("-F {other_s} -G -- web")),
        "ssh must read the same file:\n{}",
        env.calls()
    );
}

#[test]
fn all_hosts_fixes_host_star() {
    let env = Env::new();
    env.write_config("Host web\n  User me\n");
    let (_, v) = env.doctor_json(&["--all-hosts", "--fix"]);
    let after = fs::read_to_string(env.config()).unwrap();
    assert!(
        after.ends_with("\nHost *\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n"),
        "{after}"
    );
    assert!(v["host"].is_null());
    // Without HOST, ssh is asked about a name no Host block can mean.
    assert!(
        env.calls().contains("-G -- abide-doctor-any-host.invalid"),
        "{}",
        env.calls()
    );
}

#[test]
fn server_checks_report_sshd_logind_and_abide() {
    let env = Env::new();
    env.set_g(&g_output(15, 4));
    let out = env.doctor(&["web"]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains(&format!(
            "✓ abide {} installed on web (/usr/local/bin/abide).",
            env!("CARGO_PKG_VERSION")
        )),
        "{t}"
    );
    assert!(
        t.contains("✗ sshd: ClientAliveInterval 10, ClientAliveCountMax 1 (/etc/ssh/sshd_config.d/50-cloud.conf)"),
        "{t}"
    );
    assert!(t.contains("✗ systemd-logind KillUserProcesses=yes"), "{t}");
    assert!(t.contains("KillExcludeUsers=me"), "{t}");
    assert!(
        t.contains("· UDP not probed: the abide on web is too old to answer the probe."),
        "{t}"
    );
    // Server lines to paste, never an edit of root's files.
    assert!(
        t.contains("/etc/ssh/sshd_config.d/50-cloud.conf (replace the ClientAlive lines there)"),
        "{t}"
    );
    assert!(t.contains("    ClientAliveInterval 15\n  "), "{t}");
    assert!(
        t.contains("sudo sshd -t && sudo systemctl reload ssh"),
        "{t}"
    );
    // The remote side ran non-interactively and got the script on stdin.
    let remote_call = env
        .calls()
        .lines()
        .find(|l| l.ends_with("sh -s"))
        .unwrap()
        .to_string();
    assert!(remote_call.contains("-o BatchMode=yes"), "{remote_call}");
    assert!(
        remote_call.contains("-o ConnectTimeout=10"),
        "{remote_call}"
    );
    assert!(remote_call.ends_with("-- web sh -s"), "{remote_call}");
    let script = fs::read_to_string(env.root.join("script")).unwrap();
    assert!(script.contains("sshd") && script.contains("KillUserProcesses"));
}

#[test]
fn a_healthy_server_and_client_exit_zero() {
    let env = Env::new();
    env.set_g(&g_output(15, 4));
    let healthy = remote_tight()
        .replace(
            "ClientAliveInterval 10\nClientAliveCountMax 1\n",
            "ClientAliveInterval 30\nClientAliveCountMax 3\n",
        )
        .replace("kill b true\n", "kill b false\n");
    env.set_remote(&healthy, 0);
    let (code, v) = env.doctor_json(&["web"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(check(&v, "server.client_alive")["status"], "ok");
    assert_eq!(check(&v, "server.logind")["status"], "ok");
    assert_eq!(check(&v, "path.udp")["status"], "info");
}

#[test]
fn an_unreachable_server_is_reported_with_the_explanation() {
    let env = Env::new();
    env.set_g(&g_output(15, 4));
    env.set_remote("", 255);
    fs::write(
        env.root.join("remote_stderr"),
        "ssh: connect to host web port 22: Connection refused\n",
    )
    .unwrap();
    let (code, v) = env.doctor_json(&["web"]);
    assert_eq!(code, 1);
    let c = check(&v, "server.reachable");
    assert_eq!(c["status"], "problem");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{c}"
    );
    assert!(
        c["advice"].as_str().unwrap().contains("abide explain"),
        "{c}"
    );
}

#[test]
fn a_broken_config_is_reported_with_the_explanation() {
    let env = Env::new();
    env.set_g_failure("Bad owner or permissions on /home/me/.ssh/config\n");
    let (code, v) = env.doctor_json(&["web", "--no-remote"]);
    assert_eq!(code, 1);
    let c = check(&v, "client.ssh_config");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("Bad owner or permissions"),
        "{c}"
    );
    assert!(
        c["advice"]
            .as_str()
            .unwrap()
            .contains("ssh refuses a config file others can write"),
        "{c}"
    );
}

#[test]
fn probe_idle_finds_the_nat_timeout_between_the_durations() {
    let env = Env::new();
    env.set_g(&g_output(0, 3));
    // The fake path forgets flows idle for 3 s: 1 s survives, 4 s does not.
    let (code, v) = env.doctor_json(&["web", "--probe-idle", "--probe-idle-durations", "1,4"]);
    assert_eq!(code, 1);
    let results = v["probe_idle"].as_array().unwrap();
    assert_eq!(results[0]["idle_secs"], 1);
    assert_eq!(results[0]["result"], "survived");
    assert_eq!(results[1]["idle_secs"], 4);
    assert_eq!(results[1]["result"], "dropped");
    assert!(results[1]["reason"]
        .as_str()
        .unwrap()
        .contains("Broken pipe"));
    let c = check(&v, "path.idle_timeout");
    assert_eq!(c["status"], "problem");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("survived 1 s idle but not 4 s"),
        "{c}"
    );
    // The probe flows must not keep themselves alive.
    let calls = env.calls();
    let flows: Vec<&str> = calls.lines().filter(|l| l.ends_with(" cat")).collect();
    assert_eq!(flows.len(), 2);
    for f in flows {
        assert!(
            f.contains("ServerAliveInterval=0") && f.contains("TCPKeepAlive=no"),
            "{f}"
        );
        assert!(f.contains("ControlPath=none"), "{f}");
    }
}

#[test]
fn probe_idle_durations_come_from_the_environment_too() {
    let env = Env::new();
    env.set_g(&g_output(15, 4));
    let out = Command::new(env!("CARGO_BIN_EXE_abide"))
        .args(["doctor", "web", "--probe-idle", "--json"])
        .env(
            "PATH",
            format!("{}:{}", env.bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("ABIDE_SSH_HOME", &env.home)
        .env("ABIDE_PROBE_IDLE_DURATIONS", "1")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["probe_idle"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["result"], "survived");
    assert_eq!(check(&v, "path.idle_timeout")["status"], "ok");
}

#[test]
fn bad_usage_exits_2() {
    let env = Env::new();
    for args in [
        &["--fix"][..],
        &["web", "--all-hosts"][..],
        &["--probe-idle"][..],
        &["web", "--probe-idle", "--no-remote"][..],
    ] {
        let out = env.doctor(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert!(!env.config().exists());
}

/// Finds the real ssh outside the fake's directory, if installed.
fn real_ssh() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("ssh"))
            .find(|p| p.is_file())
    })
}

#[test]
fn the_real_ssh_uses_the_values_fix_wrote() {
    // Real `ssh -G -F file` parses the file without connecting anywhere; -F
    // also keeps /etc/ssh/ssh_config out. This checks placement against the
    // one authority that matters.
    let Some(ssh) = real_ssh() else {
        eprintln!("no ssh installed: placement is covered by the fake-ssh tests only");
        return;
    };
    let env = Env::new();
    let extra = env.root.join("extra.conf");
    fs::write(&extra, "Host db\n    ServerAliveInterval 5\n").unwrap();
    let cfg = env.root.join("cfg");
    let original = format!(
        "# top comment\nHost *.internal\n    User admin\n\nMatch exec \"false\"\n    ServerAliveInterval 300\n\n\
         Include {}\n\nHost *\n    ServerAliveInterval 0\n    ServerAliveCountMax 2\n\nHost web\n    HostName 192.0.2.10\n",
        extra.display()
    );
    fs::write(&cfg, &original).unwrap();
    let cfg_s = cfg.display().to_string();
    let ssh_s = ssh.display().to_string();
    let g = |host: &str| {
        let out = Command::new(&ssh)
            .args(["-G", "-F", &cfg_s, host])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(g("web").contains("\nserveraliveinterval 0\n"));

    let out = env.doctor(&["web", "--ssh", &ssh_s, "-F", &cfg_s, "--fix", "--no-remote"]);
    let after = fs::read_to_string(&cfg).unwrap();
    assert!(in_order(&original, &after), "{after}");
    let eff = g("web");
    assert!(eff.contains("\nserveraliveinterval 15\n"), "{after}\n{eff}");
    // ServerAliveCountMax 2 with 15 s gives 30 s: acceptable, and set by the
    // user's `Host *`, so it is left alone rather than duplicated.
    assert!(eff.contains("\nserveralivecountmax 2\n"), "{eff}");
    assert_eq!(after.matches("ServerAliveCountMax").count(), 1, "{after}");
    // Other hosts are unaffected.
    assert!(g("other").contains("\nserveraliveinterval 0\n"));
    // And the doctor, asking the real ssh afterwards, is satisfied.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = env.doctor(&["web", "--ssh", &ssh_s, "-F", &cfg_s, "--fix", "--no-remote"]);
    assert_eq!(fs::read_to_string(&cfg).unwrap(), after);
    assert!(
        text(&again).contains("Nothing to change"),
        "{}",
        text(&again)
    );
}

#[test]
fn udp_probe_handshakes_with_the_servers_probe_over_loopback() {
    let env = Env::new();
    env.set_g(&g_output(15, 4));
    env.set_probe("real");
    let (_, v) = env.doctor_json(&["web"]);
    let udp = check(&v, "path.udp");
    assert_eq!(udp["status"], "ok", "{udp:#}");
    let summary = udp["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("UDP reaches web, round trip "),
        "{summary}"
    );
    assert!(
        summary.contains("QUIC handshake with 127.0.0.1:"),
        "{summary}"
    );
    // The probe ran over ssh, non-interactively, with the abide the server checks found.
    let call = env
        .calls()
        .lines()
        .find(|l| l.ends_with("server --probe-udp"))
        .unwrap()
        .to_string();
    assert!(call.contains("-o BatchMode=yes"), "{call}");
    assert!(
        call.ends_with("-- web /usr/local/bin/abide server --probe-udp"),
        "{call}"
    );
}

#[test]
fn udp_probe_reports_a_port_that_never_answers_as_a_problem() {
    let env = Env::new();
    env.set_g(&g_output(15, 4));
    // A bound socket that reads nothing: what a firewall dropping UDP looks like.
    let quiet = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = quiet.local_addr().unwrap().port();
    fs::write(
        env.root.join("probe_line"),
        format!(
            "motd\nABIDE-UDP-PROBE {port} {} 127.0.0.1\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    env.set_probe("silent");
    let started = std::time::Instant::now();
    let (code, v) = env.doctor_json(&["web"]);
    let udp = check(&v, "path.udp");
    assert_eq!(udp["status"], "problem", "{udp:#}");
    assert!(
        udp["summary"]
            .as_str()
            .unwrap()
            .contains("no reply on UDP port"),
        "{udp:#}"
    );
    assert!(
        udp["advice"].as_str().unwrap().contains("ssh transport"),
        "{udp:#}"
    );
    assert_eq!(code, 1);
    // The probe gives up by itself; the fake's 30 s sleep is not waited for.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
