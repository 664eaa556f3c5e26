//! Raw mode that is restored on every way out: drop, signal, panic.

use std::io::IsTerminal;

use anyhow::{bail, Result};

use crate::proto::frame::WinSize;

pub struct RawMode(());

static RAW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For error paths that leave without unwinding through a `RawMode`.
pub fn restore_if_raw() {
    if RAW.swap(false, std::sync::atomic::Ordering::SeqCst) {
        restore();
    }
}

impl RawMode {
    pub fn enter() -> Result<RawMode> {
        if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
            bail!("not a terminal: attach needs a TTY (use 'abide new -d' to start a session without one)");
        }
        crossterm::terminal::enable_raw_mode()?;
        RAW.store(true, std::sync::atomic::Ordering::SeqCst);
        install_panic_hook();
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        RAW.store(false, std::sync::atomic::Ordering::SeqCst);
        restore();
    }
}

/// Puts the terminal back: cooked mode, attributes reset, cursor visible.
pub fn restore() {
    let _ = crossterm::terminal::disable_raw_mode();
    use std::io::Write;
    let mut out = std::io::stdout();
    // Leave modes a program may have set (mouse, bracketed paste, app cursor)
    // so the user's shell is usable again.
    let _ = out.write_all(
        b"\x1b[0m\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?1l\x1b>",
    );
    let _ = out.flush();
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            default(info);
        }));
    });
}

pub fn is_tty() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

pub fn size() -> WinSize {
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => WinSize { rows, cols }.clamped(),
        _ => WinSize::default(),
    }
}
