//! The client half of self-deploy: runs the bootstrap through the deploy
//! script (`abide_proto::deploy`), and when the host has no usable abide,
//! streams a binary for its platform over the same ssh connection's stdin.
//!
//! Which binary: a build for the host's platform in the client's folder of
//! them (`$ABIDE_DIST_DIR`, else `~/.local/share/abide/dist`, as
//! `<os>-<arch>/abide`; a static build goes there), else the running client
//! itself when the host's OS and architecture are its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::client::options::RemoteOpts;
use crate::client::remote::{ssh_argv, SshOutput};
use crate::proto::connect_line::ConnectLine;
use crate::proto::deploy::{self, Failure, Platform, Reply, Source};
use crate::proto::frame::PROTOCOL_VERSION;
use crate::transport::framed::Link;
use crate::transport::ssh_stdio;

/// The version folder on the host: this build's package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `--version`: the package version and the protocol it speaks.
pub fn version_line() -> &'static str {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| deploy::version_line(VERSION, PROTOCOL_VERSION))
}

/// The deploy runs unless `--no-deploy` or `--server PATH` says otherwise.
pub fn applies(opts: &RemoteOpts) -> bool {
    !opts.no_deploy && opts.server == crate::client::options::DEFAULT_SERVER
}

/// The client's own platform, in the names the core uses.
pub fn own_platform() -> Platform {
    Platform {
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
    }
}

/// The folder of binaries for other platforms.
pub fn dist_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ABIDE_DIST_DIR") {
        return Some(PathBuf::from(d));
    }
    directories::BaseDirs::new().map(|b| b.data_dir().join("abide").join("dist"))
}

/// Where the client finds binaries to upload.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The binary that stands for this client's own platform.
    pub own: Option<PathBuf>,
    pub dist: Option<PathBuf>,
}

impl Binaries {
    /// The running executable, and the dist folder.
    pub fn installed() -> Binaries {
        Binaries {
            own: std::env::current_exe().ok(),
            dist: dist_dir(),
        }
    }

    pub fn for_platform(&self, host: &Platform) -> Option<PathBuf> {
        let built = self
            .dist
            .as_ref()
            .map(|d| d.join(host.label()).join("abide"))
            .filter(|p| p.is_file());
        match deploy::source_for(host, &own_platform()) {
            Source::Own => built.or_else(|| self.own.clone()),
            Source::Other(_) => built,
        }
    }
}

/// What a deploy-aware bootstrap found.
pub struct Bootstrapped {
    pub line: ConnectLine,
    /// The abide the host ran (absolute path there): later ssh commands use it.
    pub server: String,
    pub uploaded: Option<Uploaded>,
    /// The bootstrap's own ssh, carrying on as an ssh link (`--then-stdio`).
    pub link: Option<Link>,
}

impl std::fmt::Debug for Bootstrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrapped")
            .field("line", &self.line)
            .field("server", &self.server)
            .field("uploaded", &self.uploaded)
            .field("link", &self.link.as_ref().map(|l| l.kind))
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Uploaded {
    pub bytes: u64,
    /// From the host's request to the end of sending.
    pub took: Duration,
}

/// A deploy that did not happen, typed for whoever wants to react.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("abide has no binary for {platform} to install on {dest}.\n  Install it there yourself (on {dest}: cargo install abide), put a build for that platform at {dist}/{platform}/abide, or pass --server PATH.")]
    NoBinary {
        dest: String,
        platform: String,
        dist: String,
    },
    #[error("the upload of abide to {dest} arrived damaged (SHA-256 {got} instead of {want}); nothing was installed. Run the command again.")]
    Damaged {
        dest: String,
        got: String,
        want: String,
    },
    #[error("{dest} has no sha256sum, shasum or openssl to verify the upload, so nothing was installed.\n  Install abide there yourself (cargo install abide) or pass --server PATH.")]
    NoHashTool { dest: String },
    #[error("the abide binary sent to {dest} does not run there: {words}\n  If that home is mounted noexec, or its C library differs from this machine's, put a static build (scripts/release.sh) at {dist}/{platform}/abide, or pass --server PATH.")]
    WontRun {
        dest: String,
        words: String,
        platform: String,
        dist: String,
    },
    #[error("could not install abide on {dest}: {what}")]
    Write { dest: String, what: String },
    #[error("abide is not installed on {dest} yet, so it has no sessions; `abide {dest}` installs it (or pass --server PATH).")]
    NotInstalled { dest: String },
    #[error("the deploy script on {dest} said: {what}")]
    Other { dest: String, what: String },
}

/// `ssh DEST sh -c SCRIPT ... server --bootstrap ARGS`: runs abide on the
/// host, deploying it first if needed. `args` are abide's arguments
/// (`server --bootstrap ...`).
pub async fn bootstrap(
    opts: &RemoteOpts,
    dest: &str,
    args: &[String],
    binaries: &Binaries,
) -> Result<Bootstrapped> {
    bootstrap_with(opts, dest, args, binaries, false).await
}

/// [`bootstrap`]; with `handover`, `args` include `--then-stdio` and the same
/// ssh connection is returned as a link after the connect line (a deploy
/// first, if the host needs one, changes nothing: the deployed abide relays).
pub async fn bootstrap_with(
    opts: &RemoteOpts,
    dest: &str,
    args: &[String],
    binaries: &Binaries,
    handover: bool,
) -> Result<Bootstrapped> {
    let mut done = drive(
        opts,
        dest,
        args,
        Some(binaries),
        Until::ConnectLine,
        handover,
    )
    .await?;
    let link = match done.rest.take() {
        Some(rest) => rest.into_link().await,
        None => None,
    };
    match done.line {
        Some(line) => Ok(Bootstrapped {
            line,
            server: done.server.unwrap_or_else(|| opts.server.clone()),
            uploaded: done.uploaded,
            link,
        }),
        None => {
            let out = done.out.expect("output when there is no connect line");
            if !out.status.success() {
                return Err(crate::client::remote::bootstrap_failure(
                    opts, dest, &out, handover,
                ));
            }
            bail!(
                "the remote abide printed no connect line on {dest}.\n  It said: {}",
                out.stdout.trim()
            )
        }
    }
}

/// Runs `abide ARGS` on the host to its end (`ls`, `kill`): the deployed or a
/// compatible abide, or `--server` as given. Installs nothing: a host without
/// abide has no sessions, and [`DeployError::NotInstalled`] says so.
pub async fn run_abide(opts: &RemoteOpts, dest: &str, args: &[&str]) -> Result<SshOutput> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if !applies(opts) {
        let mut words = vec![crate::client::remote::sh_quote(&opts.server)];
        words.extend(args.iter().map(|a| crate::client::remote::sh_quote(a)));
        return crate::client::remote::run_ssh(opts, dest, &words.join(" ")).await;
    }
    let done = drive(opts, dest, &args, None, Until::Exit, false).await?;
    Ok(done.out.expect("output of a run to its end"))
}

enum Until {
    /// Return as soon as the connect line arrives.
    ConnectLine,
    /// Collect the output until ssh exits.
    Exit,
}

struct Driven {
    line: Option<ConnectLine>,
    server: Option<String>,
    uploaded: Option<Uploaded>,
    /// Everything but the deploy lines, when the run went to its end.
    out: Option<SshOutput>,
    /// The connection after the connect line, when it is handed over.
    rest: Option<Rest>,
}

/// The bootstrap's ssh after its connect line, about to become a link.
pub struct Rest {
    pub reader: tokio::io::BufReader<tokio::process::ChildStdout>,
    pub stdin: tokio::process::ChildStdin,
    pub child: tokio::process::Child,
}

impl Rest {
    /// The link, once the relay says it is ready; `None` (and ssh ends) if
    /// it does not: the link policy then makes its links as without one.
    pub async fn into_link(self) -> Option<Link> {
        match ssh_stdio::handed_over(self.reader, self.stdin, self.child).await {
            Ok(link) => Some(link),
            Err(e) => {
                tracing::debug!("no link from the bootstrap's ssh: {e:#}");
                None
            }
        }
    }
}

/// Longest line read from the host before giving up on finding ours.
const MAX_LINE: u64 = 64 * 1024;
/// How much of the host's other output is kept (messages, `ls --json`).
pub const MAX_SEEN: usize = 4 << 20;

/// One ssh running the deploy script with `args`; `binaries` is what may be
/// sent when the host needs it (`None`: send nothing).
async fn drive(
    opts: &RemoteOpts,
    dest: &str,
    args: &[String],
    binaries: Option<&Binaries>,
    until: Until,
    handover: bool,
) -> Result<Driven> {
    let remote_cmd = deploy::remote_command(VERSION, PROTOCOL_VERSION, args);
    let argv = ssh_argv(opts)?;
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .args(if handover {
            &ssh_stdio::SSH_KEEPALIVE[..]
        } else {
            &[]
        })
        .arg(dest)
        .arg(&remote_cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {:?}", argv[0]))?;
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut se = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut se).await;
        // Keep draining so a chatty ssh never blocks on a full pipe.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&se).into_owned()
    });
    let dist = dist_dir().map_or("~/.local/share/abide/dist".into(), |d| {
        d.display().to_string()
    });
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut seen = String::new();
    let mut server = None;
    let mut uploaded = None;
    let mut sent = (String::new(), String::new());
    let mut asked = false;
    loop {
        let mut raw = Vec::new();
        let n = (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut raw)
            .await?;
        if n == 0 {
            break;
        }
        let l = String::from_utf8_lossy(&raw);
        if let Until::ConnectLine = until {
            if let Some(found) = ConnectLine::find(&l) {
                let line = found?;
                let rest = match stdin {
                    Some(stdin) if handover => Some(Rest {
                        reader,
                        stdin,
                        child,
                    }),
                    _ => {
                        // Let ssh finish in the background; its exit no longer matters.
                        drop(stdin);
                        tokio::spawn(async move {
                            let _ = child.wait().await;
                        });
                        None
                    }
                };
                return Ok(Driven {
                    line: Some(line),
                    server,
                    uploaded,
                    out: None,
                    rest,
                });
            }
        }
        match Reply::parse(&l) {
            Some(Reply::Using(path)) => server = Some(path),
            Some(Reply::Need(platform)) => {
                let (false, Some(mut pipe)) = (asked, stdin.take()) else {
                    bail!("the deploy script on {dest} asked twice for a binary");
                };
                asked = true;
                let Some(binaries) = binaries else {
                    let _ = pipe.write_all(deploy::no_upload().as_bytes()).await;
                    return Err(DeployError::NotInstalled { dest: dest.into() }.into());
                };
                let Some(path) = binaries.for_platform(&platform) else {
                    let _ = pipe.write_all(deploy::no_upload().as_bytes()).await;
                    return Err(DeployError::NoBinary {
                        dest: dest.into(),
                        platform: platform.label(),
                        dist,
                    }
                    .into());
                };
                let start = Instant::now();
                let (bytes, sum) = send_binary(&mut pipe, &path).await.with_context(|| {
                    format!("sending abide ({}) to {dest} over ssh", path.display())
                })?;
                sent = (sum, platform.label());
                // A handed-over connection goes on carrying frames after the binary.
                if handover {
                    stdin = Some(pipe);
                } else {
                    drop(pipe);
                }
                let up = Uploaded {
                    bytes,
                    took: start.elapsed(),
                };
                eprintln!(
                    "abide: installing abide {VERSION} on {dest} ({:.1} MB sent in {:.1} s)",
                    up.bytes as f64 / 1e6,
                    up.took.as_secs_f64()
                );
                uploaded = Some(up);
            }
            Some(Reply::Failed(f)) => {
                return Err(failure(f, dest, &dist, &sent.1, &sent.0).into());
            }
            None if seen.len() < MAX_SEEN => seen.push_str(&l),
            None => {}
        }
    }
    drop(stdin);
    let status = child.wait().await?;
    Ok(Driven {
        line: None,
        server,
        uploaded,
        out: Some(SshOutput {
            status,
            stdout: seen,
            stderr: err_task.await.unwrap_or_default(),
        }),
        rest: None,
    })
}

fn failure(f: Failure, dest: &str, dist: &str, platform: &str, sent: &str) -> DeployError {
    let dest = dest.to_string();
    match f {
        Failure::NoUpload => DeployError::Other {
            dest,
            what: "no binary received".into(),
        },
        Failure::NoHashTool => DeployError::NoHashTool { dest },
        Failure::BadChecksum(got) => DeployError::Damaged {
            dest,
            got,
            want: sent.to_string(),
        },
        Failure::WontRun(words) => DeployError::WontRun {
            dest,
            words,
            platform: platform.to_string(),
            dist: dist.to_string(),
        },
        Failure::Write(what) => DeployError::Write { dest, what },
        Failure::Other(what) => DeployError::Other { dest, what },
    }
}

/// The header with the SHA-256, then the file's bytes.
async fn send_binary(
    pipe: &mut tokio::process::ChildStdin,
    path: &std::path::Path,
) -> Result<(u64, String)> {
    let data = tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    if data.len() as u64 > deploy::MAX_UPLOAD {
        bail!(
            "{} is larger than {} bytes",
            path.display(),
            deploy::MAX_UPLOAD
        );
    }
    let sum = hex::encode(ring::digest::digest(&ring::digest::SHA256, &data));
    pipe.write_all(deploy::upload_header(data.len() as u64, &sum).as_bytes())
        .await?;
    pipe.write_all(&data).await?;
    pipe.flush().await?;
    Ok((data.len() as u64, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_platform_uses_the_running_binary_unless_a_build_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let b = Binaries {
            own: Some(PathBuf::from("/me")),
            dist: Some(dir.path().to_path_buf()),
        };
        assert_eq!(b.for_platform(&own_platform()), Some(PathBuf::from("/me")));
        let other = Platform {
            os: "plan9".into(),
            arch: "mips".into(),
        };
        assert_eq!(b.for_platform(&other), None);
        for p in [own_platform(), other.clone()] {
            let f = dir.path().join(p.label()).join("abide");
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, b"x").unwrap();
            assert_eq!(b.for_platform(&p), Some(f));
        }
    }

    #[test]
    fn server_path_and_no_deploy_turn_it_off() {
        let mut o = RemoteOpts {
            server: crate::client::options::DEFAULT_SERVER.into(),
            ..Default::default()
        };
        assert!(applies(&o));
        o.no_deploy = true;
        assert!(!applies(&o));
        o.no_deploy = false;
        o.server = "/opt/abide/bin/abide".into();
        assert!(!applies(&o));
    }

    #[test]
    fn version_names_the_protocol() {
        assert!(version_line().ends_with(&format!("(protocol {PROTOCOL_VERSION})")));
    }
}
