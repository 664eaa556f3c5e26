//! `abide [user@]host`, and `attach`/`ls`/`kill` when they name a host.

use std::sync::Arc;

use anyhow::{bail, Result};

use super::local;
use crate::cli::{AttachArgs, ConnectArgs, KillArgs, LsArgs, RemoteOpts};
use crate::client::attach;
use crate::client::remote::{self as r, BootstrapSpec};
use crate::proto::frame::{SessionInfo, Target, WinSize};

/// Where an `attach`/`kill` argument points.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Local(Option<String>),
    Remote {
        host: String,
        session: Option<String>,
    },
}

/// `host:NAME` and `user@host` are remote; a bare word is a local session if
/// one has that name, and a host otherwise.
async fn place(arg: Option<String>) -> Result<Place> {
    let Some(arg) = arg else {
        return Ok(Place::Local(None));
    };
    if let Some((host, name)) = arg.rsplit_once(':') {
        if !host.is_empty() && !host.ends_with(']') {
            let session = (!name.is_empty()).then(|| name.to_string());
            return Ok(Place::Remote {
                host: host.to_string(),
                session,
            });
        }
    }
    if arg.contains('@') {
        return Ok(Place::Remote {
            host: arg,
            session: None,
        });
    }
    let local_names: Vec<String> = local::list_local()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    if local_names.contains(&arg) {
        Ok(Place::Local(Some(arg)))
    } else if local_names.is_empty() && !looks_like_host(&arg) {
        Ok(Place::Local(Some(arg)))
    } else {
        Ok(Place::Remote {
            host: arg,
            session: None,
        })
    }
}

/// A bare word that is plausibly a host rather than a session name.
fn looks_like_host(s: &str) -> bool {
    s.contains('.') || s == "localhost" || s.parse::<std::net::IpAddr>().is_ok()
}

async fn open_remote(opts: &RemoteOpts, host: &str, spec: BootstrapSpec<'_>) -> Result<i32> {
    // Refuse before the bootstrap, which would otherwise start a session for nobody.
    if !crate::client::tty::is_tty() {
        bail!("not a terminal: attach needs a TTY (use 'abide new -d' on the host to start a session without one)");
    }
    let line = r::bootstrap(opts, host, &spec).await?;
    let addr = r::udp_addr(host, &line).await?;
    let target = crate::transport::quic::Target {
        addr,
        fingerprint: line.fingerprint.clone(),
        grant_id: line.grant_id,
        secret: line.secret,
    };
    let ssh = crate::transport::ssh_stdio::SshTarget {
        ssh: r::ssh_argv(opts)?,
        dest: host.to_string(),
        server: opts.server.clone(),
    };
    let remote = r::RemoteConnector::new(
        r::QuicConnector { target },
        ssh,
        opts.transport,
        host.to_string(),
    );
    let conn = Arc::new(r::SharedRemote(Arc::new(remote)));
    let outcome = attach::run(conn, Target::Id(line.session_id)).await?;
    Ok(outcome.report())
}

/// `abide [user@]host [-s NAME] [-- cmd...]`
pub async fn open(args: ConnectArgs) -> Result<i32> {
    let host = args.destination.expect("destination given");
    let spec = BootstrapSpec {
        session: args.session.as_deref(),
        command: &args.command,
        existing_only: false,
    };
    open_remote(&args.remote, &host, spec).await
}

pub async fn attach(args: AttachArgs, opts: RemoteOpts) -> Result<i32> {
    match place(args.target).await? {
        Place::Local(name) => local::attach_local(Target::Existing(name)).await,
        Place::Remote { host, session } => {
            let spec = BootstrapSpec {
                session: session.as_deref(),
                command: &[],
                existing_only: true,
            };
            open_remote(&opts, &host, spec).await
        }
    }
}

pub async fn ls(args: LsArgs, opts: RemoteOpts) -> Result<i32> {
    let Some(host) = args.host else {
        return local::ls(args).await;
    };
    let cmd = format!("{} ls --json", r::sh_quote(&opts.server));
    let out = r::run_ssh(&opts, &host, &cmd).await?;
    if !out.status.success() {
        return Err(r::ssh_failure(&opts, &host, &out));
    }
    let v: Vec<serde_json::Value> = serde_json::from_str(out.stdout.trim()).map_err(|e| {
        anyhow::anyhow!(
            "the remote abide's session list is not JSON ({e}): {}",
            out.stdout.trim()
        )
    })?;
    let sessions: Vec<SessionInfo> = v
        .iter()
        .map(|s| SessionInfo {
            id: s["id"].as_str().and_then(|i| i.parse().ok()).unwrap_or(0),
            name: s["name"].as_str().unwrap_or("?").to_string(),
            command: s["command"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            pid: s["pid"].as_u64().unwrap_or(0) as u32,
            created: s["created"].as_u64().unwrap_or(0),
            last_output: s["last_output"].as_u64(),
            clients: s["clients"].as_u64().unwrap_or(0) as u32,
            size: WinSize {
                rows: s["rows"].as_u64().unwrap_or(0) as u16,
                cols: s["cols"].as_u64().unwrap_or(0) as u16,
            },
            output_bytes: s["output_bytes"].as_u64().unwrap_or(0),
        })
        .collect();
    local::print_sessions(&sessions, args.json)?;
    Ok(0)
}

pub async fn kill(args: KillArgs, opts: RemoteOpts) -> Result<i32> {
    match place(Some(args.target.clone())).await? {
        Place::Local(_) => local::kill(args).await,
        Place::Remote {
            host,
            session: Some(name),
        } => {
            let cmd = format!("{} kill {}", r::sh_quote(&opts.server), r::sh_quote(&name));
            let out = r::run_ssh(&opts, &host, &cmd).await?;
            if out.status.success() {
                Ok(0)
            } else if out.status.code() == Some(1) && out.stderr.contains("abide:") {
                bail!(
                    "{} (on {host})",
                    out.stderr.trim().trim_start_matches("abide: ")
                )
            } else {
                Err(r::ssh_failure(&opts, &host, &out))
            }
        }
        Place::Remote {
            host,
            session: None,
        } => bail!("name the session to kill: abide kill {host}:NAME"),
    }
}
