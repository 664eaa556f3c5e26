//! Length-delimited postcard frames over any byte stream.

use std::pin::Pin;

use anyhow::{anyhow, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::proto::frame::{self, MAX_FRAME_LEN};

pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec()
}

pub struct FrameReader(FramedRead<BoxRead, LengthDelimitedCodec>);
pub struct FrameWriter(FramedWrite<BoxWrite, LengthDelimitedCodec>);

/// What kind of path a link runs over (for the status line and policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Local,
    Quic,
    Ssh,
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkKind::Local => "local",
            LinkKind::Quic => "QUIC",
            LinkKind::Ssh => "ssh",
        })
    }
}

pub struct Link {
    pub rx: FrameReader,
    pub tx: FrameWriter,
    pub kind: LinkKind,
    /// Proof of a session secret, for links that need one (QUIC).
    pub auth: Option<crate::proto::frame::AuthProof>,
    /// Keeps whatever owns the underlying stream alive (a QUIC connection, an
    /// ssh child process) and tears it down when the link is dropped.
    pub _owner: Option<Box<dyn Send + Sync>>,
}

pub fn split<R, W>(r: R, w: W) -> (FrameReader, FrameWriter)
where
    R: AsyncRead + Send + 'static,
    W: AsyncWrite + Send + 'static,
{
    (
        FrameReader(FramedRead::new(Box::pin(r), codec())),
        FrameWriter(FramedWrite::new(Box::pin(w), codec())),
    )
}

impl FrameReader {
    /// The next raw frame body; `None` at a clean end of stream.
    pub async fn next_raw(&mut self) -> Result<Option<bytes::BytesMut>> {
        match self.0.next().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(anyhow!(e).context("reading a frame")),
        }
    }

    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.next_raw().await? {
            None => Ok(None),
            Some(b) => Ok(Some(frame::decode(&b)?)),
        }
    }
}

impl FrameWriter {
    /// Queues a frame without flushing (see [`flush`](Self::flush)).
    pub async fn feed<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        self.0
            .feed(bytes::Bytes::from(frame::encode(msg)))
            .await
            .context("sending a frame")
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        self.0
            .send(bytes::Bytes::from(frame::encode(msg)))
            .await
            .context("sending a frame")
    }

    pub async fn flush(&mut self) -> Result<()> {
        SinkExt::<bytes::Bytes>::flush(&mut self.0)
            .await
            .context("sending a frame")
    }

    pub async fn close(&mut self) {
        let _ = SinkExt::<bytes::Bytes>::close(&mut self.0).await;
    }
}
