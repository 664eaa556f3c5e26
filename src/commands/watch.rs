//! `abide watch [HOST...]`: stay connected to each daemon and tell the user
//! when a detached session wants them: a printed line, a desktop notification
//! through this terminal, and/or their own command.

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::mpsc;

use crate::cli::{DesktopChoice, RemoteOpts, WatchArgs};
use crate::client::connector::{self, Connector};
use crate::client::remote::{self as r, BootstrapSpec};
use crate::client::watch::{follow, Report};
use crate::proto::attention::{AttentionEvent, EventKind};

pub async fn run(args: WatchArgs, opts: RemoteOpts) -> Result<i32> {
    let (tx, mut rx) = mpsc::channel::<(String, Report)>(64);
    if args.hosts.is_empty() {
        let rt = crate::paths::runtime_dir()?;
        let conn: Arc<dyn Connector> = Arc::new(connector::Local {
            dial: Box::new(move || {
                let socket = crate::paths::socket_path(&rt);
                Box::pin(async move { Ok(crate::transport::unix::connect(&socket).await?) })
            }),
        });
        spawn_follow(String::new(), conn, tx.clone());
    }
    for host in &args.hosts {
        let conn = remote_connector(&opts, host).await?;
        spawn_follow(host.clone(), conn, tx.clone());
    }
    drop(tx);
    let desktop = desktop_kind(args.desktop);
    eprintln!(
        "abide: watching {}; Ctrl-C stops",
        if args.hosts.is_empty() {
            "this machine".to_string()
        } else {
            args.hosts.join(", ")
        }
    );
    let mut lost_reported = std::collections::HashSet::new();
    while let Some((host, report)) = rx.recv().await {
        match report {
            Report::Event(ev) => {
                if args.no_quiet && matches!(ev.kind, EventKind::Quiet { .. }) {
                    continue;
                }
                deliver(&host, &ev, desktop, args.exec.as_deref());
            }
            Report::Connected => {
                if lost_reported.remove(&host) {
                    eprintln!("abide: {} connected again", place(&host));
                }
            }
            Report::Lost(why) => {
                if lost_reported.insert(host.clone()) {
                    eprintln!("abide: {}: {why}; retrying", place(&host));
                }
            }
        }
    }
    Ok(0)
}

fn place(host: &str) -> String {
    if host.is_empty() {
        "local daemon".into()
    } else {
        host.to_string()
    }
}

fn spawn_follow(host: String, conn: Arc<dyn Connector>, tx: mpsc::Sender<(String, Report)>) {
    let (rtx, mut rrx) = mpsc::channel(16);
    let h = host.clone();
    tokio::spawn(async move {
        if let Err(e) = follow(conn, rtx).await {
            eprintln!("abide: {}: {e:#}", place(&h));
        }
    });
    tokio::spawn(async move {
        while let Some(r) = rrx.recv().await {
            if tx.send((host.clone(), r)).await.is_err() {
                return;
            }
        }
    });
}

/// The same resilient link as `abide HOST` (QUIC, falling back to ssh),
/// granted for watching by a bootstrap over ssh.
async fn remote_connector(opts: &RemoteOpts, host: &str) -> Result<Arc<dyn Connector>> {
    let spec = BootstrapSpec {
        session: None,
        command: &[],
        existing_only: false,
        watch: true,
        handover: false,
    };
    let crate::client::deploy::Bootstrapped { line, server, .. } =
        r::bootstrap(opts, host, &spec).await?;
    let remote = r::connector_for(opts, host, line, server).await?;
    Ok(Arc::new(remote))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Desktop {
    Osc9,
    Osc777,
    Osc99,
}

/// Which notification sequence this terminal understands, if any.
fn desktop_kind(choice: DesktopChoice) -> Option<Desktop> {
    match choice {
        DesktopChoice::Off => None,
        DesktopChoice::Osc9 => Some(Desktop::Osc9),
        DesktopChoice::Osc777 => Some(Desktop::Osc777),
        DesktopChoice::Osc99 => Some(Desktop::Osc99),
        DesktopChoice::Auto => {
            if !crate::client::tty::is_tty() {
                return None;
            }
            let var = |k| std::env::var(k).unwrap_or_default();
            guess_desktop(
                &var("TERM_PROGRAM"),
                &var("TERM"),
                !var("KITTY_WINDOW_ID").is_empty(),
            )
        }
    }
}

fn guess_desktop(term_program: &str, term: &str, kitty: bool) -> Option<Desktop> {
    if kitty || term == "xterm-kitty" {
        return Some(Desktop::Osc99);
    }
    match term_program {
        "iTerm.app" | "WezTerm" | "ghostty" => return Some(Desktop::Osc9),
        _ => {}
    }
    if term.starts_with("foot") || term.starts_with("rxvt") || term == "xterm-ghostty" {
        return Some(Desktop::Osc777);
    }
    None
}

fn desktop_sequence(kind: Desktop, title: &str, body: &str) -> String {
    // Our own text goes inside an OSC: no controls may end it early.
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    let (title, body) = (clean(title), clean(body));
    match kind {
        Desktop::Osc9 if body.is_empty() => format!("\x1b]9;{title}\x1b\\"),
        Desktop::Osc9 => format!("\x1b]9;{title}: {body}\x1b\\"),
        Desktop::Osc777 => format!("\x1b]777;notify;{};{body}\x1b\\", title.replace(';', ",")),
        Desktop::Osc99 => {
            format!("\x1b]99;i=abide:d=0;{title}\x1b\\\x1b]99;i=abide:p=body;{body}\x1b\\")
        }
    }
}

fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Bell => "bell",
        EventKind::Notify { .. } => "notify",
        EventKind::Quiet { .. } => "quiet",
        EventKind::Exited { .. } => "exited",
    }
}

fn deliver(host: &str, ev: &AttentionEvent, desktop: Option<Desktop>, exec: Option<&str>) {
    let session = if host.is_empty() {
        ev.session.clone()
    } else {
        format!("{host}:{}", ev.session)
    };
    let (title, body) = ev.kind.title_body(&session);
    let time = crate::client::away::local_hhmm(ev.at);
    let line = if body.is_empty() {
        format!("{time} {title}")
    } else {
        format!("{time} {title} \u{2014} {body}")
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    if let Some(kind) = desktop {
        let _ = write!(out, "{}", desktop_sequence(kind, &title, &body));
    }
    let _ = out.flush();
    if let Some(cmd) = exec {
        let spawned = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("ABIDE_TITLE", &title)
            .env("ABIDE_BODY", &body)
            .env("ABIDE_SESSION", &ev.session)
            .env("ABIDE_HOST", host)
            .env("ABIDE_EVENT", event_name(&ev.kind))
            .stdin(std::process::Stdio::null())
            .spawn();
        match spawned {
            // Reaped in the background so a slow command never holds up the next event.
            Ok(mut child) => {
                std::thread::spawn(move || child.wait());
            }
            Err(e) => eprintln!("abide: cannot run --exec command: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_and_their_sequences() {
        assert_eq!(
            guess_desktop("iTerm.app", "xterm-256color", false),
            Some(Desktop::Osc9)
        );
        assert_eq!(guess_desktop("", "foot", false), Some(Desktop::Osc777));
        assert_eq!(
            guess_desktop("", "xterm-256color", true),
            Some(Desktop::Osc99)
        );
        assert_eq!(
            guess_desktop("Apple_Terminal", "xterm-256color", false),
            None
        );
        assert_eq!(
            desktop_sequence(Desktop::Osc777, "a;b", "c\x07"),
            "\x1b]777;notify;a,b;c\x1b\\"
        );
        // What we send, our own scanner reads back as the same notification.
        let mut s = crate::proto::attention::Scanner::default();
        let mut out = Vec::new();
        s.feed(
            desktop_sequence(Desktop::Osc99, "T", "B").as_bytes(),
            &mut out,
        );
        assert_eq!(
            out,
            vec![crate::proto::attention::Signal::Notify {
                title: "T".into(),
                body: "B".into()
            }]
        );
    }
}
