//! One client channel on the daemon, whatever carries it: read the `Hello`,
//! check it, answer a control request or run an attached session.
//!
//! Attached, two halves run at once: the reader applies input, acks and
//! resizes; the writer executes what the channel core
//! ([`crate::proto::server::ServerChannel`]) decides: log bytes at this
//! client's offset within a window sized from the link, the terminal's state
//! when the client is too far behind or its offset left the log, the exit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::sync::{mpsc, watch};

use crate::proto::frame::{
    self, AttachRequest, Attached, Down, ErrorKind, FrameError, Request, Target, Up, MAX_CHUNK,
};
use crate::proto::server::{Action, ServerChannel};
use crate::server::daemon::Daemon;
use crate::server::session::{ClientGuard, ReadGap, Session};
use crate::transport::framed::{FrameReader, FrameWriter};

/// A client gets this long to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// After the exit, how long a channel waits at most for the client to say it
/// has shown it (a round trip, unless the path is down: a blackhole that
/// ends within this delivers the exit on the same link). A client that does
/// not say keeps the session in the daemon.
const EXIT_SEEN_WAIT: Duration = Duration::from_secs(60);

/// Benchmark knob, not a setting: `ABIDE_BENCH_STREAM_ONLY=1` sends every
/// byte, never the terminal's state, so that the throughput benchmark
/// measures the whole pipeline (with states, a client that falls behind
/// receives less and finishes sooner).
static STREAM_ONLY: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    std::env::var_os("ABIDE_BENCH_STREAM_ONLY").is_some_and(|v| v == "1")
});

pub enum Peer {
    /// The Unix socket: only this user can reach it (directory 0700).
    Local,
    /// A QUIC connection: must prove a grant's secret over this exporter value.
    /// `proved` is told when it has (the transport lifts its pre-proof limits).
    Network {
        exporter: [u8; 32],
        proved: Option<tokio::sync::oneshot::Sender<()>>,
    },
}

/// How the daemon's QUIC endpoint serves a connection: a channel whose peer
/// must prove a grant over the connection's exporter.
pub fn quic_serve(daemon: Arc<Daemon>) -> crate::transport::quic::Serve {
    Arc::new(move |rx, tx, unproved| {
        let peer = Peer::Network {
            exporter: unproved.exporter,
            proved: Some(unproved.proved),
        };
        Box::pin(serve(daemon.clone(), rx, tx, peer))
    })
}

async fn refuse(tx: &mut FrameWriter, kind: ErrorKind, message: String) -> Result<()> {
    tx.send(&Down::Error { kind, message }).await
}

pub async fn serve(
    daemon: Arc<Daemon>,
    mut rx: FrameReader,
    mut tx: FrameWriter,
    peer: Peer,
) -> Result<()> {
    let counted = daemon.clone();
    let _count = counted.channel_opened();
    let body = match tokio::time::timeout(HELLO_TIMEOUT, rx.next_raw()).await {
        Err(_) => bail!("no hello within {HELLO_TIMEOUT:?}"),
        Ok(r) => match r? {
            Some(b) => b,
            None => return Ok(()),
        },
    };
    let hello = match frame::decode_hello(&body) {
        Ok(h) => h,
        Err(FrameError::VersionMismatch { peer }) => {
            let msg = format!(
                "protocol version mismatch: the client speaks {peer}, this server speaks {}; install the same abide version on both ends",
                frame::PROTOCOL_VERSION
            );
            refuse(&mut tx, ErrorKind::VersionMismatch, msg.clone()).await?;
            bail!(msg);
        }
        Err(e) => {
            refuse(&mut tx, ErrorKind::BadRequest, e.to_string()).await?;
            bail!(e);
        }
    };
    let mut request = hello.request;
    // Held while the channel lives: the grant does not expire in use.
    let mut _grant_in_use = None;
    if let Peer::Network { exporter, proved } = peer {
        // Nothing but attaching to the granted session, and only with a proof.
        let grant = hello
            .auth
            .as_ref()
            .and_then(|a| daemon.use_grant(&a.grant_id, &exporter, &a.mac));
        let Some(grant) = _grant_in_use.insert(grant) else {
            refuse(
                &mut tx,
                ErrorKind::AuthFailed,
                "authentication failed".into(),
            )
            .await?;
            bail!("network client failed authentication");
        };
        if let Some(p) = proved {
            let _ = p.send(());
        }
        match &mut request {
            Request::Attach(a) => a.target = Target::Id(grant.session_id),
            // A watch grant (`GrantWatch`, session 0) may watch; a session's
            // grant may not: it can come from a restricted forced command
            // (`--stdio --session NAME`) that must not see other sessions.
            Request::Watch(_) if grant.session_id == 0 => {}
            _ => {
                refuse(
                    &mut tx,
                    ErrorKind::BadRequest,
                    "only attach is allowed over the network".into(),
                )
                .await?;
                bail!("network client sent a control request");
            }
        }
    }
    match request {
        Request::List => tx.send(&Down::Sessions(daemon.list())).await,
        Request::Kill { name } => match daemon.kill(&name) {
            Ok(()) => tx.send(&Down::Done).await,
            Err((kind, message)) => refuse(&mut tx, kind, message).await,
        },
        Request::KillServer => {
            tx.send(&Down::Done).await?;
            daemon.shut_down();
            Ok(())
        }
        Request::Grant(g) => match crate::server::bootstrap::grant(&daemon, g).await {
            Ok(granted) => tx.send(&Down::Granted(granted)).await,
            Err((kind, message)) => refuse(&mut tx, kind, message).await,
        },
        Request::Attach(a) => attach(daemon, a, rx, tx).await,
        Request::ListAttention => tx.send(&Down::SessionList(daemon.list_entries())).await,
        Request::Watch(w) => crate::server::attention::serve_watch(daemon, w, rx, tx).await,
        Request::Expire { name, after_secs } => match daemon.find(&Target::Existing(Some(name))) {
            Ok(s) => {
                s.attention.set_expiry(after_secs.map(Duration::from_secs));
                tx.send(&Down::Done).await
            }
            Err((kind, message)) => refuse(&mut tx, kind, message).await,
        },
        Request::GrantWatch { port_range } => {
            match crate::server::bootstrap::grant_watch(&daemon, port_range).await {
                Ok(granted) => tx.send(&Down::Granted(granted)).await,
                Err((kind, message)) => refuse(&mut tx, kind, message).await,
            }
        }
        Request::History { name, tail } => match daemon.find(&Target::Existing(Some(name))) {
            Ok(session) => {
                let tail = tail.map(|t| usize::try_from(t).unwrap_or(usize::MAX));
                send_history(&mut tx, &session.history(tail).await).await
            }
            Err((kind, message)) => refuse(&mut tx, kind, message).await,
        },
    }
}

async fn send_history(tx: &mut FrameWriter, text: &[u8]) -> Result<()> {
    let mut pieces = text.chunks(4 * MAX_CHUNK).peekable();
    if pieces.peek().is_none() {
        return tx
            .send(&Down::History {
                data: Vec::new(),
                last: true,
            })
            .await;
    }
    while let Some(p) = pieces.next() {
        let last = pieces.peek().is_none();
        tx.feed(&Down::History {
            data: p.to_vec(),
            last,
        })
        .await?;
    }
    tx.flush().await
}

async fn attach(
    daemon: Arc<Daemon>,
    req: AttachRequest,
    rx: FrameReader,
    mut tx: FrameWriter,
) -> Result<()> {
    // Before anything is sized by it (the terminal model allocates per cell).
    if let Err(e) = req.size.validate() {
        return refuse(&mut tx, e.kind(), e.to_string()).await;
    }
    let session = match &req.target {
        Target::Create(spec) => daemon.create(spec, req.size),
        t => daemon.find(t),
    };
    let session = match session {
        Ok(s) => s,
        Err((kind, message)) => return refuse(&mut tx, kind, message).await,
    };
    let guard = Arc::new(session.register_client(req.client_id));
    session.set_size(req.size).await;

    let end = session.end_offset();
    let start = match req.resume {
        Some(r) if r.session_id == session.id => {
            if r.offset > end {
                return refuse(
                    &mut tx,
                    ErrorKind::BadRequest,
                    "resume offset is beyond the output".into(),
                )
                .await;
            }
            r.offset
        }
        // A client that has shown nothing gets everything still kept (or a
        // snapshot when the log no longer starts at 0).
        _ => 0,
    };
    tx.send(&Down::Attached(Attached {
        session_id: session.id,
        name: session.name.clone(),
        input_acked: session.input_applied(req.client_id),
        start_offset: start,
    }))
    .await?;
    // What the program did while nobody watched; the marks are cleared.
    let missed = session.attention.attached();
    if missed.bells > 0 || missed.notifications > 0 {
        tx.send(&Down::Away(missed)).await?;
    }

    let (ctrl_tx, ctrl_rx) = mpsc::channel::<Down>(64);
    let (ack_tx, ack_rx) = watch::channel(start);
    let reader = tokio::spawn(read_half(
        daemon.clone(),
        guard.clone(),
        session.clone(),
        req.client_id,
        rx,
        ctrl_tx,
        ack_tx,
    ));
    let result = write_half(&session, start, tx, ctrl_rx, ack_rx, guard.kicked.clone()).await;
    reader.abort();
    drop(guard);
    result
}

async fn read_half(
    daemon: Arc<Daemon>,
    guard: Arc<ClientGuard>,
    session: Arc<Session>,
    client_id: u64,
    mut rx: FrameReader,
    ctrl: mpsc::Sender<Down>,
    ack: watch::Sender<u64>,
) -> Result<()> {
    while let Some(frame) = rx.next::<Up>().await? {
        match frame {
            Up::Input { seq, data } => {
                session.write_input(client_id, seq, &data).await?;
                ctrl.send(Down::InputAck { seq }).await?;
            }
            Up::Ack { offset } => {
                ack.send_if_modified(|a| {
                    let newer = offset > *a;
                    if newer {
                        *a = offset;
                    }
                    newer
                });
            }
            Up::Resize(size) => match size.validate() {
                Ok(size) => session.set_size(size).await,
                // Refused, never clamped; this channel ends, no other one does.
                Err(e) => {
                    let (kind, message) = (e.kind(), e.to_string());
                    ctrl.send(Down::Error { kind, message }).await?;
                    break;
                }
            },
            Up::Ping { nonce } => ctrl.send(Down::Pong { nonce }).await?,
            Up::Detach => {
                // Detached before it is said: a program's next output (a
                // bell, say) already counts as unseen.
                guard.release();
                ctrl.send(Down::Detached).await?;
                break;
            }
            // The client has shown the exit: the channel ends here (closing
            // the stream tells the client it was heard).
            Up::ExitSeen => {
                daemon.exit_seen(&session);
                break;
            }
        }
    }
    Ok(())
}

/// Executes what the channel core decides; wakes on output, acks, control
/// frames, the exit and a kick.
async fn write_half(
    session: &Arc<Session>,
    start: u64,
    mut tx: FrameWriter,
    mut ctrl: mpsc::Receiver<Down>,
    mut acked: watch::Receiver<u64>,
    mut kicked: watch::Receiver<bool>,
) -> Result<()> {
    let mut core = ServerChannel::new(start, Instant::now());
    core.set_adaptive(!*STREAM_ONLY);
    let result = pump(
        session,
        &mut core,
        &mut tx,
        &mut ctrl,
        &mut acked,
        &mut kicked,
    )
    .await;
    tracing::info!(
        session = %session.name,
        states = core.states_sent(),
        bandwidth = core.bandwidth().map(|b| b as u64),
        min_rtt = ?core.min_rtt(),
        window = core.window(),
        "channel ended"
    );
    result
}

async fn pump(
    session: &Arc<Session>,
    core: &mut ServerChannel,
    tx: &mut FrameWriter,
    ctrl: &mut mpsc::Receiver<Down>,
    acked: &mut watch::Receiver<u64>,
    kicked: &mut watch::Receiver<bool>,
) -> Result<()> {
    let mut output = session.subscribe_output();
    let mut exit = session.subscribe_exit();
    let mut tty_modes = session.subscribe_tty_modes();
    tty_modes.mark_changed();
    loop {
        if tty_modes.has_changed().unwrap_or(false) {
            let m = *tty_modes.borrow_and_update();
            tx.feed(&Down::TtyModes(m)).await?;
        }
        // Control frames first, so a pong never waits behind bulk output.
        while let Ok(f) = ctrl.try_recv() {
            let done = matches!(f, Down::Detached | Down::Error { .. });
            tx.feed(&f).await?;
            if done {
                tx.flush().await?;
                return Ok(());
            }
        }
        output.borrow_and_update();
        exit.borrow_and_update();
        let now = Instant::now();
        core.on_ack(*acked.borrow_and_update(), now);
        let log = session.log_state();
        let action = core.poll(log, MAX_CHUNK, now);
        tracing::trace!(?action, end = log.end, modelled = log.modelled, pos = core.position(), inflight = core.in_flight(), window = core.window(), bw = ?core.bandwidth(), rtt = ?core.min_rtt(), "poll");
        match action {
            Some(Action::Output { offset, len }) => match session.read(offset, len) {
                Ok(data) => {
                    tx.feed(&Down::Output { offset, data }).await?;
                    continue;
                }
                // Evicted between the look and the read: the core sees it next time.
                Err(ReadGap::Evicted) => {
                    core.output_unsent(offset);
                    continue;
                }
                Err(ReadGap::Future) => bail!("client offset {offset} beyond output end"),
            },
            Some(Action::Snapshot) => {
                let (snap, at) = session.snapshot().await;
                let wire = send_snapshot(tx, &snap, at).await?;
                core.state_sent(0, at, wire, Instant::now());
                continue;
            }
            Some(Action::State {
                from,
                history_budget,
            }) => {
                // The model only moves forward, so it is still past `from`.
                let (state, at) = match session.state_since(from, history_budget) {
                    Some(state) => state,
                    None => session.snapshot().await,
                };
                let wire = send_snapshot(tx, &state, at).await?;
                core.state_sent(0, at, wire, Instant::now());
                tracing::debug!(from, at, wire, "client behind: sent the state");
                continue;
            }
            Some(Action::Exit { code }) => {
                tx.send(&Down::Exited { code }).await?;
                // Wait for the reader to end: the client says it has shown
                // the exit, or hangs up, or the link dies, or the client
                // comes back on another link. Ending sooner could miss an
                // `ExitSeen` still on its way (a path that comes back after
                // a blackhole delivers the exit late), and the session
                // would be kept for a client that has already seen its end.
                let until = tokio::time::Instant::now() + EXIT_SEEN_WAIT;
                loop {
                    tokio::select! {
                        f = tokio::time::timeout_at(until, ctrl.recv()) => match f {
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => return Ok(()),
                        },
                        _ = kicked.changed() => return Ok(()),
                    }
                }
            }
            None => {}
        }
        tx.flush().await?;
        // A screen held back to pace the link is due then, news or not.
        let paced = core.poll_timeout();
        tokio::select! {
            _ = async { tokio::time::sleep_until(paced.unwrap().into()).await }, if paced.is_some() => {}
            f = ctrl.recv() => match f {
                Some(f) => {
                    let done = matches!(f, Down::Detached | Down::Error { .. });
                    tx.send(&f).await?;
                    if done { return Ok(()); }
                }
                None => return Ok(()), // the client went away
            },
            _ = output.changed() => {}
            _ = acked.changed() => {}
            _ = exit.changed() => {}
            // Sent at the top of the loop.
            Ok(()) = tty_modes.changed() => tty_modes.mark_changed(),
            _ = kicked.changed() => {
                let _ = tx.send(&Down::Detached).await;
                return Ok(());
            }
        }
    }
}

/// Sends `data` as snapshot pieces standing for the output before `at`;
/// returns the bytes sent.
async fn send_snapshot(tx: &mut FrameWriter, data: &[u8], at: u64) -> Result<u64> {
    let mut pieces = data.chunks(MAX_CHUNK).peekable();
    if pieces.peek().is_none() {
        tx.feed(&Down::Snapshot {
            offset: at,
            data: Vec::new(),
            last: true,
        })
        .await?;
    }
    while let Some(p) = pieces.next() {
        let last = pieces.peek().is_none();
        tx.feed(&Down::Snapshot {
            offset: at,
            data: p.to_vec(),
            last,
        })
        .await?;
    }
    Ok(data.len() as u64 + 16)
}
