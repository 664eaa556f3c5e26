//! The local socket between abide commands and the daemon.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::framed::{split, Link, LinkKind};
use crate::proto::frame::{Down, Hello, Request};

pub async fn connect(socket: &Path) -> std::io::Result<Link> {
    Ok(link(tokio::net::UnixStream::connect(socket).await?))
}

pub fn link(stream: tokio::net::UnixStream) -> Link {
    let (r, w) = stream.into_split();
    let (rx, tx) = split(r, w);
    Link {
        rx,
        tx,
        kind: LinkKind::Local,
        auth: None,
        _owner: None,
    }
}

/// How long a control request may take before the daemon counts as hung.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one control request and returns the one reply.
pub async fn request(link: &mut Link, req: Request) -> Result<Down> {
    let fut = async {
        link.tx.send(&Hello::new(req)).await?;
        link.rx.next::<Down>().await
    };
    match tokio::time::timeout(ANSWER_TIMEOUT, fut).await {
        Err(_) => bail!(
            "the abide daemon is not answering (no reply in {} s)",
            ANSWER_TIMEOUT.as_secs()
        ),
        Ok(r) => Ok(r
            .context("talking to the abide daemon")?
            .ok_or(ClosedWithoutAnswer)?),
    }
}

/// Whether `e` says the daemon went away mid-request (it was exiting, having
/// no sessions left) rather than that it refused something: then the request
/// can go to the next daemon, since nothing the old one did survives it.
pub fn daemon_went_away(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ConnectionRefused
            )
        })
    }) || e.chain().any(|c| c.is::<ClosedWithoutAnswer>())
}

/// What `unix::request` says when the daemon closed the connection unanswered.
pub const CLOSED_WITHOUT_ANSWER: &str = "the abide daemon closed the connection";

/// The daemon closed a control connection before answering (typed, so that
/// [`daemon_went_away`] never matches message text).
#[derive(Debug, thiserror::Error)]
#[error("{CLOSED_WITHOUT_ANSWER}")]
pub struct ClosedWithoutAnswer;
