//! The one-line status banner, on the bottom row.
//!
//! We pass the program's bytes straight through (that is what puts them in
//! the terminal's native scrollback), so to take the banner away we must know
//! what was under it: a vt100 model of the client's screen, fed the same
//! bytes, repaints that row. The model starts with the cursor where the
//! terminal reported it at attach; rows above that are the user's earlier
//! output, unknown to the model, which is why the banner goes on the bottom
//! row: at or below the starting cursor, so the model knows what it covers.
//! The cursor is put back from the model too, not with DECSC/DECRC, which
//! would clobber a cursor the program saved itself (only when the terminal
//! did not say where its cursor was do we fall back to DECSC/DECRC).
//!
//! The same model knows how to leave the terminal (see `terminal_contract`):
//! a terminal's screen publishes that after every write.

use std::num::NonZeroU16;

use crate::client::terminal_contract::{self, Tracker};
use crate::plain_lines::{PlainLines, Scrolls};
use crate::proto::frame::WinSize;

/// Counts the rows the model scrolls off (all the fast path needs).
#[derive(Default)]
struct Scrolled(u64);

impl vt100::Callbacks for Scrolled {
    fn on_scroll(&mut self, _: vt100::capture::RowContents<'_>, _: bool) {
        self.0 += 1;
    }
}

impl Scrolls for Scrolled {
    fn scrolls(&self) -> u64 {
        self.0
    }
}

pub struct Screen {
    /// Fed through `plain`: a `cat` scrolls most lines straight past it.
    model: vt100::Parser<Scrolled>,
    plain: PlainLines,
    shown: Option<String>,
    modes: Tracker,
    /// The model's cursor is the terminal's (the terminal told us at attach).
    cursor_known: bool,
    /// This is the user's terminal: publish how to leave it.
    publish: bool,
    /// On the main screen, the cursor is not at the start of a line.
    main_newline: bool,
}

impl Screen {
    /// A model for a terminal whose cursor is at the top left (a test's buffer).
    pub fn new(size: WinSize) -> Self {
        let (r, c) = dims(size);
        Screen {
            model: vt100::Parser::new_with_callbacks(r, c, 0, Scrolled::default()),
            plain: PlainLines::default(),
            shown: None,
            modes: Tracker::default(),
            cursor_known: true,
            publish: false,
            main_newline: false,
        }
    }

    /// The model of the user's terminal, from what was recorded at attach.
    pub fn for_terminal(size: WinSize) -> Self {
        let mut s = Screen::new(size);
        s.publish = true;
        match terminal_contract::recorded().and_then(|r| r.cursor) {
            Some(at) => s.start_at(at),
            None => s.cursor_known = false,
        }
        s.main_newline = !s.cursor_known || s.model.screen().cursor_position().1 != 0;
        s.publish_leave();
        s
    }

    /// Puts the model's cursor where the real one is (zero-based row, col).
    pub fn start_at(&mut self, (row, col): (u16, u16)) {
        self.feed(format!("\x1b[{};{}H", row + 1, col + 1).as_bytes());
    }

    /// The vt100 model of what the terminal shows (the banner excluded);
    /// the echo prediction reads it.
    pub fn model(&mut self) -> &vt100::Screen {
        self.flush();
        self.model.screen()
    }

    pub fn resize(&mut self, size: WinSize) {
        self.flush();
        let (r, c) = dims(size);
        self.model.set_size(r, c);
        self.plain.unsettle();
    }

    /// Runs of plain lines may be held back (see `plain_lines`): whatever
    /// reads the model calls [`Screen::flush`] first.
    fn feed(&mut self, bytes: &[u8]) {
        self.plain.process(&mut self.model, bytes, 0);
    }

    fn flush(&mut self) {
        self.plain.flush(&mut self.model);
    }

    pub fn is_shown(&self) -> bool {
        self.shown.is_some()
    }

    /// Program output: the banner (if any) is taken away first.
    pub fn output(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.hide(out);
        out.extend_from_slice(bytes);
        self.feed(bytes);
        self.modes.observe(bytes);
        if let Some(col0) = self.plain.held() {
            // Held plain lines: the main screen, the cursor at the start of
            // the bottom row or after a cut line's printed start.
            self.main_newline = !self.cursor_known || !col0;
        } else {
            let screen = self.model.screen();
            if !screen.alternate_screen() {
                self.main_newline = !self.cursor_known || screen.cursor_position().1 != 0;
            }
        }
        if self.publish {
            self.publish_leave();
        }
    }

    /// A snapshot follows and redraws everything: first leave what the
    /// session turned on (alternate screen, modes, a scroll region perhaps
    /// set at another size), as on the way out; the snapshot sets again what
    /// the program has on now.
    pub fn before_snapshot(&mut self, out: &mut Vec<u8>) {
        self.hide(out);
        let leave = self.modes.modes().leave_sequence();
        out.extend_from_slice(&leave);
        self.feed(&leave);
        self.modes = Tracker::default();
    }

    /// What leaves the terminal as found, and whether the cursor then needs a
    /// new line. Leaving the alternate screen puts the cursor back where it
    /// was on the main screen, which the model last saw before the switch.
    pub fn leave_sequence(&self) -> (Vec<u8>, bool) {
        (self.modes.modes().leave_sequence(), self.main_newline)
    }

    fn publish_leave(&self) {
        let (leave, newline) = self.leave_sequence();
        terminal_contract::publish(leave, newline);
    }

    pub fn show(&mut self, out: &mut Vec<u8>, text: &str) {
        if self.shown.as_deref() == Some(text) {
            return;
        }
        self.flush();
        let (rows, cols) = self.model.screen().size();
        let cols = cols.get() as usize;
        let mut line: String = text.chars().take(cols.saturating_sub(1)).collect();
        let pad = cols.saturating_sub(1).saturating_sub(line.chars().count());
        line.extend(std::iter::repeat_n(' ', pad));
        self.save_cursor(out);
        out.extend_from_slice(format!("\x1b[{};1H\x1b[0;7m", rows.get()).as_bytes());
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\x1b[0m");
        self.put_cursor_back(out);
        self.shown = Some(text.to_string());
    }

    pub fn hide(&mut self, out: &mut Vec<u8>) {
        if self.shown.take().is_none() {
            return;
        }
        self.flush();
        let screen = self.model.screen();
        let (rows, cols) = screen.size();
        self.save_cursor(out);
        out.extend_from_slice(format!("\x1b[{};1H\x1b[0m\x1b[2K", rows.get()).as_bytes());
        if let Some(row) = screen
            .rows_formatted(0, cols.get())
            .nth(rows.get() as usize - 1)
        {
            out.extend_from_slice(row.as_bytes());
        }
        self.put_cursor_back(out);
    }

    fn save_cursor(&self, out: &mut Vec<u8>) {
        if !self.cursor_known {
            out.extend_from_slice(b"\x1b7");
        }
    }

    fn put_cursor_back(&self, out: &mut Vec<u8>) {
        if !self.cursor_known {
            out.extend_from_slice(b"\x1b8");
            return;
        }
        let screen = self.model.screen();
        let (row, col) = screen.cursor_position();
        out.extend_from_slice(b"\x1b[0m");
        out.extend_from_slice(format!("\x1b[{};{}H", row + 1, col + 1).as_bytes());
        out.extend_from_slice(screen.attributes_formatted().as_bytes());
    }
}

impl Drop for Screen {
    /// The driver is done with the terminal: publish the exact way out.
    fn drop(&mut self) {
        if self.publish {
            self.publish_leave();
        }
    }
}

fn dims(size: WinSize) -> (NonZeroU16, NonZeroU16) {
    let one = NonZeroU16::MIN;
    (
        NonZeroU16::new(size.rows).unwrap_or(one),
        NonZeroU16::new(size.cols).unwrap_or(one),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(rows: u16, cols: u16) -> vt100::Parser {
        vt100::Parser::new(
            NonZeroU16::new(rows).unwrap(),
            NonZeroU16::new(cols).unwrap(),
            0,
        )
    }

    #[test]
    fn banner_is_drawn_and_removed_without_a_trace() {
        let size = WinSize { rows: 5, cols: 30 };
        let mut s = Screen::new(size);
        let mut term = term(5, 30);
        let mut out = Vec::new();
        s.output(&mut out, b"\x1b[1mtop line\x1b[0m\r\nsecond\r\n$ ");
        let before = {
            term.process(&out);
            (term.screen().contents(), term.screen().cursor_position())
        };
        out.clear();
        s.show(&mut out, "abide: no contact for 3 s");
        term.process(&out);
        let last = term.screen().rows(0, 30).nth(4).unwrap();
        assert!(last.starts_with("abide: no contact for 3 s"), "{last:?}");
        assert_eq!(term.screen().cursor_position(), before.1);
        out.clear();
        s.output(&mut out, b"x");
        term.process(&out);
        assert_eq!(term.screen().contents(), before.0 + "x");
        assert!(term.screen().cell(0, 0).unwrap().bold());
    }

    /// Plain lines held back by the model (a `cat`) are applied before the
    /// banner is drawn over the bottom row, and before output takes it away.
    #[test]
    fn banner_after_held_lines_restores_the_row_under_it() {
        let mut s = Screen::new(WinSize { rows: 5, cols: 30 });
        let mut term = term(5, 30);
        let mut out = Vec::new();
        let lines: String = (0..100).map(|i| format!("cat line {i}\r\n")).collect();
        s.output(&mut out, b"$ cat f\r\n");
        for c in lines.as_bytes().chunks(37) {
            s.output(&mut out, c);
        }
        s.output(&mut out, b"partial");
        assert!(s.leave_sequence().1, "the cursor is after a cut line");
        term.process(&out);
        let before = (term.screen().contents(), term.screen().cursor_position());
        out.clear();
        s.show(&mut out, "abide: no contact for 3 s");
        term.process(&out);
        // More lines arrive (held again), then the banner goes.
        out.clear();
        s.output(&mut out, b" end\r\nlast 1\r\nlast 2\r\n");
        term.process(&out);
        let mut want = super::tests::term(5, 30);
        want.process(b"$ cat f\r\n");
        want.process(lines.as_bytes());
        want.process(b"partial end\r\nlast 1\r\nlast 2\r\n");
        assert_eq!(term.screen().contents(), want.screen().contents());
        assert_eq!(
            term.screen().cursor_position(),
            want.screen().cursor_position()
        );
        assert_eq!(s.model().contents(), want.screen().contents());
        assert!(before.0.starts_with("cat line 96\n"), "{:?}", before.0);
    }

    /// The user's terminal already shows earlier output the model never saw:
    /// the banner must not cover it, and the cursor must come back to where
    /// the program's output left it.
    #[test]
    fn banner_below_earlier_output_leaves_it_intact() {
        let mut term = term(10, 40);
        term.process(b"earlier 1\r\nearlier 2\r\nearlier 3\r\n");
        let mut s = Screen::new(WinSize { rows: 10, cols: 40 });
        s.start_at(term.screen().cursor_position());
        let mut out = Vec::new();
        s.output(&mut out, b"$ ");
        s.show(&mut out, "abide: no contact for 3 s");
        term.process(&out);
        assert_eq!(term.screen().cursor_position(), (3, 2));
        out.clear();
        s.hide(&mut out);
        s.output(&mut out, b"typed\r\n$ ");
        term.process(&out);
        assert_eq!(
            term.screen().contents(),
            "earlier 1\nearlier 2\nearlier 3\n$ typed\n$ "
        );
        assert_eq!(term.screen().cursor_position(), (4, 2));
    }

    #[test]
    fn leaving_knows_whether_a_new_line_is_needed() {
        let mut s = Screen::new(WinSize { rows: 10, cols: 40 });
        let mut out = Vec::new();
        s.output(&mut out, b"$ vim x\r\n");
        assert!(!s.leave_sequence().1);
        s.output(&mut out, b"\x1b[?1049h\x1b[5;7Hvim");
        let (leave, newline) = s.leave_sequence();
        assert!(!newline, "vim's main screen cursor was at column 0");
        assert!(String::from_utf8(leave).unwrap().contains("\x1b[?1049l"));
        s.output(&mut out, b"\x1b[?1049l$ ");
        assert!(s.leave_sequence().1);
    }

    /// A snapshot after vim set a scroll region at the old size: the region,
    /// the alternate screen and the modes go first, so nothing of the old
    /// size is left for the snapshot to land in.
    #[test]
    fn before_a_snapshot_the_old_screen_state_is_dropped() {
        let mut s = Screen::new(WinSize { rows: 10, cols: 40 });
        let mut out = Vec::new();
        s.output(&mut out, b"\x1b[?1049h\x1b[1;8r\x1b[?1000h\x1b[?2004h");
        out.clear();
        s.before_snapshot(&mut out);
        let reset = String::from_utf8(out.clone()).unwrap();
        for want in ["\x1b[?1049l", "\x1b[r", "\x1b[?1000l", "\x1b[?2004l"] {
            assert!(reset.contains(want), "{want:?} missing from {reset:?}");
        }
        assert!(!s.model().alternate_screen());
        // What the snapshot turns on is what the way out turns off later.
        s.output(&mut out, b"\x1b[?1h");
        let leave = String::from_utf8(s.leave_sequence().0).unwrap();
        assert!(
            leave.contains("\x1b[?1l") && !leave.contains("1000"),
            "{leave:?}"
        );
    }
}
