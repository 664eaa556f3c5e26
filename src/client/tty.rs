//! Raw mode that is restored on every way out: drop, signal, panic. Entering
//! it records what the attach contract needs (`terminal_contract`); leaving
//! writes what puts the terminal back as it was found.

use std::io::IsTerminal;

use anyhow::{bail, Result};

use crate::client::terminal_contract;
use crate::proto::frame::WinSize;

pub struct RawMode(());

static RAW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Keys read while waiting for the cursor report: the program's input.
static TYPEAHEAD: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// What was typed while the terminal was being queried at attach.
pub fn take_typeahead() -> Vec<u8> {
    std::mem::take(&mut *TYPEAHEAD.lock().unwrap_or_else(|e| e.into_inner()))
}

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
        let (cursor, typed) = terminal_contract::query_cursor(terminal_contract::DSR_TIMEOUT);
        terminal_contract::record(terminal_contract::Recorded { cursor });
        *TYPEAHEAD.lock().unwrap_or_else(|e| e.into_inner()) = typed;
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_if_raw();
    }
}

/// Puts the terminal back as the attach found it (see `terminal_contract`),
/// in cooked mode, with the cursor on a fresh line.
pub fn restore() {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = out.write_all(&terminal_contract::leave());
    let _ = out.flush();
    let _ = crossterm::terminal::disable_raw_mode();
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_if_raw();
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
