//! `abide server --stdio`: the remote end of the ssh transport. Relays bytes
//! between ssh's stdin/stdout and the daemon's socket, so the daemon sees an
//! ordinary local channel: the same frames, acknowledgements and resume as
//! every other transport, and ssh has already authenticated the user.
//!
//! Plain `--stdio` has the user's full local rights (create, list, kill any
//! session): it is what the user's own ssh login runs. `--stdio --session
//! NAME` is the restricted mode for a forced command in `authorized_keys`
//! (`command="abide server --stdio --session work"`): the first frame is
//! checked here and only attaching to NAME goes through (see
//! `proto::limits::restrict_to_session`); everything after it is relayed as
//! frames, each bounded by `MAX_FRAME_LEN`.
//!
//! Before relaying it writes [`READY`], so the client knows that ssh got in and
//! abide runs; anything a login script printed before it is skipped.

use anyhow::{bail, Result};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::proto::frame::{self, Down, Hello};
use crate::proto::relay_flush::{may_wait, RelayFlush};
use crate::transport::framed::FrameReader;

/// Marks the start of the frame stream on ssh's stdout.
pub use crate::proto::frame::STDIO_READY as READY;

/// In the restricted mode, as a forced command: whether the client asked ssh
/// for a bootstrap (`abide HOST` bootstraps before it attaches). sshd puts
/// what the client asked for in `SSH_ORIGINAL_COMMAND`; only the word
/// matters, since the bootstrap that runs is restricted to the session anyway.
pub fn forced_bootstrap() -> bool {
    std::env::var("SSH_ORIGINAL_COMMAND")
        .map(|c| c.split_whitespace().any(|w| w == "--bootstrap"))
        .unwrap_or(false)
}

/// In the restricted mode: whether the client's bootstrap also asked to carry
/// on as the stdio relay (`--then-stdio`); the relay is then restricted too.
pub fn forced_then_stdio() -> bool {
    std::env::var("SSH_ORIGINAL_COMMAND")
        .map(|c| c.split_whitespace().any(|w| w == "--then-stdio"))
        .unwrap_or(false)
}

/// `session`: restricted to attaching to this session.
pub async fn run(session: Option<String>) -> Result<i32> {
    if let Some(name) = &session {
        crate::server::daemon::validate_name(name).map_err(anyhow::Error::msg)?;
    }
    let rt = crate::paths::runtime_dir()?;
    let stream = crate::server::launch::connect_stream_or_start(&rt).await?;
    let (sock_r, mut sock_w) = stream.into_split();
    let mut stdout = tokio::io::stdout();
    stdout.write_all(READY).await?;
    stdout.flush().await?;
    // Unbuffered copies: interactive latency matters more than syscalls here.
    let up = async {
        let r = match &session {
            None => tokio::io::copy(&mut tokio::io::stdin(), &mut sock_w)
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from),
            Some(name) => relay_restricted(name, &mut sock_w).await,
        };
        let _ = sock_w.shutdown().await;
        r
    };
    let down = relay_down(sock_r, tokio::io::stdout());
    // Either side ending ends the relay: ssh gone (stdout broken, stdin at
    // end), or the daemon hung up. A refused first frame has been answered
    // with an error frame; the client prints it.
    tokio::select! {
        r = up => {
            if let Err(e) = r {
                tracing::debug!("stdio: {e:#}");
                return Ok(1);
            }
        }
        _ = down => {}
    }
    Ok(0)
}

/// Largest run of frames gathered into one write.
const MAX_BURST: usize = 256 * 1024;

/// Daemon → ssh, frame by frame: each burst (the frames at hand) in one write,
/// and an input ack alone held briefly for the echo that follows, so that
/// Nagle's algorithm on ssh's TCP connection never holds the echo back
/// behind the client's delayed ACK (`proto::relay_flush` decides).
async fn relay_down<R, W>(sock: R, mut out: W) -> Result<()>
where
    R: tokio::io::AsyncRead + Send + 'static,
    W: AsyncWrite + Unpin,
{
    use futures_util::FutureExt;
    use std::time::Instant;

    let mut rx = crate::transport::framed::split(sock, tokio::io::sink()).0;
    let mut flush = RelayFlush::default();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let next = match flush.poll_timeout() {
            Some(t) => tokio::select! {
                f = rx.next_raw() => Some(f),
                _ = tokio::time::sleep_until(t.into()) => None,
            },
            None => Some(rx.next_raw().await),
        };
        let mut write = match next {
            // Held long enough: out it goes.
            None => true,
            Some(f) => {
                let Some(body) = f? else {
                    out.write_all(&buf).await?;
                    out.flush().await?;
                    return Ok(());
                };
                push_frame(&mut buf, &body)?;
                flush.queued(may_wait(&body), Instant::now())
            }
        };
        // Whatever else is at hand joins this write.
        while buf.len() < MAX_BURST {
            let Some(f) = rx.next_raw().now_or_never() else {
                break;
            };
            let Some(body) = f? else {
                break;
            };
            push_frame(&mut buf, &body)?;
            write |= flush.queued(may_wait(&body), Instant::now());
        }
        if write || buf.len() >= MAX_BURST || flush.idle(Instant::now()) {
            out.write_all(&buf).await?;
            out.flush().await?;
            buf.clear();
            flush.written();
        }
    }
}

fn push_frame(buf: &mut Vec<u8>, body: &[u8]) -> Result<()> {
    buf.extend_from_slice(&u32::try_from(body.len())?.to_be_bytes());
    buf.extend_from_slice(body);
    Ok(())
}

/// Checks the hello against the restriction, then relays frame by frame.
async fn relay_restricted(name: &str, sock: &mut (impl AsyncWrite + Unpin)) -> Result<()> {
    let mut rx = crate::transport::framed::split(tokio::io::stdin(), tokio::io::sink()).0;
    let Some(body) = rx.next_raw().await? else {
        return Ok(());
    };
    let refused = match frame::decode_hello(&body) {
        Ok(hello) => match crate::proto::limits::restrict_to_session(hello.request, name) {
            Ok(request) => {
                let allowed = Hello {
                    request,
                    ..Hello::new(crate::proto::Request::List)
                };
                write_frame(sock, &frame::encode(&allowed)).await?;
                None
            }
            Err(e) => Some((e.kind(), e.to_string())),
        },
        // The daemon words version and format errors best: pass them on.
        Err(_) => {
            write_frame(sock, &body).await?;
            None
        }
    };
    if let Some((kind, message)) = refused {
        let mut out = tokio::io::stdout();
        write_frame(
            &mut out,
            &frame::encode(&Down::Error {
                kind,
                message: message.clone(),
            }),
        )
        .await?;
        out.flush().await?;
        bail!(message);
    }
    relay_frames(&mut rx, sock).await
}

async fn relay_frames(rx: &mut FrameReader, sock: &mut (impl AsyncWrite + Unpin)) -> Result<()> {
    while let Some(body) = rx.next_raw().await? {
        write_frame(sock, &body).await?;
    }
    Ok(())
}

async fn write_frame(w: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> Result<()> {
    let len = u32::try_from(body.len())?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Records each write the relay makes to ssh.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl AsyncWrite for Writes {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            b: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.lock().unwrap().push(b.to_vec());
            std::task::Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    async fn send(w: &mut (impl AsyncWrite + Unpin), f: &Down) {
        write_frame(w, &frame::encode(f)).await.unwrap();
        w.flush().await.unwrap();
    }

    fn count(writes: &Writes) -> usize {
        writes.0.lock().unwrap().len()
    }

    /// The daemon writes the input ack and, a few ms later, the echo: ssh
    /// gets them in one write. A lone ack still goes out after the hold.
    #[tokio::test]
    async fn an_input_ack_and_its_echo_leave_in_one_write() {
        let (mut daemon, sock) = tokio::io::duplex(1 << 20);
        let writes = Writes::default();
        let relay = tokio::spawn(relay_down(sock, writes.clone()));
        send(&mut daemon, &Down::InputAck { seq: 1 }).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
        send(
            &mut daemon,
            &Down::Output {
                offset: 0,
                data: b"echo".to_vec(),
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(count(&writes), 1, "ack and echo apart");
        // A pong is never held.
        send(&mut daemon, &Down::Pong { nonce: 7 }).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(count(&writes), 2);
        // An ack alone: out within the hold.
        send(&mut daemon, &Down::InputAck { seq: 2 }).await;
        let t = std::time::Instant::now();
        while count(&writes) < 3 {
            assert!(t.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(t.elapsed() >= crate::proto::relay_flush::HOLD - Duration::from_millis(2));
        drop(daemon);
        relay.await.unwrap().unwrap();
        // Byte for byte what the daemon sent, framed the same.
        let all: Vec<u8> = writes.0.lock().unwrap().concat();
        let mut rx =
            crate::transport::framed::split(std::io::Cursor::new(all), tokio::io::sink()).0;
        let mut got = Vec::new();
        while let Some(f) = rx.next::<Down>().await.unwrap() {
            got.push(f);
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], Down::InputAck { seq: 2 });
    }
}
