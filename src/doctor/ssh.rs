//! Building ssh command lines: the program from `--ssh`, `-F FILE` when given,
//! and the options every non-interactive use needs.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(Debug, Clone)]
pub struct Ssh {
    program: String,
    extra: Vec<String>,
    config: Option<PathBuf>,
}

/// What a finished ssh run produced.
#[derive(Debug)]
pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Ssh {
    /// `spec` is split on whitespace, so `--ssh "ssh -J jump"` works.
    pub fn new(spec: &str, config: Option<PathBuf>) -> anyhow::Result<Ssh> {
        let mut words = spec.split_whitespace().map(str::to_string);
        let Some(program) = words.next() else {
            bail!("--ssh is empty: give the ssh program to run");
        };
        Ok(Ssh {
            program,
            extra: words.collect(),
            config,
        })
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// `ssh [extra] [-F file]`, ready for more arguments.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.extra);
        if let Some(f) = &self.config {
            c.arg("-F").arg(f);
        }
        c
    }

    /// A command that runs `remote` on `host` without ever prompting:
    /// BatchMode makes a password or host-key question an error instead of a
    /// hang, ConnectTimeout bounds an unreachable host, `--` keeps a host name
    /// that starts with `-` from being read as an option.
    pub fn batch(&self, host: &str, extra_opts: &[&str], remote: &[&str]) -> Command {
        let mut c = self.command();
        c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-T"]);
        for o in extra_opts {
            c.args(["-o", o]);
        }
        c.arg("--").arg(host).args(remote);
        c
    }
}

/// Runs `cmd` with `stdin` as input and kills it after `limit`, so a remote
/// command that hangs cannot hang the doctor.
pub fn run_with_timeout(mut cmd: Command, stdin: &str, limit: Duration) -> anyhow::Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    // Its own process group, so a timeout also ends what ssh started
    // (ProxyCommand, ProxyJump) and nothing keeps our pipes open afterwards.
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not run `{program}` (install OpenSSH or pass --ssh)"))?;
    let input = stdin.to_string();
    let mut pipe = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // The remote side may exit without reading everything; that is its answer.
        let _ = pipe.write_all(input.as_bytes());
    });
    let out_reader = reader(&mut child, true);
    let err_reader = reader(&mut child, false);
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().context("waiting for ssh")? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        timed_out,
    })
}

/// Kills `child`, started as the leader of its own process group, and all it
/// started (ProxyCommand, ProxyJump), then reaps it.
pub fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn reader(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<String> {
    let mut source: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().expect("piped stdout"))
    } else {
        Box::new(child.stderr.take().expect("piped stderr"))
    };
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = source.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The last non-empty line of ssh's stderr: where ssh puts the reason.
pub fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_is_split_and_config_passed() {
        let s = Ssh::new("ssh -J jump", Some(PathBuf::from("/tmp/cfg"))).unwrap();
        let c = s.batch("-oProxyCommand=evil", &["ServerAliveInterval=0"], &["cat"]);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "ssh");
        assert_eq!(
            args,
            [
                "-J",
                "jump",
                "-F",
                "/tmp/cfg",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-T",
                "-o",
                "ServerAliveInterval=0",
                "--",
                "-oProxyCommand=evil",
                "cat"
            ]
        );
        assert!(Ssh::new("  ", None).is_err());
    }

    #[test]
    fn timeout_kills_a_hanging_command() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo started; sleep 30"]);
        let t = Instant::now();
        let out = run_with_timeout(c, "", Duration::from_millis(300)).unwrap();
        assert!(out.timed_out);
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn last_line_skips_blank_lines() {
        assert_eq!(last_line("a\nb reason\n\n  \n"), "b reason");
        assert_eq!(last_line(""), "");
    }
}
