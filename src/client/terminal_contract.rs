//! The attach contract with the user's terminal (docs/terminal.md).
//!
//! At attach we record what we need of the terminal: its size and where its
//! cursor is (a DSR query, `ESC[6n`, answered within a short timeout). While
//! attached, a [`Tracker`] watches the program's output for every mode it turns
//! on. On every way out (detach, quit, exit, a signal, a panic) [`leave`]
//! writes what puts the terminal back as it was found: main screen, full scroll
//! region, cursor visible, default attributes, each mode the session turned on
//! turned off again, and the cursor on a fresh line for abide's own message.
//!
//! The exit paths that cannot reach the client's screen model (a panic, an
//! error unwinding through `RawMode`) read the last state the model published
//! here, so the restore is as exact as the model was.

use std::collections::BTreeMap;

use crate::client::attach::Outcome;
use std::sync::Mutex;
use std::time::Duration;

/// How long the terminal may take to answer the cursor query. Terminals answer
/// in well under a millisecond; this only bounds one that never does.
pub const DSR_TIMEOUT: Duration = Duration::from_millis(400);

/// DEC private modes that are on unless something turned them off.
const DEFAULT_ON: &[u16] = &[7, 25];
/// The alternate screens, left first so the rest applies to the main screen.
const ALT_SCREENS: &[u16] = &[1049, 1047, 47];
/// Modes put back on the way out when the session changed them. Anything else
/// (cursor blink, reverse video) is harmless or left to the program.
const RESTORED: &[u16] = &[
    1, 5, 6, 7, 25, 66, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015, 1016, 2004, 2026,
];

/// What the session changed in the terminal's modes, as seen in its output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modes {
    /// DEC private modes the session set or reset, with their last value.
    pub dec: BTreeMap<u16, bool>,
    /// Application keypad (DECKPAM) on.
    pub keypad: bool,
    /// Kitty keyboard protocol entries pushed and not popped.
    pub kitty_pushed: u32,
    /// The kitty flags of the current entry were set without a push.
    pub kitty_set: bool,
}

impl Modes {
    pub fn is_on(&self, mode: u16) -> bool {
        self.dec
            .get(&mode)
            .copied()
            .unwrap_or(DEFAULT_ON.contains(&mode))
    }

    /// The bytes that undo what the session did, then the fixed resets every
    /// way out writes: scroll region (cursor kept), attributes, cursor shown.
    pub fn leave_sequence(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Synchronized output first, or the terminal would hold back the rest.
        if self.is_on(2026) {
            out.extend_from_slice(b"\x1b[?2026l");
        }
        for &m in ALT_SCREENS {
            if self.is_on(m) {
                out.extend_from_slice(format!("\x1b[?{m}l").as_bytes());
            }
        }
        for &m in RESTORED {
            let default = DEFAULT_ON.contains(&m);
            if m != 2026 && self.dec.get(&m).is_some_and(|&v| v != default) {
                let c = if default { 'h' } else { 'l' };
                out.extend_from_slice(format!("\x1b[?{m}{c}").as_bytes());
            }
        }
        if self.keypad {
            out.extend_from_slice(b"\x1b>");
        }
        if self.kitty_pushed > 0 {
            out.extend_from_slice(format!("\x1b[<{}u", self.kitty_pushed).as_bytes());
        }
        if self.kitty_set {
            out.extend_from_slice(b"\x1b[=0;1u");
        }
        // DECSTBM homes the cursor: save and restore around it.
        out.extend_from_slice(b"\x1b7\x1b[r\x1b8\x1b[0m\x1b[?25h");
        out
    }
}

/// Follows the output stream for mode changes (a second, cheap parser beside
/// the screen model, which does not expose most of these modes).
///
/// Only escape sequences change modes, and ESC starts one from any state of
/// the parser (text, another sequence, a string). So the parser is given
/// each sequence alone: from an ESC until it is done (dispatched, or a
/// string begun), and the text up to the next ESC is skipped. Giving it the
/// text too cost a third of the client's CPU under a flood.
#[derive(Default)]
pub struct Tracker {
    parser: vte::Parser,
    modes: Modes,
    /// A sequence is under way: the next bytes continue it.
    in_sequence: bool,
}

impl Tracker {
    pub fn observe(&mut self, bytes: &[u8]) {
        let mut i = 0;
        if self.in_sequence {
            i = self.sequence(bytes);
        }
        while !self.in_sequence {
            let Some(k) = memchr::memchr(0x1b, &bytes[i..]) else {
                return;
            };
            i += k + self.sequence(&bytes[i + k..]);
        }
    }

    /// Feeds the sequence that `bytes` starts or continues until it is done;
    /// returns how many bytes it took (all of them when it is not done yet).
    fn sequence(&mut self, bytes: &[u8]) -> usize {
        let mut p = Perf {
            modes: &mut self.modes,
            done: false,
        };
        // Text after a sequence that ended without a dispatch (cancelled by
        // CAN or SUB, or ignored) is fed too, up to the next dispatch: text
        // is never the end, as the parser takes the ESC after it with it.
        let n = self.parser.advance_until_terminated(&mut p, bytes);
        self.in_sequence = !p.done;
        n
    }

    pub fn modes(&self) -> &Modes {
        &self.modes
    }
}

struct Perf<'a> {
    modes: &'a mut Modes,
    /// The sequence being fed is over: what follows is text until an ESC.
    done: bool,
}

impl vte::Perform for Perf<'_> {
    fn csi_dispatch(&mut self, params: &vte::Params, intermediates: &[u8], ignore: bool, c: char) {
        self.done = true;
        if ignore {
            return;
        }
        let first = params
            .iter()
            .next()
            .and_then(|p| p.first().copied())
            .unwrap_or(0);
        match (intermediates, c) {
            ([b'?'], 'h' | 'l') => {
                for p in params.iter() {
                    if let Some(&m) = p.first() {
                        // Bounded: only the modes we restore are remembered.
                        if RESTORED.contains(&m) || ALT_SCREENS.contains(&m) {
                            self.modes.dec.insert(m, c == 'h');
                        }
                    }
                }
            }
            ([b'>'], 'u') => {
                self.modes.kitty_pushed = self.modes.kitty_pushed.saturating_add(1).min(64)
            }
            ([b'<'], 'u') => {
                self.modes.kitty_pushed = self
                    .modes
                    .kitty_pushed
                    .saturating_sub(u32::from(first.max(1)))
            }
            ([b'='], 'u') => self.modes.kitty_set = first != 0,
            _ => {}
        }
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], _ignore: bool, byte: u8) {
        self.done = true;
        match (intermediates, byte) {
            ([], b'=') => self.modes.keypad = true,
            ([], b'>') => self.modes.keypad = false,
            // RIS: the terminal is back to its power-on state.
            ([], b'c') => *self.modes = Modes::default(),
            _ => {}
        }
    }

    // A string ended by BEL; one ended by ESC goes on with that ESC's sequence.
    fn osc_dispatch(&mut self, _params: &[&[u8]], bell_terminated: bool) {
        self.done = bell_terminated;
    }

    // A device control string: its data is not ours, and an ESC ends it.
    fn hook(&mut self, _params: &vte::Params, _intermediates: &[u8], _ignore: bool, _c: char) {
        self.done = true;
    }

    fn terminated(&self) -> bool {
        self.done
    }
}

/// What the next way out must write, as last published by the screen model.
struct ExitState {
    leave: Vec<u8>,
    /// The cursor is not known to be at the start of a line after `leave`.
    newline: bool,
}

static EXIT: Mutex<Option<ExitState>> = Mutex::new(None);
static RECORDED: Mutex<Option<Recorded>> = Mutex::new(None);

/// What was recorded of the user's terminal at attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Zero-based (row, col) of the cursor, if the terminal answered.
    pub cursor: Option<(u16, u16)>,
}

/// The screen model's view of how to leave; the latest call wins.
pub fn publish(leave: Vec<u8>, newline: bool) {
    *EXIT.lock().unwrap_or_else(|e| e.into_inner()) = Some(ExitState { leave, newline });
}

/// What every way out writes before abide's own message.
pub fn leave() -> Vec<u8> {
    let state = EXIT.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (mut out, newline) = match state {
        Some(s) => (s.leave, s.newline),
        None => (Modes::default().leave_sequence(), true),
    };
    if newline {
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub fn record(r: Recorded) {
    *RECORDED.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
}

pub fn recorded() -> Option<Recorded> {
    *RECORDED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asks the terminal on fd 0/1 (already raw) where its cursor is. Returns the
/// zero-based position, if answered in time, and whatever else was read
/// meanwhile (keys typed ahead), which belongs to the program.
pub fn query_cursor(timeout: Duration) -> (Option<(u16, u16)>, Vec<u8>) {
    use std::io::Write;
    let mut out = std::io::stdout();
    if out.write_all(b"\x1b[6n").and_then(|_| out.flush()).is_err() {
        return (None, Vec::new());
    }
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        if let Some((pos, start, end)) = find_cpr(&got) {
            got.drain(start..end);
            return (Some(pos), got);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || got.len() > 4096 {
            return (None, got);
        }
        let stdin = std::io::stdin();
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&stdin),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = left.as_millis().min(u16::MAX as u128) as u16;
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {
                let mut buf = [0u8; 256];
                match nix::unistd::read(std::io::stdin(), &mut buf) {
                    Ok(0) | Err(_) => return (None, got),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            _ => return (None, got),
        }
    }
}

/// A cursor position report `ESC [ row ; col R` in `bytes`: the zero-based
/// position and where the report starts and ends.
fn find_cpr(bytes: &[u8]) -> Option<((u16, u16), usize, usize)> {
    let mut i = 0;
    while let Some(off) = bytes[i..].windows(2).position(|w| w == b"\x1b[") {
        let start = i + off;
        let rest = &bytes[start + 2..];
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b';'));
        if let Some(e) = end {
            if rest[e] == b'R' {
                let body = std::str::from_utf8(&rest[..e]).ok()?;
                if let Some((r, c)) = body.split_once(';') {
                    if let (Ok(r), Ok(c)) = (r.parse::<u16>(), c.parse::<u16>()) {
                        let pos = (r.saturating_sub(1), c.saturating_sub(1));
                        return Some((pos, start, start + 2 + e + 1));
                    }
                }
            }
        }
        i = start + 2;
    }
    None
}

/// Prints what happened, on the restored terminal (the way out already put
/// the cursor on a fresh line), and returns abide's exit status. `place` is
/// how the session is named to `abide attach`: `NAME` or `HOST:NAME`.
pub fn farewell(outcome: &Outcome, place: impl Fn(&str) -> String) -> i32 {
    match outcome {
        Outcome::Detached { name } => {
            eprintln!(
                "[detached from session '{name}' \u{2014} reattach: abide attach {}]",
                place(name)
            );
            0
        }
        Outcome::Exited { name, code } => {
            eprintln!("[session '{name}' {}]", describe_exit(*code));
            exit_status(*code)
        }
        Outcome::Quit { name } => {
            eprintln!(
                "[abide quit; session '{name}' keeps running \u{2014} reattach: abide attach {}]",
                place(name)
            );
            0
        }
    }
}

/// `abide attach` without a name took the most recently used session: say which.
pub fn say_picked(name: &str) {
    eprintln!(
        "abide: attaching to session '{name}', the most recently used (abide ls lists them all)"
    );
}

/// How a session ended, in the words of the message after it.
pub fn describe_exit(code: i32) -> String {
    if code < 0 {
        let sig = -code;
        match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("killed by {}", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        format!("exited with status {code}")
    }
}

/// The exit status abide itself returns for a session's `code`: the shell's
/// convention, 128 + signal, for a signal death.
pub fn exit_status(code: i32) -> i32 {
    if code < 0 {
        128 + (-code)
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(bytes: &[u8]) -> Modes {
        let mut t = Tracker::default();
        // Split anywhere: modes must survive a sequence cut between reads.
        for chunk in bytes.chunks(3) {
            t.observe(chunk);
        }
        t.modes().clone()
    }

    /// Every byte through the parser, as the tracker once did: the reference.
    fn parsed_whole(bytes: &[u8]) -> Modes {
        let mut modes = Modes::default();
        let mut p = Perf {
            modes: &mut modes,
            done: false,
        };
        vte::Parser::new().advance(&mut p, bytes);
        modes
    }

    /// Output that changes modes among everything that could hide a change
    /// or fake one: text (UTF-8, cut anywhere), strings ended every way,
    /// sequences aborted, controls inside sequences, C1 bytes, lone ESCs.
    fn hostile_output(seed: u64) -> Vec<u8> {
        let pieces: &[&[u8]] = &[
            b"plain text ",
            "日本語 ".as_bytes(),
            b"\r\n",
            b"\t\x07\x08",
            b"\x1b[1;31mred\x1b[m",
            b"\x1b[?1049h",
            b"\x1b[?1049l",
            b"\x1b[?1000;1006h",
            b"\x1b[?1000l",
            b"\x1b[?25l",
            b"\x1b[?25h",
            b"\x1b[?2004h",
            b"\x1b[?7l",
            b"\x1b[?2026h",
            b"\x1b[>1u",
            b"\x1b[<u",
            b"\x1b[=1u",
            b"\x1b=",
            b"\x1b>",
            b"\x1bc",
            b"\x1b]0;title\x07",
            b"\x1b]0;title\x1b\\",
            b"\x1b]2;unterminated ",
            b"\x1bP1$qm\x1b\\",
            b"\x1bPq#0;2;0;0;0\x18",
            b"\x1b_Gpayload=\x1b\\",
            b"\x1b^privacy\x1b\\",
            b"\x1b[?10\x18",
            b"\x1b[?1\x1a049h",
            b"\x1b[?1\n049h",
            b"\x1b[?1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1;1049h",
            b"\xff\xfe",
            b"\xe6\x97",
            b"\x9b?1049h",
            b"\x1b",
            b"\x1b\x1b[?1h",
            b"\x1b[",
            b"\x1b[?",
            b"1004h",
        ];
        let mut x = seed | 1;
        let mut out = Vec::new();
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(pieces[(x % pieces.len() as u64) as usize]);
        }
        out
    }

    #[test]
    fn skipping_text_sees_every_mode_change_that_parsing_everything_sees() {
        for seed in 1..300u64 {
            let out = hostile_output(seed * 7919);
            let want = parsed_whole(&out);
            for chunk in [1usize, 2, 3, 5, 7, 13, 64, 100, 4096] {
                let mut t = Tracker::default();
                for c in out.chunks(chunk) {
                    t.observe(c);
                }
                assert_eq!(t.modes(), &want, "seed {seed}, chunks of {chunk}");
            }
        }
    }

    #[test]
    fn everything_a_program_turned_on_is_turned_off() {
        let m = modes(
            b"\x1b[?1049h\x1b[?1h\x1b=\x1b[?1000;1006h\x1b[?2004h\x1b[?1004h\x1b[>1u\x1b[?2026h\x1b[?25l\x1b[?7l",
        );
        let s = String::from_utf8(m.leave_sequence()).unwrap();
        for want in [
            "\x1b[?2026l",
            "\x1b[?1049l",
            "\x1b[?1l",
            "\x1b>",
            "\x1b[?1000l",
            "\x1b[?1006l",
            "\x1b[?2004l",
            "\x1b[?1004l",
            "\x1b[<1u",
            "\x1b[?25h",
            "\x1b[?7h",
            "\x1b[r",
            "\x1b[0m",
        ] {
            assert!(s.contains(want), "{want:?} missing from {s:?}");
        }
        assert!(s.starts_with("\x1b[?2026l\x1b[?1049l"), "{s:?}");
    }

    #[test]
    fn modes_turned_off_again_are_left_alone() {
        let m = modes(b"\x1b[?1049h\x1b[?2004hx\x1b[?2004l\x1b[?1049l\x1b[>1u\x1b[<u");
        let s = String::from_utf8(m.leave_sequence()).unwrap();
        assert!(!s.contains("1049"), "{s:?}");
        assert!(!s.contains("2004"), "{s:?}");
        assert!(!s.contains("\x1b[<"), "{s:?}");
        assert_eq!(m.leave_sequence(), Modes::default().leave_sequence());
    }

    #[test]
    fn cursor_report_is_found_among_typed_keys() {
        assert_eq!(find_cpr(b"ab\x1b[12;3Rcd"), Some(((11, 2), 2, 9)));
        assert_eq!(find_cpr(b"\x1b[A\x1b[1;1R"), Some(((0, 0), 3, 9)));
        assert_eq!(find_cpr(b"\x1b[12;3"), None);
        assert_eq!(find_cpr(b"\x1b[5~"), None);
    }

    #[test]
    fn signal_deaths_are_named() {
        assert_eq!(describe_exit(-1), "killed by SIGHUP");
        assert_eq!(describe_exit(129), "exited with status 129");
        assert_eq!(exit_status(-9), 137);
        assert_eq!(exit_status(3), 3);
    }
}
