//! Self-deploy through a stand-in `ssh` against an empty home: the stand-in
//! runs the remote command with `sh -c` in a fresh HOME whose PATH has no
//! abide, as sshd would on a host that never saw abide. The bootstrap is the
//! client's real one, and the binary it sends is the real abide.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abide::cli::RemoteOpts;
use abide::client::deploy::{self, Binaries, Bootstrapped, DeployError};
use abide::client::remote::QuicConnector;
use common::remote::{check_exact, program, quic_target, start_client};
use common::{PtyClient, Rt, BIN};

/// One fake host: a home, a bin folder first on its PATH, and the `ssh` that
/// reaches it.
struct Host {
    rt: Rt,
    home: PathBuf,
    bin: PathBuf,
    ssh: PathBuf,
}

/// Flips one byte of the upload in transit (after the header).
const CORRUPT: &str = r#"import os, sys
n = 0
while True:
    b = os.read(0, 65536)
    if not b:
        break
    b = bytearray(b)
    if n <= 5000 < n + len(b):
        b[5000 - n] ^= 0xff
    n += len(b)
    os.write(1, bytes(b))
"#;

impl Host {
    fn new(corrupt: bool) -> Host {
        let rt = Rt::new();
        let home = rt.scratch().join("home");
        let bin = rt.scratch().join("hostbin");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let ssh = rt.scratch().join("ssh");
        let env = format!(
            "export HOME='{}' PATH='{}:/usr/local/bin:/usr/bin:/bin' ABIDE_RUNTIME_DIR='{}' ABIDE_CONFIG='{}'",
            home.display(),
            bin.display(),
            rt.runtime_dir().display(),
            rt.scratch().join("no-config.toml").display()
        );
        let run = if corrupt {
            let filter = rt.scratch().join("corrupt.py");
            std::fs::write(&filter, CORRUPT).unwrap();
            format!("python3 '{}' | sh -c \"$cmd\"", filter.display())
        } else {
            "exec sh -c \"$cmd\"".to_string()
        };
        // ssh [options] DEST COMMAND: the last word is the command; sshd runs
        // it through the login shell in the home directory.
        let script = format!(
            "#!/bin/sh\nfor cmd; do :; done\necho \"$*\" >> '{}/ssh-calls'\n{env}\ncd \"$HOME\" || exit 255\n{run}\n",
            rt.scratch().display()
        );
        common::write_executable(&ssh, &script);
        Host { rt, home, bin, ssh }
    }

    fn opts(&self) -> RemoteOpts {
        RemoteOpts {
            ssh: self.ssh.display().to_string(),
            server: abide::cli::DEFAULT_SERVER.into(),
            udp_ports: Some("0".into()),
            ..Default::default()
        }
    }

    fn version_dir(&self, version: &str) -> PathBuf {
        self.home.join(".local/share/abide/bin").join(version)
    }

    fn deployed(&self) -> PathBuf {
        self.version_dir(deploy::VERSION).join("abide")
    }

    async fn bootstrap(&self, program: &str) -> anyhow::Result<Bootstrapped> {
        let args: Vec<String> = [
            "server",
            "--bootstrap",
            "--udp-ports",
            "0",
            "--",
            "sh",
            "-c",
            program,
        ]
        .map(String::from)
        .to_vec();
        let binaries = Binaries {
            own: Some(PathBuf::from(BIN)),
            dist: Some(self.rt.scratch().join("no-dist")),
        };
        deploy::bootstrap(&self.opts(), "me@fakehost", &args, &binaries).await
    }
}

fn sha256(p: &Path) -> String {
    let data = std::fs::read(p).unwrap();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &data))
}

/// Every executable file under `dir`.
fn executables(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            out.extend(executables(&p));
        } else if m.permissions().mode() & 0o111 != 0 {
            out.push(p);
        }
    }
    out
}

/// Every file under `dir`, any mode.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_connect_deploys_verifies_and_uses_it_and_the_second_deploys_nothing() {
    let host = Host::new(false);
    let b = host
        .bootstrap(&program(3, 20))
        .await
        .expect("first connect");
    let deployed = host.deployed();
    let up = b.uploaded.expect("the first connect uploads");
    assert_eq!(up.bytes, std::fs::metadata(BIN).unwrap().len());
    assert_eq!(b.server, deployed.display().to_string());
    assert_eq!(sha256(&deployed), sha256(Path::new(BIN)));
    assert_eq!(
        std::fs::metadata(&deployed).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Used: the daemon that granted the session is the deployed binary.
    let pid = host.rt.daemon_pid().expect("daemon pid");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        deployed
    );
    assert_eq!(
        files(&host.home),
        vec![deployed.clone()],
        "nothing else left"
    );

    // The session it made works over QUIC.
    let conn = Arc::new(QuicConnector {
        target: quic_target(
            &b.line,
            format!("127.0.0.1:{}", b.line.port).parse().unwrap(),
        ),
    });
    let client = start_client(conn, b.line.session_id);
    client.wait_for("LINE 3\r\n", Duration::from_secs(20)).await;
    check_exact(&client.finish().await, 3, &[]);

    let mtime = std::fs::metadata(&deployed).unwrap().modified().unwrap();
    let again = host.bootstrap("true").await.expect("second connect");
    assert!(again.uploaded.is_none(), "the second connect sends nothing");
    assert_eq!(again.server, deployed.display().to_string());
    assert_eq!(
        std::fs::metadata(&deployed).unwrap().modified().unwrap(),
        mtime
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_upload_is_refused_and_leaves_nothing_executable() {
    let host = Host::new(true);
    let err = host.bootstrap("true").await.expect_err("damaged upload");
    match err.downcast_ref::<DeployError>() {
        Some(DeployError::Damaged { got, want, .. }) => {
            assert_eq!(want, &sha256(Path::new(BIN)));
            assert_ne!(got, want);
        }
        other => panic!("expected Damaged, got {other:?}: {err:#}"),
    }
    assert!(format!("{err}").contains("nothing was installed"), "{err}");
    assert_eq!(executables(&host.home), Vec::<PathBuf>::new());
    assert_eq!(
        files(&host.home),
        Vec::<PathBuf>::new(),
        "temp file removed"
    );
    assert!(host.rt.daemon_pid().is_none(), "no abide ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_first_connects_both_succeed() {
    let host = Host::new(false);
    let (a, b) = tokio::join!(host.bootstrap("sleep 30"), host.bootstrap("sleep 30"));
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_ne!(a.line.session_id, b.line.session_id);
    assert!(a.uploaded.is_some() || b.uploaded.is_some());
    let deployed = host.deployed();
    assert_eq!(sha256(&deployed), sha256(Path::new(BIN)));
    assert_eq!(files(&host.home), vec![deployed], "no temp file left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatible_abide_on_the_path_is_used_and_an_old_one_is_not() {
    // Same protocol on the PATH: used as it is, nothing sent.
    let host = Host::new(false);
    std::os::unix::fs::symlink(BIN, host.bin.join("abide")).unwrap();
    let b = host.bootstrap("true").await.expect("connect");
    assert!(b.uploaded.is_none());
    assert_eq!(b.server, host.bin.join("abide").display().to_string());
    assert!(!host.deployed().exists());

    // An older abide (another protocol) on the PATH and two older deployed
    // versions: the client deploys its own, and only two versions are kept.
    let host = Host::new(false);
    let old = "#!/bin/sh\necho 'abide 0.0.9 (protocol 0)'\n";
    common::write_executable(&host.bin.join("abide"), old);
    for (v, age) in [("0.0.8", 200), ("0.0.9", 100)] {
        let d = host.version_dir(v);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("abide"), old).unwrap();
        let t = std::time::SystemTime::now() - Duration::from_secs(age);
        std::fs::File::open(&d).unwrap().set_modified(t).unwrap();
    }
    let b = host.bootstrap("true").await.expect("connect");
    assert!(b.uploaded.is_some(), "an old server is replaced, not used");
    assert_eq!(b.server, host.deployed().display().to_string());
    let mut kept: Vec<String> = std::fs::read_dir(host.home.join(".local/share/abide/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, vec!["0.0.9".to_string(), deploy::VERSION.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_without_a_binary_gets_the_install_command() {
    let host = Host::new(false);
    let uname = "#!/bin/sh\ncase $1 in -s) echo Plan9;; -m) echo mips;; esac\n";
    common::write_executable(&host.bin.join("uname"), uname);
    let err = host.bootstrap("true").await.expect_err("no binary");
    match err.downcast_ref::<DeployError>() {
        Some(DeployError::NoBinary { platform, .. }) => assert_eq!(platform, "plan9-mips"),
        other => panic!("expected NoBinary, got {other:?}: {err:#}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("cargo install abide") && msg.contains("--server"),
        "{msg}"
    );
    assert_eq!(files(&host.home), Vec::<PathBuf>::new());
}

/// The user's view: `abide me@host` with no `--server`, in a terminal.
#[test]
fn abide_host_deploys_itself_and_runs_the_session() {
    let host = Host::new(false);
    let run = |word: &str, transport: &str| {
        let mut cmd = host.rt.command(&[
            "--ssh",
            &host.ssh.display().to_string(),
            "--transport",
            transport,
            "--udp-ports",
            "0",
            "me@127.0.0.1",
            "--",
            "sh",
            "-c",
            &format!("echo {word}-$((6*7)); exec sleep 60"),
        ]);
        cmd.env("ABIDE_DIST_DIR", host.rt.scratch().join("no-dist"));
        PtyClient::spawn(cmd, 24, 80)
    };
    let mut first = run("first", "auto");
    first.expect_str("installing abide");
    first.expect_str("first-42");
    first.send(b"\x1e.");
    first.wait();
    assert_eq!(sha256(&host.deployed()), sha256(Path::new(BIN)));

    // ls over ssh finds the deployed abide (it is not on the host's PATH).
    let ls = host
        .rt
        .command(&[
            "ls",
            "me@127.0.0.1",
            "--ssh",
            &host.ssh.display().to_string(),
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success() && listed.contains("first-"), "{listed}");

    let mut second = run("second", "auto");
    second.expect_str("second-42");
    second.send(b"\x1e.");
    second.wait();
    assert!(!second.output_string().contains("installing"));

    // Over ssh the session starts on the bootstrap's own connection (one
    // login); when that ssh dies, the next one runs `server --stdio` with
    // the path the script reported: the deployed abide, not one on the PATH.
    let mut over_ssh = run("over-ssh", "ssh");
    over_ssh.expect_str("over-ssh-42");
    let calls = || std::fs::read_to_string(host.rt.scratch().join("ssh-calls")).unwrap();
    // Three sessions, three logins: no ssh of their own beside the bootstraps.
    assert_eq!(calls().matches("--then-stdio").count(), 3, "{}", calls());
    assert!(!calls().contains("server --stdio"), "{}", calls());
    // The bootstrap's ssh is the relay now (sh and the script exec'd it).
    let relay = relay_pid(&host.deployed(), "over-ssh-").expect("the handed-over relay");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(relay),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let stdio = format!("{} server --stdio", host.deployed().display());
    let t0 = std::time::Instant::now();
    while !calls().contains(&stdio) {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", calls());
        std::thread::sleep(Duration::from_millis(50));
    }
    over_ssh.send(b"\x1e.");
    over_ssh.wait();
}

/// The abide at `path` running `server --bootstrap --then-stdio` for a
/// session whose command line contains `word`.
fn relay_pid(path: &Path, word: &str) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        let argv0 = format!("{}\0", path.display());
        if cmd.starts_with(&argv0) && cmd.contains("--then-stdio") && cmd.contains(word) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn ls_on_a_host_without_abide_says_so_and_installs_nothing() {
    let host = Host::new(false);
    let out = host
        .rt
        .command(&[
            "ls",
            "me@127.0.0.1",
            "--ssh",
            &host.ssh.display().to_string(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not installed on me@127.0.0.1 yet"), "{err}");
    assert_eq!(files(&host.home), Vec::<PathBuf>::new());
}

/// The script parses in every POSIX shell on this machine (sh is dash on
/// Debian; bash and busybox when installed), as the one line that is sent.
#[test]
fn the_script_parses_in_each_shell_here() {
    let script = abide::proto::deploy::script();
    let mut tried = 0;
    for shell in [
        &["sh"][..],
        &["dash"],
        &["bash", "--posix"],
        &["busybox", "sh"],
        &["zsh", "--emulate", "sh"],
    ] {
        let Ok(out) = std::process::Command::new(shell[0])
            .args(&shell[1..])
            .args(["-n", "-c", &script])
            .output()
        else {
            continue;
        };
        tried += 1;
        assert!(
            out.status.success(),
            "{shell:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(tried >= 2, "at least sh and one other shell");
}
