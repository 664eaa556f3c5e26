//! The daemon's side of attention: each session's [`Attention`] fed from its
//! output, the daemon-wide [`Journal`] that watchers read, the periodic check
//! for quiet sessions and expired detached ones, and the watch channel.
//!
//! The decisions (what counts as a bell, when a session is quiet, which
//! events a reconnecting watcher gets) are in `abide_proto::attention`; this
//! file only feeds them bytes and time and moves the results around.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use tokio::sync::watch;

use crate::proto::attention::{Attention, EventKind, Journal, Summary};
use crate::proto::frame::{Down, SessionEntry, Up, WatchRequest};
use crate::server::daemon::Daemon;
use crate::server::session::Session;
use crate::transport::framed::{FrameReader, FrameWriter};

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The daemon's journal and the bell that wakes watch channels.
pub struct Hub {
    journal: Mutex<Journal>,
    newest: watch::Sender<u64>,
    pub quiet_after: Option<Duration>,
    pub expire_default: Option<Duration>,
}

impl Hub {
    pub fn new(quiet_after: Option<Duration>, expire_default: Option<Duration>) -> Arc<Hub> {
        Arc::new(Hub {
            journal: Mutex::new(Journal::new(crate::server::daemon::rand_u64())),
            newest: watch::channel(0).0,
            quiet_after,
            expire_default,
        })
    }

    fn publish(&self, id: u64, name: &str, kinds: Vec<EventKind>) {
        if kinds.is_empty() {
            return;
        }
        let mut j = self.journal.lock().unwrap();
        let at = unix_now();
        for k in kinds {
            let ev = j.push(id, name, at, k);
            tracing::info!(session = %name, seq = ev.seq, kind = ?ev.kind, "attention");
        }
        self.newest.send_replace(j.cursor().seq);
    }
}

/// One session's attention, with what the daemon needs for `ls` and expiry.
pub struct SessionAttention {
    hub: Arc<Hub>,
    id: u64,
    name: String,
    core: Mutex<Attention>,
    detached_since: Mutex<Option<SystemTime>>,
    expire_after: Mutex<Option<Duration>>,
}

impl SessionAttention {
    pub fn new(hub: Arc<Hub>, id: u64, name: &str) -> Self {
        SessionAttention {
            core: Mutex::new(Attention::new(hub.quiet_after)),
            expire_after: Mutex::new(hub.expire_default),
            hub,
            id,
            name: name.to_string(),
            detached_since: Mutex::new(Some(SystemTime::now())),
        }
    }

    /// Program output, on the pump's path: a scan of the bytes, no I/O.
    pub fn output(&self, bytes: &[u8], attached: bool) {
        let events = self
            .core
            .lock()
            .unwrap()
            .output(bytes, attached, Instant::now(), unix_now());
        self.hub.publish(self.id, &self.name, events);
    }

    pub fn exited(&self, code: i32) {
        let ev = self.core.lock().unwrap().exited(code);
        self.hub.publish(self.id, &self.name, vec![ev]);
    }

    /// A client attached: it is told what it missed, and the marks go.
    pub fn attached(&self) -> Summary {
        *self.detached_since.lock().unwrap() = None;
        self.core.lock().unwrap().clear()
    }

    pub fn set_expiry(&self, after: Option<Duration>) {
        *self.expire_after.lock().unwrap() = after;
    }

    pub fn entry(&self, session: &Session) -> SessionEntry {
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        SessionEntry {
            info: session.info(),
            attention: self.core.lock().unwrap().summary(),
            // The housekeeping tick starts the detached clock within 200 ms;
            // until it does, a session nobody is attached to was just left.
            detached_since: match session.is_attached() {
                true => None,
                false => Some(secs(
                    *self
                        .detached_since
                        .lock()
                        .unwrap()
                        .get_or_insert_with(SystemTime::now),
                )),
            },
            expire_after: self.expire_after.lock().unwrap().map(|d| d.as_secs()),
        }
    }

    /// Quiet detection and the detached clock; true when the session has
    /// been detached longer than its expiry allows.
    fn tick(&self, attached: bool, now: Instant) -> bool {
        let quiet = self.core.lock().unwrap().poll(attached, now);
        self.hub
            .publish(self.id, &self.name, quiet.into_iter().collect());
        let mut since = self.detached_since.lock().unwrap();
        if attached {
            *since = None;
            return false;
        }
        let since = *since.get_or_insert_with(SystemTime::now);
        let expire = *self.expire_after.lock().unwrap();
        expire.is_some_and(|e| since.elapsed().unwrap_or_default() > e)
    }
}

/// Called by the daemon's housekeeping tick.
pub fn tick(sessions: &[Arc<Session>]) {
    let now = Instant::now();
    for s in sessions {
        if s.attention.tick(s.is_attached(), now) {
            tracing::info!(session = %s.name, "detached longer than its expiry; ending it");
            s.attention.set_expiry(None);
            s.kill();
        }
    }
}

/// How long a watch channel waits for a ping before it counts the client gone.
const WATCH_SILENCE: Duration = Duration::from_secs(30);

/// A watch channel: replay what the client missed, then follow the journal.
pub async fn serve_watch(
    daemon: Arc<Daemon>,
    req: WatchRequest,
    mut rx: FrameReader,
    mut tx: FrameWriter,
) -> Result<()> {
    let hub = daemon.attention.clone();
    let mut newest = hub.newest.subscribe();
    let (replay, cursor) = {
        let j = hub.journal.lock().unwrap();
        (j.since(req.after), j.cursor())
    };
    tx.send(&Down::Watching { cursor }).await?;
    let mut last = cursor;
    if replay.missed > 0 {
        tracing::info!(
            missed = replay.missed,
            "watcher missed events beyond the journal"
        );
    }
    for ev in replay.events {
        tx.feed(&Down::Attention(ev)).await?;
    }
    tx.flush().await?;
    loop {
        tokio::select! {
            changed = newest.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let events = hub.journal.lock().unwrap().since(Some(last)).events;
                for ev in events {
                    last.seq = ev.seq;
                    tx.feed(&Down::Attention(ev)).await?;
                }
                tx.flush().await?;
            }
            frame = tokio::time::timeout(WATCH_SILENCE, rx.next::<Up>()) => match frame {
                Ok(Ok(Some(Up::Ping { nonce }))) => tx.send(&Down::Pong { nonce }).await?,
                Ok(Ok(Some(Up::Detach))) | Ok(Ok(None)) | Err(_) => return Ok(()),
                Ok(Ok(Some(_))) => {}
                Ok(Err(e)) => return Err(e),
            },
        }
    }
}

/// `30s`, `500ms`, `12m`, `7d`, `2h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 12m, 7d"))?;
    let ms = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: unknown unit (use ms, s, m, h or d)")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("7 weeks").is_err());
        assert!(parse_duration("d").is_err());
    }
}
