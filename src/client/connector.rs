//! How a client gets a new link to its session, and how hard it tries.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;

use crate::proto::resume::Timing;
use crate::transport::framed::Link;

pub type LinkFuture = Pin<Box<dyn Future<Output = Result<Link>> + Send>>;

pub trait Connector: Send + Sync {
    /// Starts one attempt at a new link.
    fn connect(&self) -> LinkFuture;
    /// Liveness timing for links from this connector.
    fn timing(&self) -> Timing;
    /// While the link is lost: how long after one attempt the next starts
    /// (attempts overlap; the first to finish wins).
    fn retry_interval(&self, attempts_so_far: u32) -> Duration;
    /// Attempts that may run at once.
    fn max_parallel(&self) -> usize {
        4
    }
    /// Stop trying after this long without a link (`None`: keep trying until
    /// the user quits, as a network client must).
    fn give_up_after(&self) -> Option<Duration>;
    /// Like [`connect`](Self::connect), told how long the link has been lost
    /// (a connector may widen its search the longer it lasts). `None`: nothing
    /// worth starting right now (e.g. the one ssh attempt allowed is running).
    /// How many times the very first attach is tried when the link fails
    /// before any answer.
    fn first_attach_attempts(&self) -> usize {
        1
    }
    fn connect_while_lost(&self, _lost_for: Duration) -> Option<LinkFuture> {
        Some(self.connect())
    }
    /// A transport change the user should hear about once ("now over ssh").
    fn take_notice(&self) -> Option<String> {
        None
    }
    /// While the link is up but on a fallback path: how often to try for a
    /// better one, and the attempt itself.
    fn upgrade_interval(&self) -> Option<Duration> {
        None
    }
    fn upgrade(&self) -> Option<LinkFuture> {
        None
    }
}

/// The local daemon, in its runtime directory.
pub struct Local {
    pub runtime_dir: PathBuf,
    /// Start a daemon when none runs (a new session needs one; attaching to
    /// an existing session does not).
    pub start: bool,
}

impl Connector for Local {
    fn connect(&self) -> LinkFuture {
        let rt = self.runtime_dir.clone();
        let start = self.start;
        Box::pin(async move {
            if start {
                return crate::server::launch::connect_or_start(&rt).await;
            }
            let socket = crate::paths::socket_path(&rt);
            Ok(crate::transport::unix::connect(&socket).await?)
        })
    }
    /// A daemon that is exiting may take the connection and close it: the
    /// first attach then goes to the next daemon (started by the command).
    fn first_attach_attempts(&self) -> usize {
        crate::server::launch::ATTEMPTS
    }
    fn timing(&self) -> Timing {
        Timing::LOCAL
    }
    fn retry_interval(&self, _: u32) -> Duration {
        Duration::from_millis(200)
    }
    fn max_parallel(&self) -> usize {
        1
    }
    fn give_up_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(3))
    }
}
