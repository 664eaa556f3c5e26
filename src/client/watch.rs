//! Following a daemon's attention events over any link a [`Connector`]
//! gives (the local socket, QUIC, ssh), across any number of link losses.
//!
//! The daemon numbers events ([`Cursor`]); a new link asks for everything
//! after the last one this watcher delivered, and anything at or below it is
//! dropped, so an event that happened during a blackhole arrives once, after
//! the link returns, and an event the old link had already delivered is not
//! repeated.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::connector::Connector;
use crate::proto::attention::{AttentionEvent, Dedup};
use crate::proto::frame::{Down, ErrorKind, Hello, Request, Up, WatchRequest};
use crate::transport::framed::Link;

/// What a watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Event(AttentionEvent),
    /// Following events on a (new) link.
    Connected,
    /// The link is gone; trying again (with why).
    Lost(String),
}

/// Follows events until `reports` is closed or the daemon refuses for good.
pub async fn follow(connector: Arc<dyn Connector>, reports: mpsc::Sender<Report>) -> Result<()> {
    let mut dedup = Dedup::default();
    let mut attempts = 0u32;
    loop {
        let why = match crate::client::connector::connect_once(&connector).await {
            Ok((link, transport)) => {
                attempts = 0;
                let timing = crate::client::connector::timing_for(transport);
                match session(link, timing, &mut dedup, &reports).await {
                    Ok(Ended::ReportsClosed) => return Ok(()),
                    Ok(Ended::Lost(why)) => why,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => format!("{e:#}"),
        };
        if reports.send(Report::Lost(why)).await.is_err() {
            return Ok(());
        }
        attempts += 1;
        // 0.25, 0.5, 1, 2, 2 ... s between rounds of attempts.
        tokio::time::sleep(Duration::from_millis(
            250 << attempts.min(4).saturating_sub(1),
        ))
        .await;
    }
}

enum Ended {
    ReportsClosed,
    Lost(String),
}

async fn session(
    mut link: Link,
    timing: crate::proto::resume::Timing,
    dedup: &mut Dedup,
    reports: &mpsc::Sender<Report>,
) -> Result<Ended> {
    let mut hello = Hello::new(Request::Watch(WatchRequest {
        after: dedup.after(),
    }));
    hello.auth = link.auth.clone();
    if let Err(e) = link.tx.send(&hello).await {
        return Ok(Ended::Lost(format!("{e:#}")));
    }
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(timing.ping_interval);
    let mut nonce = 0u64;
    loop {
        let deadline = last_heard + timing.silence_limit;
        tokio::select! {
            frame = link.rx.next::<Down>() => {
                last_heard = Instant::now();
                match frame {
                    Ok(Some(Down::Watching { cursor })) => {
                        dedup.watching(cursor);
                        if reports.send(Report::Connected).await.is_err() {
                            return Ok(Ended::ReportsClosed);
                        }
                    }
                    Ok(Some(Down::Attention(ev))) => {
                        if dedup.accept(&ev) && reports.send(Report::Event(ev)).await.is_err() {
                            return Ok(Ended::ReportsClosed);
                        }
                    }
                    Ok(Some(Down::Pong { .. })) => {}
                    Ok(Some(Down::Error { kind, message })) => match kind {
                        // A daemon that does not know Watch, or a grant that
                        // does not allow it: trying again will not help.
                        ErrorKind::BadRequest | ErrorKind::VersionMismatch => bail!("{message}"),
                        _ => return Ok(Ended::Lost(message)),
                    },
                    Ok(Some(other)) => bail!("unexpected frame on a watch channel: {other:?}"),
                    Ok(None) => return Ok(Ended::Lost("the daemon closed the connection".into())),
                    Err(e) => return Ok(Ended::Lost(format!("{e:#}"))),
                }
            }
            _ = ping.tick() => {
                nonce += 1;
                if let Err(e) = link.tx.send(&Up::Ping { nonce }).await {
                    return Ok(Ended::Lost(format!("{e:#}")));
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Ok(Ended::Lost(format!(
                    "no answer for {} ms",
                    timing.silence_limit.as_millis()
                )));
            }
            _ = reports.closed() => return Ok(Ended::ReportsClosed),
        }
    }
}
