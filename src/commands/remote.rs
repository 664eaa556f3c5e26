//! `abide [user@]host`, and `attach`/`ls`/`kill`/`history` when they name a host.

use std::sync::Arc;

use anyhow::{bail, Result};

use super::local;
use crate::cli::{AttachArgs, ConnectArgs, HistoryArgs, KillArgs, LsArgs, RemoteOpts};
use crate::client::attach;
use crate::client::remote::{self as r, BootstrapSpec};
use crate::proto::frame::{SessionEntry, SessionInfo, Target, WinSize};

/// Where an `attach`/`kill` argument points.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Local(Option<String>),
    Remote {
        host: String,
        session: Option<String>,
    },
}

/// `host:NAME`, `host:` and `user@host` are remote; a bare word is a local
/// session name, as in tmux. Guessing "host or session?" from the word would
/// make `abide kill build` reach out over ssh to a machine called `build`.
fn place(arg: Option<String>) -> Result<Place> {
    let Some(arg) = arg else {
        return Ok(Place::Local(None));
    };
    // A bracketed IPv6 address keeps its colons: `[::1]:NAME`, `me@[::1]`.
    let host_end = arg.find(']').map_or(0, |i| i + 1);
    if let Some(colon) = arg[host_end..].find(':').map(|i| i + host_end) {
        let (host, name) = (&arg[..colon], &arg[colon + 1..]);
        if !host.is_empty() {
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
    Ok(Place::Local(Some(arg)))
}

async fn open_remote(opts: &RemoteOpts, host: &str, spec: BootstrapSpec<'_>) -> Result<i32> {
    // Refuse before the bootstrap, which would otherwise start a session for nobody.
    if !crate::client::tty::is_tty() {
        bail!("not a terminal: attach needs a TTY (use 'abide new -d' on the host to start a session without one)");
    }
    // The bootstrap's ssh goes on as the first ssh link, unless only UDP may be used.
    let spec = BootstrapSpec {
        handover: opts.transport != crate::client::options::TransportChoice::Udp,
        ..spec
    };
    let crate::client::deploy::Bootstrapped {
        line, server, link, ..
    } = crate::client::first_minute::connecting(host, r::bootstrap(opts, host, &spec)).await?;
    let session_id = line.session_id;
    let conn = Arc::new(r::connector_for(opts, host, line, server).await?);
    let outcome = attach::run_handed(conn, Target::Id(session_id), link).await?;
    Ok(crate::client::terminal_contract::farewell(&outcome, |n| {
        format!("{host}:{n}")
    }))
}

/// The session `abide HOST` opens with the login shell, and resumes.
pub const LOGIN_SESSION: &str = "login";

/// `abide [user@]host [-s NAME] [-- cmd...]`
pub async fn open(args: ConnectArgs) -> Result<i32> {
    let host = args.destination.expect("destination given");
    // The login shell lives in a session of its own name, so that `abide
    // HOST` comes back to it rather than to whichever session ran last.
    let session = match (&args.session, args.command.is_empty()) {
        (Some(s), _) => Some(s.as_str()),
        (None, true) => Some(LOGIN_SESSION),
        (None, false) => None,
    };
    let spec = BootstrapSpec {
        session,
        command: &args.command,
        existing_only: false,
        watch: false,
        handover: false,
    };
    let opts = args.remote.clone().resolve(&Default::default());
    open_remote(&opts, &host, spec).await
}

pub async fn attach(args: AttachArgs, opts: RemoteOpts) -> Result<i32> {
    match place(args.target)? {
        Place::Local(Some(name)) => local::attach_local(Target::Existing(Some(name.clone())))
            .await
            .map_err(|e| match e.to_string().starts_with("no session named") {
                // The word may have been meant as a host: say how to write one.
                true => anyhow::anyhow!(
                    "no session named '{name}' here (for a host, write '{name}:' or '{name}:NAME')"
                ),
                false => e,
            }),
        Place::Local(None) => local::attach_local(Target::Existing(None)).await,
        Place::Remote { host, session } => {
            let spec = BootstrapSpec {
                session: session.as_deref(),
                command: &[],
                existing_only: true,
                watch: false,
                handover: false,
            };
            open_remote(&opts, &host, spec).await
        }
    }
}

pub async fn ls(args: LsArgs, opts: RemoteOpts) -> Result<i32> {
    let Some(host) = args.host else {
        return local::ls(args).await;
    };
    let out = crate::client::deploy::run_abide(&opts, &host, &["ls", "--json"]).await?;
    if !out.status.success() {
        return Err(r::ssh_failure(&opts, &host, &out));
    }
    let v: Vec<serde_json::Value> = serde_json::from_str(out.stdout.trim()).map_err(|e| {
        anyhow::anyhow!(
            "the remote abide's session list is not JSON ({e}): {}",
            out.stdout.trim()
        )
    })?;
    let sessions: Vec<SessionEntry> = v
        .iter()
        .map(|s| {
            let mut e = local::plain_entry(SessionInfo {
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
            });
            e.attention = crate::client::away::summary_from_json(s);
            e.detached_since = s["detached_since"].as_u64();
            e.expire_after = s["expire_after"].as_u64();
            e
        })
        .collect();
    local::print_sessions(&sessions, args.json)?;
    Ok(0)
}

pub async fn kill(args: KillArgs, opts: RemoteOpts) -> Result<i32> {
    match place(Some(args.target.clone()))? {
        Place::Local(_) => local::kill(args).await,
        Place::Remote {
            host,
            session: Some(name),
        } => {
            let out = crate::client::deploy::run_abide(&opts, &host, &["kill", &name]).await?;
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

/// `abide history NAME|HOST:NAME [--tail N]`: a remote session's history is
/// printed by the host's own abide, reached the way `ls` and `kill` reach it.
pub async fn history(args: HistoryArgs, opts: RemoteOpts) -> Result<i32> {
    use std::io::Write;
    let (host, name) = match place(Some(args.name.clone()))? {
        Place::Local(_) => return local::history(args).await,
        Place::Remote {
            host,
            session: Some(name),
        } => (host, name),
        Place::Remote {
            host,
            session: None,
        } => bail!("name the session: abide history {host}:NAME"),
    };
    let tail = args.tail.map(|n| n.to_string());
    let mut words = vec!["history", name.as_str()];
    if let Some(n) = &tail {
        words.extend(["--tail", n.as_str()]);
    }
    let out = crate::client::deploy::run_abide(&opts, &host, &words).await?;
    if !out.status.success() {
        return Err(remote_failure(&opts, &host, &out));
    }
    // What the deploy path keeps of a run's output is bounded; a history
    // that reaches the bound may have lost its newest rows.
    if out.stdout.len() >= crate::client::deploy::MAX_SEEN {
        bail!(
            "the history of {host}:{name} is longer than {} MB; ask for part of it with --tail N",
            crate::client::deploy::MAX_SEEN >> 20
        );
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.stdout.as_bytes())?;
    stdout.flush()?;
    Ok(0)
}

/// The remote abide's own message ("no session named ..."), or what went
/// wrong with ssh.
fn remote_failure(opts: &RemoteOpts, host: &str, out: &r::SshOutput) -> anyhow::Error {
    if out.status.code() == Some(1) && out.stderr.contains("abide:") {
        anyhow::anyhow!(
            "{} (on {host})",
            out.stderr.trim().trim_start_matches("abide: ")
        )
    } else {
        r::ssh_failure(opts, host, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(host: &str, session: Option<&str>) -> Place {
        Place::Remote {
            host: host.into(),
            session: session.map(Into::into),
        }
    }

    #[test]
    fn bare_words_are_local_sessions_and_hosts_need_a_colon_or_at() {
        assert_eq!(place(None).unwrap(), Place::Local(None));
        assert_eq!(
            place(Some("build".into())).unwrap(),
            Place::Local(Some("build".into()))
        );
        assert_eq!(
            place(Some("box.example".into())).unwrap(),
            Place::Local(Some("box.example".into()))
        );
        assert_eq!(place(Some("box:".into())).unwrap(), remote("box", None));
        assert_eq!(
            place(Some("box:work".into())).unwrap(),
            remote("box", Some("work"))
        );
        assert_eq!(
            place(Some("me@box".into())).unwrap(),
            remote("me@box", None)
        );
        assert_eq!(
            place(Some("me@box:work".into())).unwrap(),
            remote("me@box", Some("work"))
        );
        // A bracketed IPv6 address without a session is a host, not host:NAME.
        assert_eq!(
            place(Some("me@[::1]".into())).unwrap(),
            remote("me@[::1]", None)
        );
        assert_eq!(
            place(Some("[::1]:work".into())).unwrap(),
            remote("[::1]", Some("work"))
        );
    }
}
