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

use crate::plain_lines::{PlainLines, Scrolls};
use crate::proto::frame::WinSize;

pub struct Terminal {
    parser: Parser<History>,
    plain: PlainLines,
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
    /// For each live row, the stream offset by which it had scrolled off:
    /// the end of the piece (up to and including a line feed) being parsed.
    tags: VecDeque<u64>,
    max_lines: usize,
    /// Rows ever recorded; the oldest live row is number `total - len()`.
    total: u64,
    /// (row number, tag) of every [`CHECKPOINT_EVERY`]th row (every other
    /// one of the oldest once there are [`MAX_CHECKPOINTS`]), so rows that
    /// have left the history can still be counted for the marker.
    checkpoints: VecDeque<(u64, u64)>,
    /// The end offset of the piece being parsed now.
    piece_end: u64,
    /// Rows the parser scrolled off (the fast path checks it moved by one).
    scrolls: u64,
}

const CHECKPOINT_EVERY: u64 = 64;
const MAX_CHECKPOINTS: usize = 8192;

impl History {
    fn lines(&self) -> impl Iterator<Item = &str> {
        let ends = self.starts.iter().skip(1).copied().chain([self.text.len()]);
        self.starts.iter().zip(ends).map(|(&a, b)| &self.text[a..b])
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    /// Live row `k` (0 is the oldest kept).
    fn line(&self, k: usize) -> &str {
        let end = self.starts.get(k + 1).copied().unwrap_or(self.text.len());
        &self.text[self.starts[k]..end]
    }

    /// How many rows scrolled off after `from`, counting those no longer
    /// kept (estimated between the two checkpoints around `from`, when they
    /// are old: exact for rows of even length, off by less than the
    /// checkpoints' spacing otherwise).
    fn rows_after(&self, from: u64) -> u64 {
        let live_after = (self.len() - self.tags.partition_point(|&t| t <= from)) as u64;
        let first_live = self.total - self.len() as u64;
        if live_after < self.len() as u64 || first_live == 0 {
            return live_after;
        }
        // Every live row is newer; count the dropped ones from the checkpoints.
        let i = self.checkpoints.partition_point(|&(_, t)| t <= from);
        let first_after = match i.checked_sub(1).map(|j| self.checkpoints[j]) {
            Some((row, tag)) => {
                // The first row after `from` is one of those after `row`, up
                // to the next checkpoint (or the oldest row kept): the one
                // its share of the offsets between the two points to.
                let (next_row, next_tag) = self
                    .checkpoints
                    .get(i)
                    .copied()
                    .unwrap_or((first_live, self.tags.front().copied().unwrap_or(u64::MAX)));
                let rows = next_row.saturating_sub(row);
                let span = next_tag.saturating_sub(tag).max(1);
                let share = (u128::from(from - tag) * u128::from(rows) / u128::from(span)) as u64;
                (row + 1 + share).min(next_row)
            }
            None => self.checkpoints.front().map_or(first_live, |c| c.0),
        };
        live_after + first_live.saturating_sub(first_after)
    }
}

impl History {
    /// Starts a row that scrolled off by stream offset `tag`: counts it,
    /// checkpoints it, makes room; the caller appends its text.
    fn start_row(&mut self, tag: u64) {
        if self.total % CHECKPOINT_EVERY == 0 {
            if self.checkpoints.len() == MAX_CHECKPOINTS {
                // Thin out rather than forget: old rows are counted more
                // coarsely, but still counted.
                let mut k = 0;
                self.checkpoints.retain(|_| {
                    k += 1;
                    k % 2 == 1
                });
            }
            self.checkpoints.push_back((self.total, tag));
        }
        self.total += 1;
        if self.starts.len() == self.max_lines {
            self.starts.pop_front();
            self.tags.pop_front();
            let dead = self.starts.front().copied().unwrap_or(self.text.len());
            if dead > self.text.len() / 2 && dead > 64 * 1024 {
                self.text.drain(..dead);
                self.starts.iter_mut().for_each(|s| *s -= dead);
            }
        }
        self.starts.push_back(self.text.len());
        self.tags.push_back(tag);
    }
}

impl Callbacks for History {
    fn on_scroll(&mut self, row: vt100::capture::RowContents<'_>, alternate_screen: bool) {
        self.scrolls += 1;
        // Rows scrolled by a full-screen program on the alternate screen are not
        // history the user would find in their scrollback.
        if alternate_screen || self.max_lines == 0 {
            return;
        }
        self.start_row(self.piece_end);
        let mut state = vt100::capture::BasicFormattedCaptureState::new();
        // Writing into a String cannot fail.
        let _ = row.write_formatted_basic(&mut self.text, &mut state);
    }
}

impl Scrolls for History {
    fn scrolls(&self) -> u64 {
        self.scrolls
    }

    fn piece_end(&mut self, end: u64) {
        self.piece_end = end;
    }

    fn passed_through(&mut self, line: &[u8], tag: u64) {
        if self.max_lines == 0 {
            return;
        }
        self.start_row(tag);
        // Printable ASCII and SGR sequences, ending with the default pen
        // (checked by `plain_lines`): plain, what vt100 would have captured
        // for it, byte for byte; coloured, the program's own escape codes for
        // the same cells.
        self.text
            .push_str(std::str::from_utf8(line).expect("simple lines are ASCII"));
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
            tags: VecDeque::new(),
            max_lines: scrollback_lines,
            total: 0,
            checkpoints: VecDeque::new(),
            piece_end: 0,
            scrolls: 0,
        };
        Terminal {
            parser: Parser::new_with_callbacks(rows, cols, 0, history),
            plain: PlainLines::default(),
        }
    }

    /// Processes `bytes` and brings the model up to date (tests).
    pub fn process(&mut self, bytes: &[u8]) {
        self.plain.process(&mut self.parser, bytes, 0);
        self.flush();
    }

    /// Applies what `process_at` held back (a run of plain lines): every
    /// method that looks at the model calls it first.
    fn flush(&mut self) {
        self.plain.flush(&mut self.parser);
    }

    /// Processes `bytes`, which start at stream offset `offset`, one line at
    /// a time, so that each row that scrolls off is tagged with the offset of
    /// the line feed (or the end of `bytes`) after which it was gone.
    /// Runs of plain lines that scroll straight through the screen skip the
    /// parser (see `plain_lines`), with the same result.
    pub fn process_at(&mut self, bytes: &[u8], offset: u64) {
        self.plain.process(&mut self.parser, bytes, offset);
    }

    pub fn resize(&mut self, size: WinSize) {
        self.flush();
        let (rows, cols) = dims(size);
        self.parser.set_size(rows, cols);
        self.plain.unsettle();
    }

    pub fn history_len(&mut self) -> usize {
        self.flush();
        self.parser.callbacks().len()
    }

    /// Visible screen as plain text (tests and diagnostics).
    pub fn screen_text(&mut self) -> String {
        self.flush();
        self.parser.screen().contents()
    }

    /// Escape sequences that, written to a terminal of the same size, put the
    /// scrollback into its native scrollback and then reproduce the screen,
    /// cursor and input modes.
    pub fn render_snapshot(&mut self) -> Vec<u8> {
        self.flush();
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
            // Move down a screenful so that everything above has scrolled
            // into history; the repaint below draws the rows exactly (printing
            // them here too would send the screen twice).
            push_screenful_of_lines(&mut out, screen.size().0.get());
        }
        out.push_str("\x1b[0m");
        out.push_str(&screen.state_formatted());
        out.into_bytes()
    }
}

/// Line feeds that take the cursor from the top row to the bottom one: rows
/// written above scroll into the terminal's history, those below are
/// repainted after.
fn push_screenful_of_lines(out: &mut String, rows: u16) {
    out.push_str("\x1b[0m");
    for _ in 1..rows {
        out.push_str("\r\n");
    }
}

impl Terminal {
    /// Escape sequences that take a terminal showing the stream up to
    /// `from` to the model's state now: the rows that scrolled off since
    /// `from`, in order (at most `budget` bytes of them, the newest, after a
    /// marker line counting the others), then the screen, cursor and modes.
    ///
    /// Written from the top-left corner: the rows that scrolled off since
    /// `from` are, in order, the top rows of the screen the client shows, so
    /// they are rewritten in place and the screen rows printed after them
    /// push them into the client's native scrollback. Returns the bytes and
    /// how many rows the marker stands for.
    pub fn render_since(&mut self, from: u64, budget: usize, name: &str) -> (Vec<u8>, u64) {
        self.flush();
        let screen = self.parser.screen();
        let h = self.parser.callbacks();
        let after = h.rows_after(from);
        let first = h.len() - (after as usize).min(h.len());
        let mut used = 0;
        let fit = (first..h.len())
            .rev()
            .take_while(|&k| {
                used += h.line(k).len() + 8;
                used <= budget
            })
            .count();
        let omitted = after - fit as u64;
        let mut out = String::new();
        out.push_str("\x1b[?1049l\x1b[0m\x1b[H");
        let mut printed = 0;
        if omitted > 0 {
            out.push_str(&format!(
                "\x1b[2K\x1b[7mabide: {omitted} earlier lines not shown \u{2014} `abide history {name}` has them\x1b[0m\r\n"
            ));
            printed += 1;
        }
        let rows = screen.size().0.get() as usize;
        let cols = screen.size().1.get() as usize;
        for k in h.len() - fit..h.len() {
            let line = h.line(k);
            if printed >= rows && crate::plain_lines::prints_as_itself(line.as_bytes(), cols) {
                // Below a screenful the bottom row is blank (just scrolled in)
                // and the pen is default: a simple line is written as itself,
                // which the client's model lets scroll past (`plain_lines`).
                out.push_str(line);
                out.push_str("\r\n");
            } else {
                out.push_str("\x1b[2K");
                out.push_str(line);
                out.push_str("\x1b[0m\r\n");
            }
            printed += 1;
        }
        if screen.alternate_screen() {
            out.push_str("\x1b[?1049h");
        } else {
            push_screenful_of_lines(&mut out, screen.size().0.get());
        }
        out.push_str("\x1b[0m");
        out.push_str(&screen.state_formatted());
        (out.into_bytes(), omitted)
    }

    /// The history kept (the newest `tail` rows when given) as lines of
    /// text with attributes, for `abide history`.
    pub fn history_text(&mut self, tail: Option<usize>) -> Vec<u8> {
        self.flush();
        let h = self.parser.callbacks();
        let skip = tail.map_or(0, |t| h.len().saturating_sub(t));
        let mut out = String::new();
        for line in h.lines().skip(skip) {
            out.push_str(line);
            out.push_str("\x1b[0m\n");
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows that left the history are counted from the checkpoints: for
    /// rows of even length, exactly.
    #[test]
    fn rows_no_longer_kept_are_counted_exactly_for_even_rows() {
        let mut h = History {
            text: String::new(),
            starts: VecDeque::new(),
            tags: VecDeque::new(),
            max_lines: 100,
            total: 0,
            checkpoints: VecDeque::new(),
            piece_end: 0,
            scrolls: 0,
        };
        // Row k scrolled off by offset 7 (k + 1), as 7-byte lines do.
        for k in 0..10_000u64 {
            h.start_row(7 * (k + 1));
            h.text.push_str("line");
        }
        for from in (0..7 * 9_900).step_by(13) {
            let exact = 10_000 - from / 7;
            assert_eq!(h.rows_after(from), exact, "from {from}");
        }
    }

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

    /// A viewer's scrollback and screen, top to bottom, one line per row.
    fn everything(viewer: &mut vt100::Parser) -> String {
        viewer.screen_mut().set_scrollback(usize::MAX);
        let depth = viewer.screen().scrollback();
        let mut rows = Vec::new();
        for k in (1..=depth).rev() {
            viewer.screen_mut().set_scrollback(k);
            rows.push(viewer.screen().rows(0, 200).next().unwrap());
        }
        viewer.screen_mut().set_scrollback(0);
        rows.extend(viewer.screen().rows(0, 200));
        while rows.last().is_some_and(|r| r.is_empty()) {
            rows.pop();
        }
        rows.iter()
            .map(|r| r.trim_end())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A viewer that showed the stream up to some offset, then got the
    /// state since it: its scrollback and screen hold every line once, in order.
    #[test]
    fn state_since_an_offset_continues_the_viewers_scrollback() {
        let size = WinSize { rows: 5, cols: 20 };
        // Coloured lines, and plain ones (which a state writes as themselves).
        let lines: Vec<String> = (0..200)
            .map(|i| match i % 3 {
                0 => format!("line {i}\r\n"),
                _ => format!("\x1b[3{}mline {i}\x1b[0m\r\n", i % 8),
            })
            .collect();
        let all: Vec<u8> = lines.concat().into_bytes();
        for cut_line in [0usize, 3, 7, 60, 150] {
            let from: usize = lines[..cut_line].iter().map(String::len).sum();
            let mut t = Terminal::new(size, 1000);
            t.process_at(&all[..from], 0);
            t.process_at(&all[from..], from as u64);
            t.process_at(b"prompt$ ", all.len() as u64);
            let (state, omitted) = t.render_since(from as u64, usize::MAX, "s");
            assert_eq!(omitted, 0);
            let mut viewer = vt100::Parser::new(
                NonZeroU16::new(5).unwrap(),
                NonZeroU16::new(20).unwrap(),
                10_000,
            );
            viewer.process(&all[..from]);
            viewer.process(&state);
            assert_eq!(viewer.screen().contents(), t.screen_text());
            let seen = everything(&mut viewer);
            let want: String =
                (0..200).map(|i| format!("line {i}\n")).collect::<String>() + "prompt$";
            assert_eq!(seen, want, "cut at line {cut_line}");
            // Every line in its own colour: the last cell of each ("line N").
            viewer.screen_mut().set_scrollback(usize::MAX);
            let depth = viewer.screen().scrollback();
            for k in (1..=depth).rev() {
                viewer.screen_mut().set_scrollback(k);
                let text = viewer.screen().rows(0, 20).next().unwrap();
                let i: usize = text.trim_start_matches("line ").trim().parse().unwrap();
                let want = match i % 3 {
                    0 => vt100::Color::Default,
                    _ => vt100::Color::Idx((i % 8) as u8),
                };
                let last = text.trim_end().len() as u16 - 1;
                assert_eq!(
                    viewer.screen().cell(0, last).unwrap().fgcolor(),
                    want,
                    "{text}"
                );
            }
            viewer.screen_mut().set_scrollback(0);
            // "line 196" tops the screen, in its colour (196 % 8).
            assert_eq!(
                viewer.screen().cell(0, 0).unwrap().fgcolor(),
                vt100::Color::Idx(4)
            );
        }
    }

    #[test]
    fn a_state_over_budget_keeps_the_newest_rows_and_counts_the_rest() {
        let size = WinSize { rows: 5, cols: 20 };
        let mut t = Terminal::new(size, 50);
        let mut at = 0u64;
        for i in 0..1000 {
            let l = format!("line {i}\r\n");
            t.process_at(l.as_bytes(), at);
            at += l.len() as u64;
        }
        // 996 rows scrolled off since 0 (4 on screen), 50 kept; room for 10.
        let (state, omitted) = t.render_since(0, 10 * 16, "work");
        assert_eq!(omitted, 996 - 10);
        let text = String::from_utf8(state).unwrap();
        assert!(
            text.contains("abide: 986 earlier lines not shown"),
            "{text:?}"
        );
        assert!(text.contains("abide history work"));
        assert!(text.contains("line 986\x1b[0m") && !text.contains("line 985\x1b"));
        // Counting from an offset inside the dropped rows uses the checkpoints.
        let from = (0..500)
            .map(|i| format!("line {i}\r\n").len() as u64)
            .sum::<u64>();
        let (_, omitted) = t.render_since(from, 0, "work");
        let exact = 996 - 500;
        assert!(
            omitted.abs_diff(exact) < CHECKPOINT_EVERY,
            "{omitted} vs {exact}"
        );
    }
}
