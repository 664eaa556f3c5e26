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
        Ok(r) => r
            .context("talking to the abide daemon")?
            .context(crate::server::launch::CLOSED_WITHOUT_ANSWER),
    }
}
