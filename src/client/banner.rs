//! The one-line status banner on the top row.
//!
//! We pass the program's bytes straight through (that is what puts them in
//! the terminal's native scrollback), so to take the banner away we must know
//! what was under it: a vt100 model of the client's screen, fed the same
//! bytes, repaints that row. The cursor is put back from the model too, not
//! with DECSC/DECRC, which would clobber a cursor the program saved itself.

use std::num::NonZeroU16;

use crate::proto::frame::WinSize;

pub struct Screen {
    model: vt100::Parser,
    shown: Option<String>,
}

impl Screen {
    pub fn new(size: WinSize) -> Self {
        let (r, c) = dims(size);
        Screen {
            model: vt100::Parser::new(r, c, 0),
            shown: None,
        }
    }

    pub fn resize(&mut self, size: WinSize) {
        let (r, c) = dims(size);
        self.model.set_size(r, c);
    }

    /// The model of what the program drew (the echo prediction reads it).
    pub fn model(&self) -> &vt100::Screen {
        self.model.screen()
    }

    pub fn is_shown(&self) -> bool {
        self.shown.is_some()
    }

    /// Program output: the banner (if any) is taken away first.
    pub fn output(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.hide(out);
        out.extend_from_slice(bytes);
        self.model.process(bytes);
    }

    pub fn show(&mut self, out: &mut Vec<u8>, text: &str) {
        if self.shown.as_deref() == Some(text) {
            return;
        }
        let cols = self.model.screen().size().1.get() as usize;
        let mut line: String = text.chars().take(cols.saturating_sub(1)).collect();
        let pad = cols.saturating_sub(1).saturating_sub(line.chars().count());
        line.extend(std::iter::repeat_n(' ', pad));
        out.extend_from_slice(b"\x1b[1;1H\x1b[0;7m");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\x1b[0m");
        self.put_cursor_back(out);
        self.shown = Some(text.to_string());
    }

    pub fn hide(&mut self, out: &mut Vec<u8>) {
        if self.shown.take().is_none() {
            return;
        }
        let screen = self.model.screen();
        let cols = screen.size().1.get();
        out.extend_from_slice(b"\x1b[1;1H\x1b[0m\x1b[2K");
        if let Some(row) = screen.rows_formatted(0, cols).next() {
            out.extend_from_slice(row.as_bytes());
        }
        self.put_cursor_back(out);
    }

    fn put_cursor_back(&self, out: &mut Vec<u8>) {
        let screen = self.model.screen();
        let (row, col) = screen.cursor_position();
        out.extend_from_slice(b"\x1b[0m");
        out.extend_from_slice(format!("\x1b[{};{}H", row + 1, col + 1).as_bytes());
        out.extend_from_slice(screen.attributes_formatted().as_bytes());
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

    #[test]
    fn banner_is_drawn_and_removed_without_a_trace() {
        let size = WinSize { rows: 5, cols: 30 };
        let mut s = Screen::new(size);
        let mut term =
            vt100::Parser::new(NonZeroU16::new(5).unwrap(), NonZeroU16::new(30).unwrap(), 0);
        let mut out = Vec::new();
        s.output(&mut out, b"\x1b[1mtop line\x1b[0m\r\nsecond\r\n$ ");
        let before = {
            term.process(&out);
            (term.screen().contents(), term.screen().cursor_position())
        };
        out.clear();
        s.show(&mut out, "abide: no contact for 3 s");
        term.process(&out);
        assert!(term
            .screen()
            .contents()
            .starts_with("abide: no contact for 3 s"));
        assert_eq!(term.screen().cursor_position(), before.1);
        out.clear();
        s.output(&mut out, b"x");
        term.process(&out);
        assert_eq!(term.screen().contents(), before.0 + "x");
        assert!(term.screen().cell(0, 0).unwrap().bold());
    }
}
