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
    let (mut sock_r, mut sock_w) = stream.into_split();
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
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            use tokio::io::AsyncReadExt;
            let n = sock_r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let mut out = tokio::io::stdout();
            out.write_all(&buf[..n]).await?;
            out.flush().await?;
        }
    };
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
