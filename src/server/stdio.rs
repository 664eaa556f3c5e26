//! `abide server --stdio`: the remote end of the ssh transport. Relays bytes
//! between ssh's stdin/stdout and the daemon's socket, so the daemon sees an
//! ordinary local channel: the same frames, acknowledgements and resume as
//! every other transport, and ssh has already authenticated the user.
//!
//! Before relaying it writes [`READY`], so the client knows that ssh got in and
//! abide runs; anything a login script printed before it is skipped.

use anyhow::Result;
use tokio::io::AsyncWriteExt;

/// Marks the start of the frame stream on ssh's stdout.
pub use crate::proto::frame::STDIO_READY as READY;

pub async fn run() -> Result<i32> {
    let rt = crate::paths::runtime_dir()?;
    let stream = crate::server::launch::connect_stream_or_start(&rt).await?;
    let (mut sock_r, mut sock_w) = stream.into_split();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    stdout.write_all(READY).await?;
    stdout.flush().await?;
    // Unbuffered copies: interactive latency matters more than syscalls here.
    let up = async {
        let r = tokio::io::copy(&mut stdin, &mut sock_w).await;
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
            stdout.write_all(&buf[..n]).await?;
            stdout.flush().await?;
        }
    };
    // Either side ending ends the relay: ssh gone (stdout broken, stdin at
    // end), or the daemon hung up. Neither is an error worth printing.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    Ok(0)
}
