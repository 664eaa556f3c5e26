//! What the link policy needs from the outside world: how to dial one
//! attempt over a transport, and where to keep the hint of what worked. The
//! policy (`proto::policy`) decides when to dial what; a connector only dials.

use std::future::Future;
use std::pin::Pin;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::proto::policy::{Action, AttemptId, Config, ConnectError, LinkPolicy, Transport};
use crate::proto::resume::Timing;
use crate::transport::framed::Link;

pub type DialFuture = Pin<Box<dyn Future<Output = Result<Link, ConnectError>> + Send>>;
/// A new grant fetched and swapped in, or why not (`ConnectError::GrantLost`).
pub type RegrantFuture = Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>>;

pub trait Connector: Send + Sync {
    /// The policy's knobs: which transports, and the hint for this network.
    fn config(&self) -> Config;
    /// One attempt at a link over `transport`. `interactive`: ssh may prompt
    /// (the first connect, before the terminal is raw).
    fn dial(&self, transport: Transport, interactive: bool) -> DialFuture;
    /// Record which transport worked on this host and local network.
    fn remember(&self, _transport: Transport) {}
    /// The local network as the connector sees it (source address prefix):
    /// a change means the current link may be dead and the hint may differ.
    fn network(&self) -> Option<String> {
        None
    }
    /// The hint for the current network (after [`network`](Self::network) changed).
    fn hint(&self) -> Option<Transport> {
        None
    }
    /// A new grant for session `session_id` (named `name`), the old one being
    /// gone on the server: runs the bootstrap again, without prompting, and
    /// uses the new grant for every dial from then on.
    fn regrant(&self, _session_id: u64, _name: &str) -> RegrantFuture {
        Box::pin(async {
            Err(ConnectError::GrantLost(
                "this connection has no way to sign in again".into(),
            ))
        })
    }
    /// How the user gets back to session `name` after this driver gave up.
    fn reattach_hint(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Liveness timing for a link over `t`.
pub fn timing_for(t: Transport) -> Timing {
    match t {
        Transport::Quic => Timing::QUIC,
        Transport::Ssh => Timing::SSH,
        Transport::Local => Timing::LOCAL,
    }
}

/// One link, made as the session driver makes them (the link policy races
/// the transports, typed failures decide fallbacks), for followers such as
/// `abide watch` that reconnect on their own.
pub async fn connect_once(
    connector: &Arc<dyn Connector>,
) -> Result<(Link, Transport), ConnectError> {
    let mut policy = LinkPolicy::new(connector.config(), Instant::now());
    policy.connect(Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    let mut aborts = HashMap::new();
    let mut ready: HashMap<AttemptId, Link> = HashMap::new();
    loop {
        while let Some(action) = policy.poll_action() {
            match action {
                Action::Start {
                    id,
                    transport,
                    interactive,
                } => {
                    let dial = connector.dial(transport, interactive);
                    let h = tasks.spawn(async move { (id, dial.await) });
                    aborts.insert(id, h);
                }
                Action::Cancel { id } => {
                    if let Some(h) = aborts.remove(&id) {
                        h.abort();
                    }
                    ready.remove(&id);
                }
                Action::Adopt { id, transport } => {
                    if let Some(link) = ready.remove(&id) {
                        return Ok((link, transport));
                    }
                }
                Action::Remember(t) => connector.remember(t),
                Action::Notice(_) => {}
                Action::GiveUp(e) => return Err(e),
                // Only a resume is refused for its grant; this makes a first link.
                Action::Rebootstrap => {}
            }
        }
        let at = policy.poll_timeout();
        tokio::select! {
            Some(done) = tasks.join_next() => {
                let Ok((id, result)) = done else { continue };
                if aborts.remove(&id).is_none() {
                    continue;
                }
                match result {
                    Ok(link) => {
                        ready.insert(id, link);
                        policy.attempt_succeeded(id, Instant::now());
                    }
                    Err(e) => policy.attempt_failed(id, e, Instant::now()),
                }
            }
            _ = async { tokio::time::sleep_until(at.unwrap().into()).await }, if at.is_some() => {
                policy.handle_timeout(Instant::now());
            }
        }
    }
}

/// Opens the local socket (the caller decides whether a daemon is started).
pub type LocalDial =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<Link>> + Send>> + Send + Sync>;

/// The local daemon.
pub struct Local {
    pub dial: LocalDial,
}

impl Connector for Local {
    fn config(&self) -> Config {
        Config::local()
    }

    fn dial(&self, _transport: Transport, _interactive: bool) -> DialFuture {
        let fut = (self.dial)();
        Box::pin(async move {
            // A daemon that is exiting or gone: tried again, a few times.
            fut.await
                .map_err(|e| ConnectError::Unreachable(format!("{e:#}")))
        })
    }
}
