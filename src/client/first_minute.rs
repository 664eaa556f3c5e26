//! The first seconds of `abide HOST`, before there is a session to show: a
//! word after half a second of silence, a bound on every ssh connect, and a
//! way out with the same keys as later (`Ctrl-^ .`).
//!
//! The bootstrap ssh may need the terminal (a password, a host key), so abide
//! cannot read keys itself while it runs: two readers of one terminal would
//! steal each other's bytes. Instead the terminal's own quit character is
//! Ctrl-^ for that time: the kernel turns the key into SIGQUIT for abide and
//! its ssh alike (as Ctrl-\ would), abide gives up, and the `.` that follows
//! is discarded. The quit character is put back however this ends.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Result};

/// Silence after which "connecting to HOST…" is shown.
pub const SILENCE: Duration = Duration::from_millis(500);

/// Seconds an ssh may take to reach the host, unless the user's `--ssh` says.
pub const CONNECT_TIMEOUT_S: u32 = 10;

/// `argv` (the user's ssh command) with a ConnectTimeout, unless it has one
/// (ssh takes the first value given, so the user's would win anyway; not
/// adding ours keeps the command line honest).
pub fn with_connect_timeout(mut argv: Vec<String>) -> Vec<String> {
    let has = argv
        .iter()
        .any(|w| w.to_ascii_lowercase().contains("connecttimeout"));
    if !has && !argv.is_empty() {
        argv.splice(
            1..1,
            [
                "-o".to_string(),
                format!("ConnectTimeout={CONNECT_TIMEOUT_S}"),
            ],
        );
    }
    argv
}

/// Runs the bootstrap `fut` for `host`, saying so after [`SILENCE`], and gives
/// up on Ctrl-^.
pub async fn connecting<T>(host: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    let _key = QuitKey::install();
    let mut quit = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::quit())?;
    tokio::pin!(fut);
    let said = tokio::time::sleep(SILENCE);
    tokio::pin!(said);
    let mut told = false;
    loop {
        tokio::select! {
            biased;
            _ = quit.recv() => return gave_up(host).await,
            r = &mut fut => {
                // Ctrl-^ also reached ssh, which may have died before our
                // signal handler woke: a failure that comes with a quit is one.
                if r.is_err()
                    && tokio::time::timeout(Duration::from_millis(300), quit.recv()).await.is_ok()
                {
                    return gave_up(host).await;
                }
                return r;
            }
            _ = &mut said, if !told => {
                told = true;
                // With echo off, ssh is asking for a password on this line.
                if echo_on() {
                    eprint!("abide: connecting to {host}\u{2026} (Ctrl-^ . gives up)\r\n");
                }
            }
        }
    }
}

async fn gave_up<T>(host: &str) -> Result<T> {
    // The `.` after Ctrl-^ (and anything else typed) is not for the shell;
    // the terminal echoed Ctrl-^ as `^^`, which goes too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    discard_input();
    eprint!("\r\x1b[K");
    bail!("gave up connecting to {host}");
}

fn stdin_tty() -> Option<std::io::Stdin> {
    use std::io::IsTerminal;
    let s = std::io::stdin();
    s.is_terminal().then_some(s)
}

fn echo_on() -> bool {
    stdin_tty()
        .and_then(|s| nix::sys::termios::tcgetattr(&s).ok())
        .is_none_or(|t| t.local_flags.contains(nix::sys::termios::LocalFlags::ECHO))
}

fn discard_input() {
    if let Some(s) = stdin_tty() {
        let _ = nix::sys::termios::tcflush(&s, nix::sys::termios::FlushArg::TCIFLUSH);
    }
}

/// Ctrl-^ as the terminal's quit character while it lives.
struct QuitKey(Option<u8>);

impl QuitKey {
    fn install() -> QuitKey {
        use nix::sys::termios::{tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices::VQUIT};
        let Some(s) = stdin_tty() else {
            return QuitKey(None);
        };
        let Ok(mut t) = tcgetattr(&s) else {
            return QuitKey(None);
        };
        let old = t.control_chars[VQUIT as usize];
        t.control_chars[VQUIT as usize] = crate::client::escape::ESCAPE;
        if tcsetattr(&s, SetArg::TCSANOW, &t).is_err() {
            return QuitKey(None);
        }
        QuitKey(Some(old))
    }
}

impl Drop for QuitKey {
    fn drop(&mut self) {
        use nix::sys::termios::{tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices::VQUIT};
        let (Some(old), Some(s)) = (self.0, stdin_tty()) else {
            return;
        };
        // Only the quit character: ssh may have changed the rest on purpose.
        if let Ok(mut t) = tcgetattr(&s) {
            t.control_chars[VQUIT as usize] = old;
            let _ = tcsetattr(&s, SetArg::TCSANOW, &t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn connect_timeout_is_added_unless_the_user_gave_one() {
        assert_eq!(
            with_connect_timeout(words("ssh -p 2222")),
            words("ssh -o ConnectTimeout=10 -p 2222")
        );
        for mine in [
            "ssh -o ConnectTimeout=3",
            "ssh -oconnecttimeout=3",
            "ssh -o ConnectTimeout 3",
        ] {
            assert_eq!(with_connect_timeout(words(mine)), words(mine));
        }
    }
}
