//! The attach driver: moves bytes between the terminal, the resume state
//! machine and whatever link is current, and finds a new link when the old one
//! goes quiet. All protocol decisions live in `proto::resume`; this file only
//! does I/O and time.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use crate::client::banner::Screen;
use crate::client::connector::{Connector, LinkFuture};
use crate::client::escape::{Action, EscapeReader};
use crate::client::tty;
use crate::proto::frame::{Down, Target, WinSize};
use crate::proto::resume::{ClientCore, Event};
use crate::transport::framed::Link;

/// A frame write that takes longer than this means the link is stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub enum Outcome {
    Detached { name: String },
    Exited { name: String, code: i32 },
    Quit { name: String },
}

/// Makes the first link and attaches, so that errors such as "no session
/// named x" are reported before the terminal goes raw.
async fn first_attach(connector: &dyn Connector, core: &mut ClientCore) -> Result<Link> {
    let mut attempt = 1;
    loop {
        match try_first_attach(connector, core).await {
            Err(e)
                if attempt < connector.first_attach_attempts()
                    && crate::server::launch::daemon_went_away(&e) =>
            {
                attempt += 1;
                core.link_down(Instant::now());
            }
            Ok(Ok(link)) => return Ok(link),
            Ok(Err(refusal)) => return Err(refusal),
            Err(e) => return Err(e),
        }
    }
}

/// `Err`: the link failed; `Ok(Err)`: the server answered with a refusal.
async fn try_first_attach(
    connector: &dyn Connector,
    core: &mut ClientCore,
) -> Result<Result<Link>> {
    let mut link = connector.connect().await?;
    let now = Instant::now();
    send_hello(&mut link, core, now).await?;
    let frame = tokio::time::timeout(Duration::from_secs(10), link.rx.next::<Down>())
        .await
        .context("the server did not answer the attach within 10 s")??
        .context(crate::server::launch::CLOSED_WITHOUT_ANSWER)?;
    if let Down::Error { message, .. } = &frame {
        return Ok(Err(anyhow::anyhow!("{message}")));
    }
    core.on_frame(frame, Instant::now())?;
    Ok(Ok(link))
}

async fn send_hello(link: &mut Link, core: &mut ClientCore, now: Instant) -> Result<()> {
    let mut hello = core.hello(now);
    hello.auth = link.auth.clone();
    core.link_up(now);
    link.tx.feed(&hello).await?;
    flush(link, core).await
}

async fn flush(link: &mut Link, core: &mut ClientCore) -> Result<()> {
    let fut = async {
        while let Some(f) = core.poll_transmit() {
            link.tx.feed(&f).await?;
        }
        link.tx.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, fut)
        .await
        .context("the link stopped accepting data")?
}

/// Reads the terminal on a plain thread: a blocking read that nothing needs to cancel.
fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        use std::io::Read;
        let typed = tty::take_typeahead();
        if !typed.is_empty() && tx.blocking_send(typed).is_err() {
            return;
        }
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

pub fn write_terminal(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).context("writing to the terminal")?;
    out.flush().context("writing to the terminal")
}

/// Where the terminal's bytes go (stdout, or a test's buffer).
pub type OutputSink = Box<dyn FnMut(&[u8]) -> Result<()> + Send>;
/// Sees the program's output bytes after they were written.
pub type OutputTap = Box<dyn FnMut(&[u8]) + Send>;

/// Where a driver's keystrokes come from and its output goes.
pub struct ClientIo {
    pub input: mpsc::Receiver<Vec<u8>>,
    pub output: OutputSink,
    pub size: WinSize,
    /// A real terminal: follow SIGWINCH, end on SIGTERM/SIGHUP/SIGQUIT, draw the banner.
    pub terminal: bool,
    /// Messages for the status line (the demo narrates its faults here).
    pub notices: Option<mpsc::Receiver<String>>,
    /// Sees the program's output bytes (never the banner's), in order.
    pub tap: Option<OutputTap>,
}

/// Attaches this terminal to a session and runs until detach, exit or quit.
pub async fn run(connector: Arc<dyn Connector>, target: Target) -> Result<Outcome> {
    run_with_notices(connector, target, None).await
}

pub async fn run_with_notices(
    connector: Arc<dyn Connector>,
    target: Target,
    notices: Option<mpsc::Receiver<String>>,
) -> Result<Outcome> {
    run_tapped(connector, target, notices, None).await
}

/// Like [`run`], with status-line notices and a tap that sees every output
/// byte after it was written (the demo counts lines with it).
pub async fn run_tapped(
    connector: Arc<dyn Connector>,
    target: Target,
    notices: Option<mpsc::Receiver<String>>,
    tap: Option<OutputTap>,
) -> Result<Outcome> {
    if !tty::is_tty() {
        bail!("not a terminal: attach needs a TTY (use 'abide new -d' to start a session without one)");
    }
    let size = tty::size();
    let client_id = crate::server::daemon::rand_u64();
    let picked = matches!(target, Target::Existing(None));
    let mut core = ClientCore::new(client_id, target, size, connector.timing(), Instant::now());
    let link = first_attach(connector.as_ref(), &mut core).await?;
    if picked {
        crate::client::terminal_contract::say_picked(&session_name(&core));
    }
    let _raw = tty::RawMode::enter()?;
    let io = ClientIo {
        input: spawn_stdin_reader(),
        output: Box::new(|b: &[u8]| write_terminal(b)),
        size,
        terminal: true,
        notices,
        tap,
    };
    drive(connector, core, link, io).await
}

/// The same driver without a terminal: tests and tools feed input and collect
/// output byte for byte.
pub async fn run_headless(
    connector: Arc<dyn Connector>,
    target: Target,
    io: ClientIo,
) -> Result<Outcome> {
    let client_id = crate::server::daemon::rand_u64();
    let mut core = ClientCore::new(
        client_id,
        target,
        io.size,
        connector.timing(),
        Instant::now(),
    );
    let link = first_attach(connector.as_ref(), &mut core).await?;
    drive(connector, core, link, io).await
}

async fn next_signal(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn next_notice(n: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match n {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn drive(
    connector: Arc<dyn Connector>,
    mut core: ClientCore,
    first: Link,
    io: ClientIo,
) -> Result<Outcome> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |k: SignalKind| -> Result<Option<tokio::signal::unix::Signal>> {
        Ok(if io.terminal { Some(signal(k)?) } else { None })
    };
    let mut winch = sig(SignalKind::window_change())?;
    let mut term = sig(SignalKind::terminate())?;
    let mut hup = sig(SignalKind::hangup())?;
    let mut quit = sig(SignalKind::quit())?;
    let ClientIo {
        input: mut stdin,
        mut output,
        size,
        terminal,
        mut notices,
        mut tap,
    } = io;
    let mut write_terminal = move |b: &[u8]| output(b);
    let mut escape = EscapeReader::default();
    let mut screen = if terminal {
        Screen::for_terminal(size)
    } else {
        Screen::new(size)
    };
    let mut predict = crate::client::predict_overlay::PredictOverlay::default();
    let mut link: Option<Link> = Some(first);
    let mut attempts: FuturesUnordered<LinkFuture> = FuturesUnordered::new();
    let mut attempt_count = 0u32;
    let mut next_attempt = Instant::now();
    let mut lost_since: Option<Instant> = None;
    let mut banner_tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_error: Option<String> = None;
    let mut notice_until: Option<Instant> = None;
    let mut out = Vec::with_capacity(64 * 1024);

    core.set_timing(timing_for(
        link.as_ref().map(|l| l.kind),
        connector.as_ref(),
    ));
    if let Some(n) = connector.take_notice().filter(|_| terminal) {
        screen.show(&mut out, &n);
        notice_until = Some(Instant::now() + Duration::from_secs(4));
    }
    // Better paths (QUIC after an ssh fallback) are tried while the link is up.
    let mut upgrades: FuturesUnordered<LinkFuture> = FuturesUnordered::new();
    let mut next_upgrade = connector.upgrade_interval().map(|i| Instant::now() + i);
    // Events from the first attach (Attached) are already queued.
    loop {
        // Apply everything the core wants to tell the terminal.
        while let Some(ev) = core.poll_event() {
            match ev {
                Event::Write(bytes) => {
                    predict.hide(&mut out, screen.model());
                    screen.output(&mut out, &bytes);
                    if let Some(t) = tap.as_mut() {
                        t(&bytes);
                    }
                }
                Event::Attached { .. } => {}
                Event::SnapshotFollows => screen.before_snapshot(&mut out),
                Event::LinkLost => {
                    lost_since.get_or_insert_with(Instant::now);
                }
                Event::LinkBack => {
                    lost_since = None;
                    attempts.clear();
                    attempt_count = 0;
                    screen.hide(&mut out);
                }
                Event::Exited { code } => {
                    write_terminal(&out)?;
                    return Ok(Outcome::Exited {
                        name: session_name(&core),
                        code,
                    });
                }
                Event::Detached => {
                    write_terminal(&out)?;
                    return Ok(Outcome::Detached {
                        name: session_name(&core),
                    });
                }
                Event::Error { message, .. } => {
                    write_terminal(&out)?;
                    bail!("{message}");
                }
                Event::Away(summary) => {
                    if let Some(text) =
                        crate::client::away::announcement(&summary).filter(|_| terminal)
                    {
                        screen.show(&mut out, &text);
                        notice_until = Some(Instant::now() + Duration::from_secs(6));
                    }
                }
            }
        }
        if !terminal {
            // No banner without a terminal: the output stays the program's bytes.
        } else if let Some(since) = lost_since {
            let secs = since.elapsed().as_secs() + core.silence(Instant::now()).as_secs().min(1);
            let mut text =
                format!("abide: no contact for {secs} s, reconnecting \u{2014} Ctrl-^ . quits");
            if let Some(e) = &last_error {
                text.push_str(&format!(" ({e})"));
            }
            screen.show(&mut out, &text);
        } else if notice_until.is_some_and(|t| Instant::now() > t) {
            notice_until = None;
            screen.hide(&mut out);
        }
        let wrote = !out.is_empty();
        predict.render(&mut out, screen.model(), wrote);
        if !out.is_empty() {
            write_terminal(&out)?;
            out.clear();
        }
        if let Some(l) = link.as_mut() {
            if flush(l, &mut core).await.is_err() {
                link = None;
                core.link_down(Instant::now());
                continue;
            }
        }
        if let (Some(since), Some(limit)) = (lost_since, connector.give_up_after()) {
            if since.elapsed() > limit {
                bail!("lost the connection to the session and could not get it back");
            }
        }
        // Start another attempt at a new link while the current one is quiet.
        let want_attempt = lost_since.is_some() && attempts.len() < connector.max_parallel();
        let attempt_at = if want_attempt {
            Some(next_attempt)
        } else {
            None
        };

        tokio::select! {
            biased;
            Some(data) = stdin.recv() => {
                for action in escape.feed(&data) {
                    match action {
                        Action::Send(bytes) => {
                            core.user_input(&bytes);
                            predict.keys(&bytes, core.last_input_seq(), screen.model());
                        }
                        Action::Detach => {
                            if link.is_some() && lost_since.is_none() {
                                core.detach();
                            } else {
                                return Ok(Outcome::Quit { name: session_name(&core) });
                            }
                        }
                        Action::Quit => return Ok(Outcome::Quit { name: session_name(&core) }),
                    }
                }
            }
            frame = async { link.as_mut().unwrap().rx.next_raw().await }, if link.is_some() => {
                match frame {
                    Ok(Some(body)) => {
                        let now = Instant::now();
                        match crate::proto::frame::decode::<Down>(&body) {
                            Ok(f) => {
                                predict.frame(&f);
                                if let Err(e) = core.on_frame(f, now) {
                                    tracing::warn!("protocol error, reconnecting: {e}");
                                    link = None;
                                    core.link_down(now);
                                }
                            }
                            Err(e) => {
                                tracing::warn!("bad frame, reconnecting: {e}");
                                link = None;
                                core.link_down(now);
                            }
                        }
                    }
                    Ok(None) | Err(_) => {
                        link = None;
                        core.link_down(Instant::now());
                    }
                }
            }
            Some(result) = attempts.next(), if !attempts.is_empty() => {
                match result {
                    Ok(mut new_link) => {
                        let now = Instant::now();
                        attempts.clear();
                        core.set_timing(timing_for(Some(new_link.kind), connector.as_ref()));
                        match send_hello(&mut new_link, &mut core, now).await {
                            Ok(()) => {
                                next_upgrade = connector.upgrade_interval().map(|i| Instant::now() + i);
                                last_error = None;
                                if let Some(n) = connector.take_notice().filter(|_| terminal) {
                                    screen.hide(&mut out);
                                    screen.show(&mut out, &n);
                                    notice_until = Some(Instant::now() + Duration::from_secs(4));
                                }
                                link = Some(new_link);
                            }
                            Err(e) => last_error = Some(short(&e)),
                        }
                    }
                    Err(e) => last_error = Some(short(&e)),
                }
            }
            _ = async { tokio::time::sleep_until(attempt_at.unwrap().into()).await }, if attempt_at.is_some() => {
                let lost_for = lost_since.map(|t| t.elapsed()).unwrap_or_default();
                if let Some(f) = connector.connect_while_lost(lost_for) {
                    attempts.push(f);
                }
                attempt_count += 1;
                next_attempt = Instant::now() + connector.retry_interval(attempt_count);
            }
            _ = tokio::time::sleep_until(core.poll_timeout().into()) => {
                core.handle_timeout(Instant::now());
                if core.is_lost() && lost_since.is_none() {
                    lost_since = Some(Instant::now());
                }
            }
            _ = async { tokio::time::sleep_until(next_upgrade.unwrap().into()).await },
                if next_upgrade.is_some() && lost_since.is_none() && upgrades.is_empty() => {
                match connector.upgrade() {
                    Some(f) => upgrades.push(f),
                    None => next_upgrade = None,
                }
            }
            Some(result) = upgrades.next(), if !upgrades.is_empty() => {
                match result {
                    // A better path: resume on it; the old link is dropped and
                    // the server retires its channel (same client id).
                    Ok(mut new_link) if lost_since.is_none() => {
                        let now = Instant::now();
                        core.set_timing(timing_for(Some(new_link.kind), connector.as_ref()));
                        if send_hello(&mut new_link, &mut core, now).await.is_ok() {
                            link = Some(new_link);
                            if let Some(n) = connector.take_notice().filter(|_| terminal) {
                                screen.hide(&mut out);
                                screen.show(&mut out, &n);
                                notice_until = Some(Instant::now() + Duration::from_secs(4));
                            }
                        }
                        next_upgrade = connector.upgrade_interval().map(|i| Instant::now() + i);
                    }
                    _ => next_upgrade = connector.upgrade_interval().map(|i| Instant::now() + i),
                }
            }
            _ = banner_tick.tick(), if lost_since.is_some() || notice_until.is_some() => {}
            _ = async { tokio::time::sleep_until(predict.poll_timeout().unwrap().into()).await },
                if predict.poll_timeout().is_some() => {}
            Some(text) = next_notice(&mut notices) => {
                if terminal {
                    screen.hide(&mut out);
                    if !text.is_empty() {
                        screen.show(&mut out, &text);
                    }
                }
            }
            _ = next_signal(&mut winch) => {
                let size = tty::size();
                screen.resize(size);
                predict.resized();
                core.resize(size);
            }
            _ = next_signal(&mut term) => bail!("terminated by SIGTERM"),
            _ = next_signal(&mut hup) => bail!("terminal hung up (SIGHUP)"),
            _ = next_signal(&mut quit) => bail!("quit by SIGQUIT"),
        }
        if lost_since.is_some() && attempts.is_empty() && attempt_count == 0 {
            next_attempt = Instant::now();
        }
    }
}

/// Liveness timing follows the kind of link in use.
fn timing_for(
    kind: Option<crate::transport::framed::LinkKind>,
    connector: &dyn Connector,
) -> crate::proto::resume::Timing {
    use crate::proto::resume::Timing;
    use crate::transport::framed::LinkKind;
    match kind {
        Some(LinkKind::Quic) => Timing::QUIC,
        Some(LinkKind::Ssh) => Timing::SSH,
        Some(LinkKind::Local) => Timing::LOCAL,
        None => connector.timing(),
    }
}

fn session_name(core: &ClientCore) -> String {
    core.session().map(|s| s.1.clone()).unwrap_or_default()
}

fn short(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    s.chars().take(60).collect()
}
