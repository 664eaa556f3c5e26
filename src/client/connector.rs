//! What the link policy needs from the outside world: how to dial one
//! attempt over a transport, and where to keep the hint of what worked. The
//! policy (`proto::policy`) decides when to dial what; a connector only dials.

use std::future::Future;
use std::pin::Pin;

use crate::proto::policy::{Config, ConnectError, Transport};
use crate::transport::framed::Link;

pub type DialFuture = Pin<Box<dyn Future<Output = Result<Link, ConnectError>> + Send>>;

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
