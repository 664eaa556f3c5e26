//! Length-delimited postcard frames over any byte stream, or over two
//! streams of one connection: an output lane and a control lane that the
//! core's [`Laned`] picks per frame.

use std::pin::Pin;

use anyhow::{anyhow, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::proto::frame::{self, Lane, Laned, MAX_FRAME_LEN};

pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec()
}

/// Frames from one byte stream, or from two lanes (see [`Lane`]): the
/// control lane is read once the output lane has given its first frame (the
/// hello, or the answer to it), and before the output lane when both have one.
pub struct FrameReader {
    out: FramedRead<BoxRead, LengthDelimitedCodec>,
    control: Option<FramedRead<BoxRead, LengthDelimitedCodec>>,
    /// A frame read ahead and handed back ([`unread`](Self::unread)).
    pending: Option<bytes::BytesMut>,
    first_seen: bool,
}

/// Frames onto one byte stream, or onto two lanes chosen per frame by the
/// core's [`Laned`]; control frames are flushed at once.
pub struct FrameWriter {
    out: FramedWrite<BoxWrite, LengthDelimitedCodec>,
    control: Option<FramedWrite<BoxWrite, LengthDelimitedCodec>>,
}

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
        FrameReader {
            out: FramedRead::new(Box::pin(r), codec()),
            control: None,
            pending: None,
            first_seen: false,
        },
        FrameWriter {
            out: FramedWrite::new(Box::pin(w), codec()),
            control: None,
        },
    )
}

/// Gives a link split by [`split`] a second, control lane (another stream of
/// the same connection).
pub fn add_control_lane<R, W>(rx: &mut FrameReader, tx: &mut FrameWriter, r: R, w: W)
where
    R: AsyncRead + Send + 'static,
    W: AsyncWrite + Send + 'static,
{
    rx.control = Some(FramedRead::new(Box::pin(r), codec()));
    // Counting from here: frames read before (a lanes marker) were the
    // transport's own.
    rx.first_seen = false;
    tx.control = Some(FramedWrite::new(Box::pin(w), codec()));
}

impl FrameReader {
    /// The next raw frame body; `None` at a clean end of stream.
    pub async fn next_raw(&mut self) -> Result<Option<bytes::BytesMut>> {
        if let Some(b) = self.pending.take() {
            self.first_seen = true;
            return Ok(Some(b));
        }
        // Both reads are cancel-safe: a frame half-read stays buffered.
        let next = loop {
            match self.control.as_mut().filter(|_| self.first_seen) {
                None => break self.out.next().await,
                Some(control) => tokio::select! {
                    biased;
                    f = control.next() => match f {
                        // The peer finished its control lane (it is ending the
                        // channel): what it sent last, an exit or a detach, is
                        // still on the output lane, which alone ends the link.
                        None => self.control = None,
                        f => break f,
                    },
                    f = self.out.next() => break f,
                },
            }
        };
        self.first_seen = true;
        match next {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(anyhow!(e).context("reading a frame")),
        }
    }

    /// Hands a frame back: the next [`next_raw`](Self::next_raw) returns it.
    pub fn unread(&mut self, body: bytes::BytesMut) {
        self.pending = Some(body);
    }

    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.next_raw().await? {
            None => Ok(None),
            Some(b) => Ok(Some(frame::decode(&b)?)),
        }
    }
}

impl FrameWriter {
    /// Queues a frame without flushing (see [`flush`](Self::flush)); a
    /// control frame on its own lane goes out at once.
    pub async fn feed<T: Serialize + Laned>(&mut self, msg: &T) -> Result<()> {
        let body = bytes::Bytes::from(frame::encode(msg));
        match (msg.lane(), self.control.as_mut()) {
            (Lane::Control, Some(control)) => control.send(body).await,
            _ => self.out.feed(body).await,
        }
        .context("sending a frame")
    }

    pub async fn send<T: Serialize + Laned>(&mut self, msg: &T) -> Result<()> {
        self.feed(msg).await?;
        self.flush().await
    }

    pub async fn flush(&mut self) -> Result<()> {
        if let Some(control) = self.control.as_mut() {
            SinkExt::<bytes::Bytes>::flush(control)
                .await
                .context("sending a frame")?;
        }
        SinkExt::<bytes::Bytes>::flush(&mut self.out)
            .await
            .context("sending a frame")
    }

    pub async fn close(&mut self) {
        if let Some(control) = self.control.as_mut() {
            let _ = SinkExt::<bytes::Bytes>::close(control).await;
        }
        let _ = SinkExt::<bytes::Bytes>::close(&mut self.out).await;
    }
}
