//! The terminal model of a session: what the screen shows and the lines that
//! scrolled off it, so that a client whose offset has left the output log gets
//! the current screen and its scrollback instead of a torn byte stream.
//!
//! Why vt100: it is maintained, parses xterm's dialect (alternate screen, SGR,
//! scroll regions, modes), and can re-render its state as escape sequences
//! (`state_formatted`), which is exactly what a snapshot is. Its own scrollback
//! stores 32 bytes per cell (25 MB for 10 000 lines of 80 columns), too much
//! for an idle session, so we keep it at zero and catch each row that scrolls
//! off the top through the `on_scroll` callback, as formatted text: about the
//! size of the text itself.

use std::collections::VecDeque;
use std::num::NonZeroU16;

use vt100::{Callbacks, Parser};

use crate::proto::frame::WinSize;

pub struct Terminal {
    parser: Parser<History>,
}

/// Rows that scrolled off, formatted, in one buffer: a `String` per row cost
/// an allocation (and a shrink) per line, which was a third of the model's
/// time on a fast `cat`.
struct History {
    /// Formatted rows, back to back; rows before `starts[0]` are dead and
    /// are dropped in bulk once they are half the buffer.
    text: String,
    /// Where each live row begins in `text`.
    starts: VecDeque<usize>,
    max_lines: usize,
}

impl History {
    fn lines(&self) -> impl Iterator<Item = &str> {
        let ends = self.starts.iter().skip(1).copied().chain([self.text.len()]);
        self.starts.iter().zip(ends).map(|(&a, b)| &self.text[a..b])
    }

    fn len(&self) -> usize {
        self.starts.len()
    }
}

impl Callbacks for History {
    fn on_scroll(&mut self, row: vt100::capture::RowContents<'_>, alternate_screen: bool) {
        // Rows scrolled by a full-screen program on the alternate screen are not
        // history the user would find in their scrollback.
        if alternate_screen || self.max_lines == 0 {
            return;
        }
        if self.starts.len() == self.max_lines {
            self.starts.pop_front();
            let dead = self.starts.front().copied().unwrap_or(self.text.len());
            if dead > self.text.len() / 2 && dead > 64 * 1024 {
                self.text.drain(..dead);
                self.starts.iter_mut().for_each(|s| *s -= dead);
            }
        }
        self.starts.push_back(self.text.len());
        let mut state = vt100::capture::BasicFormattedCaptureState::new();
        // Writing into a String cannot fail.
        let _ = row.write_formatted_basic(&mut self.text, &mut state);
    }
}

/// The model's dimensions. Peers' sizes are refused out of bounds before they
/// get here (`WinSize::validate`); the clamp is only so that no caller can
/// ever size the model (cells × 32 bytes) beyond the documented limits.
fn dims(size: WinSize) -> (NonZeroU16, NonZeroU16) {
    let size = size.clamped();
    let one = NonZeroU16::MIN;
    (
        NonZeroU16::new(size.rows).unwrap_or(one),
        NonZeroU16::new(size.cols).unwrap_or(one),
    )
}

impl Terminal {
    pub fn new(size: WinSize, scrollback_lines: usize) -> Self {
        let (rows, cols) = dims(size);
        let history = History {
            text: String::new(),
            starts: VecDeque::new(),
            max_lines: scrollback_lines,
        };
        Terminal {
            parser: Parser::new_with_callbacks(rows, cols, 0, history),
        }
    }

    pub fn process(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
    }

    pub fn resize(&mut self, size: WinSize) {
        let (rows, cols) = dims(size);
        self.parser.set_size(rows, cols);
    }

    pub fn history_len(&self) -> usize {
        self.parser.callbacks().len()
    }

    /// Visible screen as plain text (tests and diagnostics).
    pub fn screen_text(&self) -> String {
        self.parser.screen().contents()
    }

    /// Escape sequences that, written to a terminal of the same size, put the
    /// scrollback into its native scrollback and then reproduce the screen,
    /// cursor and input modes.
    pub fn render_snapshot(&self) -> Vec<u8> {
        let screen = self.parser.screen();
        let mut out = String::new();
        // Leave the alternate screen and reset attributes so that history lands
        // in the main screen's scrollback, whatever the terminal did before.
        out.push_str("\x1b[?1049l\x1b[0m\r");
        for line in self.parser.callbacks().lines() {
            out.push_str(line);
            out.push_str("\x1b[0m\r\n");
        }
        if screen.alternate_screen() {
            // The main screen behind a full-screen program is not visible; make
            // room so the history above ends up in scrollback, then switch.
            for _ in 1..screen.size().0.get() {
                out.push_str("\r\n");
            }
            out.push_str("\x1b[?1049h");
        } else {
            // Print the screen rows as lines so that everything above them has
            // scrolled into history, then repaint exactly.
            let visible = screen.contents_formatted_basic();
            out.push_str(&visible.replace('\n', "\x1b[0m\r\n"));
        }
        out.push_str("\x1b[0m");
        out.push_str(&screen.state_formatted());
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(size: WinSize, bytes: &[u8]) -> vt100::Parser {
        let mut p = vt100::Parser::new(
            NonZeroU16::new(size.rows).unwrap(),
            NonZeroU16::new(size.cols).unwrap(),
            1000,
        );
        p.process(bytes);
        p
    }

    #[test]
    fn snapshot_reproduces_screen_and_scrollback() {
        let size = WinSize { rows: 5, cols: 20 };
        let mut t = Terminal::new(size, 100);
        for i in 0..30 {
            t.process(format!("line {i}\r\n").as_bytes());
        }
        t.process(b"\x1b[1;31mred\x1b[0m prompt$ ");
        assert_eq!(t.history_len(), 26);
        let shown = replay(size, &t.render_snapshot());
        assert_eq!(shown.screen().contents(), t.screen_text());
        assert_eq!(
            shown.screen().cursor_position(),
            t.parser.screen().cursor_position()
        );
        assert!(shown.screen().cell(4, 0).unwrap().fgcolor() == vt100::Color::Idx(1));
        // Everything above the screen went into the viewer's scrollback, in order.
        let mut viewer = shown;
        viewer.screen_mut().set_scrollback(1000);
        let top = viewer.screen().contents();
        assert!(top.starts_with("line 0\n"), "{top:?}");
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut t = Terminal::new(WinSize { rows: 3, cols: 10 }, 5);
        for i in 0..100 {
            t.process(format!("{i}\r\n").as_bytes());
        }
        assert_eq!(t.history_len(), 5);
        assert_eq!(t.parser.callbacks().lines().last().unwrap(), "97");
    }

    #[test]
    fn history_buffer_compacts_and_keeps_the_newest_lines_in_order() {
        let mut t = Terminal::new(WinSize { rows: 3, cols: 80 }, 50);
        for i in 0..20_000 {
            t.process(format!("{i:05} {}\r\n", "x".repeat(70)).as_bytes());
        }
        let h = t.parser.callbacks();
        assert!(
            h.text.len() < 200 * 1024,
            "dead rows are dropped: {}",
            h.text.len()
        );
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines.len(), 50);
        for (k, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("{:05} {}", 19_948 + k, "x".repeat(70)));
        }
    }

    #[test]
    fn alternate_screen_is_restored_and_not_recorded() {
        let size = WinSize { rows: 4, cols: 10 };
        let mut t = Terminal::new(size, 50);
        t.process(b"shell\r\n\x1b[?1049h");
        for i in 0..10 {
            t.process(format!("vi{i}\r\n").as_bytes());
        }
        assert_eq!(t.history_len(), 0);
        let shown = replay(size, &t.render_snapshot());
        assert!(shown.screen().alternate_screen());
        assert_eq!(shown.screen().contents(), t.screen_text());
    }
}
