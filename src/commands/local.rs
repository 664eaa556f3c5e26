//! Local sessions: new, attach, ls, kill, kill-server.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::cli::{HistoryArgs, KillArgs, LsArgs, NewArgs};
use crate::client::options::client_env;
use crate::client::{attach, connector, terminal_contract, tty};
use crate::paths;
use crate::proto::attention::{State, Summary};
use crate::proto::frame::{AttachRequest, Down, NewSession, Request, SessionEntry, Target, Up};
use crate::server::launch;

fn new_session(name: Option<String>, command: Vec<String>) -> NewSession {
    let cwd = std::env::current_dir()
        .ok()
        .map(|d| d.to_string_lossy().into_owned());
    NewSession {
        name,
        command,
        env: client_env(),
        cwd,
    }
}

pub async fn attach_local(target: Target) -> Result<i32> {
    let rt = paths::runtime_dir()?;
    let create = matches!(target, Target::Create(_));
    if !create && launch::connect_existing(&rt).await?.is_none() {
        match &target {
            Target::Existing(Some(name)) => {
                bail!("no session named '{name}' (the abide daemon is not running)")
            }
            _ => bail!("no sessions (the abide daemon is not running)"),
        }
    }
    let conn = Arc::new(connector::Local {
        dial: Box::new(move || {
            let rt = rt.clone();
            Box::pin(async move {
                if create {
                    return launch::connect_or_start(&rt).await;
                }
                let socket = paths::socket_path(&rt);
                Ok(crate::transport::unix::connect(&socket).await?)
            })
        }),
    });
    let outcome = attach::run(conn, target).await?;
    Ok(terminal_contract::farewell(&outcome, |n| n.to_string()))
}

pub async fn new(args: NewArgs) -> Result<i32> {
    if let Some(n) = &args.name {
        crate::server::daemon::validate_name(n).map_err(anyhow::Error::msg)?;
    }
    let expire = args
        .expire
        .as_deref()
        .map(crate::server::attention::parse_duration)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let spec = new_session(args.name, args.command);
    if !args.detached && expire.is_none() {
        return attach_local(Target::Create(spec)).await;
    }
    // Detached: create through a short attach, then detach at once.
    let rt = paths::runtime_dir()?;
    let req = AttachRequest {
        target: Target::Create(spec),
        client_id: crate::server::daemon::rand_u64(),
        resume: None,
        size: if tty::is_tty() {
            tty::size()
        } else {
            Default::default()
        },
    };
    let (mut link, reply) = launch::request(&rt, Request::Attach(req), true)
        .await?
        .expect("a daemon was started");
    match reply {
        Down::Attached(a) => {
            let ended = exited_at_once(&mut link).await;
            if ended.is_some() {
                // Said here, with its status and last output: the daemon may drop it.
                let _ = link.tx.send(&Up::ExitSeen).await;
            }
            if let Some((0, _)) = ended {
                eprintln!(
                    "abide: session '{}' ran and already finished (status 0)",
                    a.name
                );
                return Ok(0);
            }
            if let Some((code, said)) = ended {
                let said = String::from_utf8_lossy(&said);
                let said = said.trim();
                bail!(
                    "session '{}' {} at once{}",
                    a.name,
                    terminal_contract::describe_exit(code),
                    if said.is_empty() {
                        " (it printed nothing)".to_string()
                    } else {
                        format!("; it printed:\n{said}")
                    }
                );
            }
            link.tx.send(&Up::Detach).await?;
            // Once the daemon has answered, the session counts as detached:
            // what the program does from then on (a bell, a question) is
            // marked for `ls` and `watch`, not taken as seen by this client.
            detach_answered(&mut link).await;
            if let Some(after) = expire {
                let req = Request::Expire {
                    name: a.name.clone(),
                    after_secs: Some(after.as_secs().max(1)),
                };
                match control(req).await? {
                    Some(Down::Done) => {}
                    Some(Down::Error { message, .. }) => bail!("{message}"),
                    other => bail!("unexpected reply from the daemon: {other:?}"),
                }
            }
            if !args.detached {
                return attach_local(Target::Existing(Some(a.name))).await;
            }
            eprintln!("abide: started session '{}'", a.name);
            Ok(0)
        }
        Down::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}

/// How long `new -d` watches a new session before saying it started: a
/// program that exits at once would otherwise vanish unseen.
const EXIT_WATCH: std::time::Duration = std::time::Duration::from_millis(500);

/// The exit code and the last output (at most 2 kB) of a session that ends
/// within [`EXIT_WATCH`].
async fn exited_at_once(link: &mut crate::transport::framed::Link) -> Option<(i32, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + EXIT_WATCH;
    let mut said = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, link.rx.next::<Down>()).await {
            Ok(Ok(Some(Down::Exited { code }))) => return Some((code, said)),
            Ok(Ok(Some(Down::Output { data, .. }))) => {
                said.extend_from_slice(&data);
                let cut = said.len().saturating_sub(2048);
                said.drain(..cut);
            }
            Ok(Ok(Some(_))) => {}
            _ => return None,
        }
    }
}

/// Waits (bounded) for the answer to a detach, past any output before it.
async fn detach_answered(link: &mut crate::transport::framed::Link) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, link.rx.next::<Down>()).await {
            Ok(Ok(Some(Down::Detached | Down::Exited { .. } | Down::Error { .. })))
            | Ok(Ok(None))
            | Ok(Err(_))
            | Err(_) => return,
            Ok(Ok(Some(_))) => {}
        }
    }
}

async fn control(req: Request) -> Result<Option<Down>> {
    let rt = paths::runtime_dir()?;
    Ok(launch::request(&rt, req, false)
        .await?
        .map(|(_, down)| down))
}

pub async fn list_local() -> Result<Vec<SessionEntry>> {
    match control(Request::ListAttention).await? {
        None => Ok(Vec::new()),
        Some(Down::SessionList(s)) => Ok(s),
        Some(Down::Error { message, .. }) => bail!("{message}"),
        Some(other) => bail!("unexpected reply from the daemon: {other:?}"),
    }
}

/// An entry with nothing known about attention (a peer that does not say).
pub fn plain_entry(info: crate::proto::frame::SessionInfo) -> SessionEntry {
    SessionEntry {
        info,
        attention: Summary {
            state: State::Running,
            bells: 0,
            notifications: 0,
            last_notification: None,
            title: None,
        },
        detached_since: None,
        expire_after: None,
    }
}

pub async fn ls(args: LsArgs) -> Result<i32> {
    let sessions = list_local().await?;
    print_sessions(&sessions, args.json)?;
    Ok(0)
}

pub fn print_sessions(sessions: &[SessionEntry], json: bool) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if json {
        let v: Vec<serde_json::Value> = sessions
            .iter()
            .map(|e| {
                let s = &e.info;
                let mut v = serde_json::json!({
                    "name": s.name, "id": s.id.to_string(), "command": s.command, "pid": s.pid,
                    "created": s.created, "last_output": s.last_output, "clients": s.clients,
                    "rows": s.size.rows, "cols": s.size.cols, "output_bytes": s.output_bytes,
                });
                if let Some(m) = v.as_object_mut() {
                    m.extend(crate::client::away::json_fields(e, now));
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if sessions.is_empty() {
        println!("no sessions");
        return Ok(());
    }
    println!(
        "{:<12} {:<24} {:>7} {:>9} {:>11} {:>7} {:>7}  {:<9} STATE",
        "NAME", "COMMAND", "PID", "CREATED", "LAST OUTPUT", "CLIENTS", "SIZE", "DETACHED"
    );
    for e in sessions {
        let s = &e.info;
        let cmd: String = s.command.join(" ").chars().take(24).collect();
        let last = s
            .last_output
            .map(|t| ago(now, t))
            .unwrap_or_else(|| "-".into());
        let detached = match (s.clients, e.detached_since) {
            (0, Some(t)) => crate::proto::attention::duration(now.saturating_sub(t)),
            _ => "-".into(),
        };
        // An exited session's pid is no longer its program's.
        let pid = match e.attention.state {
            State::Exited(_) => "-".to_string(),
            _ => s.pid.to_string(),
        };
        println!(
            "{:<12} {:<24} {:>7} {:>9} {:>11} {:>7} {:>7}  {:<9} {}",
            s.name,
            cmd,
            pid,
            ago(now, s.created),
            last,
            s.clients,
            format!("{}x{}", s.size.cols, s.size.rows),
            detached,
            crate::client::away::state_column(&e.attention, s.last_output, now),
        );
    }
    Ok(())
}

fn ago(now: u64, then: u64) -> String {
    let d = now.saturating_sub(then);
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        3600..=86399 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}

pub async fn kill(args: KillArgs) -> Result<i32> {
    match control(Request::Kill {
        name: args.target.clone(),
    })
    .await?
    {
        None => bail!(
            "no session named '{}' (the abide daemon is not running)",
            args.target
        ),
        Some(Down::Done) => Ok(0),
        Some(Down::Error { message, .. }) => bail!("{message}"),
        Some(other) => bail!("unexpected reply from the daemon: {other:?}"),
    }
}

/// `abide history NAME [--tail N]`: the session's rows that scrolled off, to stdout.
pub async fn history(args: HistoryArgs) -> Result<i32> {
    use std::io::Write;
    let rt = paths::runtime_dir()?;
    let req = Request::History {
        name: args.name.clone(),
        tail: args.tail,
    };
    let Some((mut link, mut down)) = launch::request(&rt, req, false).await? else {
        bail!(
            "no session named '{}' (the abide daemon is not running)",
            args.name
        );
    };
    let mut out = std::io::stdout().lock();
    loop {
        match down {
            Down::History { data, last } => {
                out.write_all(&data)?;
                if last {
                    break;
                }
            }
            Down::Error { message, .. } => bail!("{message}"),
            other => bail!("unexpected reply from the daemon: {other:?}"),
        }
        down = link
            .rx
            .next::<Down>()
            .await?
            .context("the daemon closed the connection in the middle of the history")?;
    }
    out.flush()?;
    Ok(0)
}

pub async fn kill_server() -> Result<i32> {
    match control(Request::KillServer).await? {
        None => {
            eprintln!("abide: no daemon running");
            Ok(0)
        }
        Some(Down::Done) => Ok(0),
        Some(other) => bail!("unexpected reply from the daemon: {other:?}"),
    }
}
