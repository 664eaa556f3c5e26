//! The attach driver: executes what the link policy (`proto::policy`) and
//! the resume core (`proto::resume`) decide. It moves bytes between the
//! terminal, the core and the current link, runs link attempts as tasks, and
//! feeds both state machines events and the time. Nothing is decided here:
//! which link to try, use or drop comes from the policy's actions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::client::banner::Screen;
use crate::client::connector::{timing_for, Connector};
use crate::client::escape::{Action, EscapeReader};
use crate::client::tty;
use crate::proto::frame::{Down, Target, WinSize};
use crate::proto::policy::{self, AttemptId, Choice, ConnectError, LinkPolicy};
use crate::proto::resume::{ClientCore, Event, ProtocolError, Timing};
use crate::transport::framed::{Link, LinkKind};

/// A frame write that takes longer than this means the link is stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// At most this many frames already received are written to the terminal
/// at once (a bound on the write, and on the time keys wait meanwhile).
const FRAMES_PER_WRITE: usize = 16;

/// How long the client waits for the server to hear that the exit was shown.
const EXIT_CONFIRM: Duration = Duration::from_secs(1);

/// How long a transport notice stays on the status line.
const NOTICE_FOR: Duration = Duration::from_secs(4);

/// The wall clock ran ahead of the monotonic one by this much: a suspend.
const CLOCK_JUMP: Duration = Duration::from_secs(2);

pub enum Outcome {
    Detached { name: String },
    Exited { name: String, code: i32 },
    Quit { name: String },
}

type AttemptResult = (AttemptId, Result<Link, ConnectError>);
type RegrantResult = Result<(), ConnectError>;

/// Executes the link policy's actions: attempts as tasks, finished links
/// until the policy adopts or cancels them, the current link.
struct Links {
    connector: Arc<dyn Connector>,
    policy: LinkPolicy,
    running: HashMap<AttemptId, tokio::task::JoinHandle<()>>,
    ready: HashMap<AttemptId, Link>,
    results_tx: mpsc::UnboundedSender<AttemptResult>,
    results: mpsc::UnboundedReceiver<AttemptResult>,
    current: Option<Link>,
    /// Transport notices for the status line, oldest first.
    notices: Vec<policy::Notice>,
    gave_up: Option<ConnectError>,
    /// The bootstrap again, for a new grant (`Action::Rebootstrap`).
    regrant: Option<tokio::task::JoinHandle<()>>,
    regrant_tx: mpsc::UnboundedSender<RegrantResult>,
    regrants: mpsc::UnboundedReceiver<RegrantResult>,
    /// How to reattach, said when no new grant could be had.
    reattach: Option<String>,
}

impl Drop for Links {
    fn drop(&mut self) {
        for (_, t) in self.running.drain() {
            t.abort();
        }
        if let Some(t) = self.regrant.take() {
            t.abort();
        }
    }
}

impl Links {
    fn new(connector: Arc<dyn Connector>, now: Instant) -> Self {
        let (results_tx, results) = mpsc::unbounded_channel();
        let (regrant_tx, regrants) = mpsc::unbounded_channel();
        Links {
            policy: LinkPolicy::new(connector.config(), now),
            connector,
            running: HashMap::new(),
            ready: HashMap::new(),
            results_tx,
            results,
            current: None,
            notices: Vec::new(),
            gave_up: None,
            regrant: None,
            regrant_tx,
            regrants,
            reattach: None,
        }
    }

    /// Runs every action the policy has queued.
    async fn execute(&mut self, core: &mut ClientCore) {
        while let Some(action) = self.policy.poll_action() {
            let now = Instant::now();
            match action {
                policy::Action::Start {
                    id,
                    transport,
                    interactive,
                } => {
                    let dial = self.connector.dial(transport, interactive);
                    let tx = self.results_tx.clone();
                    let task = tokio::spawn(async move {
                        let _ = tx.send((id, dial.await));
                    });
                    self.running.insert(id, task);
                }
                policy::Action::Cancel { id } => {
                    if let Some(t) = self.running.remove(&id) {
                        t.abort();
                    }
                    self.ready.remove(&id);
                }
                policy::Action::Adopt { id, transport } => {
                    let Some(mut link) = self.ready.remove(&id) else {
                        continue;
                    };
                    core.set_timing(timing_for(transport));
                    // The old link goes; the server retires its channel (same client id).
                    self.current = None;
                    match send_hello(&mut link, core, now).await {
                        Ok(()) => self.current = Some(link),
                        Err(e) => {
                            tracing::debug!("new {transport} link failed at once: {e:#}");
                            core.link_down(now);
                            self.policy.link_closed(now);
                        }
                    }
                }
                policy::Action::Notice(n) => self.notices.push(n),
                policy::Action::Remember(t) => self.connector.remember(t),
                policy::Action::GiveUp(e) => self.gave_up = Some(e),
                policy::Action::Rebootstrap => self.rebootstrap(core),
            }
        }
    }

    /// Runs the bootstrap again for a new grant to the session shown; the
    /// policy hears the result through `regrants`.
    fn rebootstrap(&mut self, core: &ClientCore) {
        let Some((id, name)) = core.session().cloned() else {
            let e = ConnectError::GrantLost("no session to sign in to again".into());
            self.policy.rebootstrapped(Err(e), Instant::now());
            return;
        };
        tracing::info!("the server refused the grant; asking for a new one over ssh");
        self.reattach = self.connector.reattach_hint(&name);
        let fut = self.connector.regrant(id, &name);
        let tx = self.regrant_tx.clone();
        if let Some(old) = self.regrant.replace(tokio::spawn(async move {
            let _ = tx.send(fut.await);
        })) {
            old.abort();
        }
    }

    /// The re-bootstrap finished.
    fn regranted(&mut self, result: RegrantResult) {
        self.regrant = None;
        match &result {
            Ok(()) => tracing::info!("new grant; reconnecting"),
            Err(e) => tracing::warn!("no new grant: {e}"),
        }
        self.policy.rebootstrapped(result, Instant::now());
    }

    /// An attempt task finished.
    fn finished(&mut self, (id, result): AttemptResult) {
        if self.running.remove(&id).is_none() {
            return; // cancelled meanwhile; the link (if any) is dropped here
        }
        let now = Instant::now();
        match result {
            Ok(link) => {
                self.ready.insert(id, link);
                self.policy.attempt_succeeded(id, now);
            }
            Err(e) => {
                tracing::debug!("link attempt failed: {e}");
                self.policy.attempt_failed(id, e, now);
            }
        }
    }

    /// The current link broke (closed, reset, a stuck write, garbage).
    fn broken(&mut self, core: &mut ClientCore) {
        let now = Instant::now();
        self.current = None;
        core.link_down(now);
        self.policy.link_closed(now);
    }

    /// Tells the policy what the core noticed about the current link.
    fn core_saw(&mut self, ev: &Event) {
        let now = Instant::now();
        match ev {
            Event::LinkQuiet => self.policy.link_quiet(now),
            Event::LinkLost => self.policy.link_lost(now),
            Event::GrantRefused => {
                self.current = None;
                self.policy.grant_refused(now);
            }
            _ => {}
        }
    }

    /// A frame (or the end) from the current link; `seen` looks at each
    /// frame before the core takes it (the predictive echo does).
    fn frame_arrived(
        &mut self,
        core: &mut ClientCore,
        frame: Result<Option<bytes::BytesMut>>,
        seen: impl FnOnce(&Down),
    ) {
        let now = Instant::now();
        match frame {
            Ok(Some(body)) => match crate::proto::frame::decode::<Down>(&body) {
                Ok(f) => {
                    seen(&f);
                    match core.on_frame(f, now) {
                        Ok(()) => self.policy.heard(now),
                        Err(e @ ProtocolError::Retired) => {
                            tracing::debug!("{e}");
                            self.broken(core);
                        }
                        Err(e) => {
                            tracing::warn!("protocol error, reconnecting: {e}");
                            self.broken(core);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("bad frame, reconnecting: {e}");
                    self.broken(core);
                }
            },
            Ok(None) | Err(_) => self.broken(core),
        }
    }

    /// Sends what the core has queued on the current link.
    async fn flush(&mut self, core: &mut ClientCore) {
        if let Some(l) = self.current.as_mut() {
            if flush(l, core).await.is_err() {
                self.broken(core);
            }
        }
    }

    /// Tells the server the exit was shown (the core queued `ExitSeen`; the
    /// daemon then drops the session) and waits, briefly, for the server to
    /// end the channel: dropping the link at once could lose the word, and
    /// the daemon would keep the session for a client that never comes.
    async fn confirm_exit(&mut self, core: &mut ClientCore) {
        self.flush(core).await;
        if let Some(l) = self.current.as_mut() {
            let closed = async { while let Ok(Some(_)) = l.rx.next_raw().await {} };
            let _ = tokio::time::timeout(EXIT_CONFIRM, closed).await;
        }
    }

    fn give_up_error(&self) -> Option<anyhow::Error> {
        self.gave_up.as_ref().map(|e| match e {
            // Not a failure to connect: the connection was fine, the grant was gone.
            ConnectError::GrantLost(_) => anyhow::anyhow!(
                "lost the session: {e}{}",
                match &self.reattach {
                    Some(how) => format!(
                        "\n  The session may still be running there: reattach with '{how}'"
                    ),
                    None => String::new(),
                }
            ),
            ConnectError::Timeout => anyhow::anyhow!(
                "could not connect: {e} (nothing answered; check the network, or try --transport ssh)"
            ),
            _ => anyhow::anyhow!("could not connect: {e}"),
        })
    }
}

/// Reads the next frame of the current link (pending forever without one).
async fn next_frame(current: &mut Option<Link>) -> Result<Option<bytes::BytesMut>> {
    match current.as_mut() {
        Some(l) => l.rx.next_raw().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Makes the first link and attaches, before the terminal goes raw, so that
/// a refusal ("no session named x") or an ssh prompt reaches a normal terminal.
/// `handed`: a link that exists already (the bootstrap's ssh), used at once.
async fn first_attach(
    links: &mut Links,
    core: &mut ClientCore,
    handed: Option<Link>,
) -> Result<()> {
    match handed {
        Some(link) => {
            let transport = match link.kind {
                LinkKind::Quic => policy::Transport::Quic,
                LinkKind::Ssh => policy::Transport::Ssh,
                LinkKind::Local => policy::Transport::Local,
            };
            let id = links.policy.handed_over(transport, Instant::now());
            links.ready.insert(id, link);
        }
        None => links.policy.connect(Instant::now()),
    }
    loop {
        links.execute(core).await;
        if let Some(e) = links.give_up_error() {
            return Err(e);
        }
        while let Some(ev) = core.poll_event() {
            links.core_saw(&ev);
            match ev {
                Event::Attached { .. } => return Ok(()),
                Event::Error { message, .. } => bail!("{message}"),
                Event::Exited { code } => bail!("the session exited (status {code})"),
                Event::Detached => bail!("the session was detached before it attached"),
                _ => {}
            }
        }
        links.execute(core).await;
        links.flush(core).await;
        let (policy_at, core_at) = (links.policy.poll_timeout(), core.poll_timeout());
        tokio::select! {
            Some(r) = links.results.recv() => links.finished(r),
            Some(r) = links.regrants.recv() => links.regranted(r),
            frame = next_frame(&mut links.current) => links.frame_arrived(core, frame, |_| {}),
            _ = sleep_until_opt(policy_at) => {
                links.policy.handle_timeout(Instant::now());
            }
            _ = tokio::time::sleep_until(core_at.into()) => {
                core.handle_timeout(Instant::now());
            }
        }
    }
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

fn new_client_id() -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system randomness");
    u64::from_le_bytes(b)
}

fn new_core(connector: &dyn Connector, target: Target, size: WinSize) -> ClientCore {
    let timing = match connector.config().choice {
        Choice::Only(t) => timing_for(t),
        Choice::Race => Timing::QUIC,
    };
    ClientCore::new(new_client_id(), target, size, timing, Instant::now())
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

/// Writes straight to the descriptor: stdout's line buffering would cut each
/// piece at its last newline into two writes, and each write to a terminal
/// wakes its reader. The lock keeps other writers out; their buffer is empty
/// (each of them flushes).
pub fn write_terminal(bytes: &[u8]) -> Result<()> {
    let out = std::io::stdout().lock();
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::unistd::write(&out, rest) {
            Ok(0) => anyhow::bail!("writing to the terminal: it took nothing"),
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(std::io::Error::from(e)).context("writing to the terminal"),
        }
    }
    Ok(())
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

/// [`run`], starting on `handed` if there is one (the bootstrap's ssh).
pub async fn run_handed(
    connector: Arc<dyn Connector>,
    target: Target,
    handed: Option<Link>,
) -> Result<Outcome> {
    run_full(connector, target, None, None, handed).await
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
    run_full(connector, target, notices, tap, None).await
}

async fn run_full(
    connector: Arc<dyn Connector>,
    target: Target,
    notices: Option<mpsc::Receiver<String>>,
    tap: Option<OutputTap>,
    handed: Option<Link>,
) -> Result<Outcome> {
    if !tty::is_tty() {
        bail!("not a terminal: attach needs a TTY (use 'abide new -d' to start a session without one)");
    }
    let size = tty::size();
    let picked = matches!(target, Target::Existing(None));
    let mut core = new_core(connector.as_ref(), target, size);
    let mut links = Links::new(connector, Instant::now());
    first_attach(&mut links, &mut core, handed).await?;
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
    drive(links, core, io).await
}

/// The same driver without a terminal: tests and tools feed input and collect
/// output byte for byte.
pub async fn run_headless(
    connector: Arc<dyn Connector>,
    target: Target,
    io: ClientIo,
) -> Result<Outcome> {
    run_headless_handed(connector, target, io, None).await
}

/// [`run_headless`], starting on `handed` if there is one.
pub async fn run_headless_handed(
    connector: Arc<dyn Connector>,
    target: Target,
    io: ClientIo,
    handed: Option<Link>,
) -> Result<Outcome> {
    let mut core = new_core(connector.as_ref(), target, io.size);
    let mut links = Links::new(connector, Instant::now());
    first_attach(&mut links, &mut core, handed).await?;
    drive(links, core, io).await
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

/// Notices a suspend (the wall clock ran ahead of the monotonic one) or a
/// change of local network.
struct Watch {
    wall: SystemTime,
    mono: Instant,
    network: Option<String>,
}

impl Watch {
    fn new(connector: &dyn Connector) -> Self {
        Watch {
            wall: SystemTime::now(),
            mono: Instant::now(),
            network: connector.network(),
        }
    }

    /// Whether the clock jumped or the network changed since the last look.
    fn changed(&mut self, connector: &dyn Connector) -> bool {
        let (wall, mono) = (SystemTime::now(), Instant::now());
        let wall_d = wall.duration_since(self.wall).unwrap_or_default();
        let jumped = wall_d > (mono - self.mono) + CLOCK_JUMP;
        self.wall = wall;
        self.mono = mono;
        let network = connector.network();
        let moved = network != self.network;
        self.network = network;
        jumped || moved
    }
}

async fn drive(mut links: Links, mut core: ClientCore, io: ClientIo) -> Result<Outcome> {
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
    let mut lost_since: Option<Instant> = None;
    let mut banner_tick = tokio::time::interval(Duration::from_millis(500));
    let mut watch_tick = tokio::time::interval(Duration::from_secs(1));
    let mut watch = Watch::new(links.connector.as_ref());
    let mut notice_until: Option<Instant> = None;
    let mut held_notice: Option<policy::Notice> = None;
    // The attach announcement: shown again after output takes the banner away.
    let mut away: Option<String> = None;
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        // Timers that are due fire here too: the select below serves a
        // ready frame before a timer, and under a flood a frame is always
        // ready (pings and the link policy's retries would wait for a pause).
        let now = Instant::now();
        if links.policy.poll_timeout().is_some_and(|t| t <= now) {
            links.policy.handle_timeout(now);
        }
        if core.poll_timeout() <= now {
            core.handle_timeout(now);
        }
        links.execute(&mut core).await;
        if let Some(e) = links.give_up_error() {
            write_terminal(&out)?;
            return Err(e);
        }
        // Apply everything the core wants to tell the terminal.
        while let Some(ev) = core.poll_event() {
            links.core_saw(&ev);
            match ev {
                Event::Write(bytes) => {
                    if predict.needs_model() {
                        predict.hide(&mut out, screen.model());
                    }
                    screen.output(&mut out, &bytes);
                    if let Some(t) = tap.as_mut() {
                        t(&bytes);
                    }
                }
                // The policy heard it (`core_saw`): a new grant is on its way.
                Event::Attached { .. } | Event::LinkQuiet | Event::GrantRefused => {}
                Event::SnapshotFollows => screen.before_snapshot(&mut out),
                Event::LinkLost => {
                    lost_since.get_or_insert_with(Instant::now);
                }
                Event::LinkBack => {
                    lost_since = None;
                    screen.hide(&mut out);
                    if let Some(n) = held_notice.take() {
                        screen.show(&mut out, &n.to_string());
                        notice_until = Some(Instant::now() + NOTICE_FOR);
                    }
                }
                Event::Exited { code } => {
                    write_terminal(&out)?;
                    links.confirm_exit(&mut core).await;
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
                    away = crate::client::away::announcement(&summary).filter(|_| terminal);
                    if away.is_some() {
                        notice_until = Some(Instant::now() + Duration::from_secs(8));
                    }
                }
            }
        }
        // The core's events may have queued policy actions (new attempts).
        links.execute(&mut core).await;
        if terminal {
            if let Some(n) = links.notices.pop() {
                links.notices.clear();
                if lost_since.is_some() {
                    // The no-contact banner has the line: said once contact is back
                    // (a new grant is announced before the link it makes).
                    held_notice = Some(n);
                } else {
                    screen.hide(&mut out);
                    screen.show(&mut out, &n.to_string());
                    notice_until = Some(Instant::now() + NOTICE_FOR);
                }
            }
        } else {
            // No banner without a terminal: the output stays the program's bytes.
            links.notices.clear();
        }
        if !terminal {
        } else if let Some(since) = lost_since {
            let secs = since.elapsed().as_secs() + core.silence(Instant::now()).as_secs().min(1);
            let mut text =
                format!("abide: no contact for {secs} s, reconnecting \u{2014} Ctrl-^ . quits");
            if let Some(e) = links.policy.last_error() {
                let e: String = e.to_string().chars().take(60).collect();
                text.push_str(&format!(" ({e})"));
            }
            screen.show(&mut out, &text);
        } else if notice_until.is_some_and(|t| Instant::now() > t) {
            notice_until = None;
            away = None;
            screen.hide(&mut out);
        } else if let Some(text) = away.as_deref() {
            screen.show(&mut out, text);
        }
        let wrote = !out.is_empty();
        if predict.needs_model() {
            predict.render(&mut out, screen.model(), wrote);
        }
        if !out.is_empty() {
            write_terminal(&out)?;
            out.clear();
        }
        links.flush(&mut core).await;

        let (policy_at, core_at) = (links.policy.poll_timeout(), core.poll_timeout());
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
                            if links.current.is_some() && lost_since.is_none() {
                                core.detach();
                            } else {
                                return Ok(Outcome::Quit { name: session_name(&core) });
                            }
                        }
                        Action::Quit => return Ok(Outcome::Quit { name: session_name(&core) }),
                    }
                }
            }
            frame = next_frame(&mut links.current) => {
                links.frame_arrived(&mut core, frame, |f| predict.frame(f));
                // Frames already here are taken before the terminal is
                // written: a flood goes out in large writes (each write wakes
                // the terminal's reader) and is acknowledged once.
                for _ in 1..FRAMES_PER_WRITE {
                    let Some(frame) = next_frame(&mut links.current).now_or_never() else {
                        break;
                    };
                    links.frame_arrived(&mut core, frame, |f| predict.frame(f));
                    if links.current.is_none() {
                        break;
                    }
                }
            }
            Some(r) = links.results.recv() => links.finished(r),
            Some(r) = links.regrants.recv() => links.regranted(r),
            _ = sleep_until_opt(policy_at) => {
                links.policy.handle_timeout(Instant::now());
            }
            _ = tokio::time::sleep_until(core_at.into()) => {
                core.handle_timeout(Instant::now());
            }
            _ = watch_tick.tick() => {
                if watch.changed(links.connector.as_ref()) {
                    let hint = links.connector.hint();
                    links.policy.network_changed(hint, Instant::now());
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
    }
}

fn session_name(core: &ClientCore) -> String {
    core.session().map(|s| s.1.clone()).unwrap_or_default()
}
