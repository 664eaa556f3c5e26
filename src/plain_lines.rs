//! Lines that scroll straight through a terminal model are not fed to it.
//!
//! vt100 costs about a microsecond per row that scrolls (a fresh 80-cell row,
//! the capture of the old one) plus tens of nanoseconds per character: a
//! `cat` or `seq` through a session was bound by the models (the daemon's and
//! the client's), not by the PTY or the link. Most of such output is plain
//! lines (printable ASCII, then CR LF) that enter at the bottom row and leave
//! at the top a screen later. When the model is known to be in the state such
//! a line leaves it in (checked on the model after a plain line went through
//! it: parser in ground state, primary screen, full-screen scroll region,
//! cursor at the start of the blank bottom row, default pen), a run of `L >=
//! rows` plain lines ends in a state we know without parsing all of it:
//! - the rows on the screen above the bottom scroll off, in order, then the
//!   first `L - (rows - 1)` lines of the run, each as its own text;
//! - the last `rows - 1` lines are on the screen and the bottom row is blank.
//!
//! So the model is fed only the last `rows - 1` lines (which push the old
//! rows off through its normal path), and the others go straight to the
//! scroll callback as text, tagged with the offset at which they would have
//! scrolled off. The model's state and history are the ones it would have had
//! (`tests`: byte for byte against feeding everything), at any chunking.

use vt100::Parser;

/// What the fast path needs from a model's callbacks.
pub trait Scrolls: vt100::Callbacks {
    /// Rows scrolled off the top of the screen so far (any screen).
    fn scrolls(&self) -> u64;
    /// The stream offset of the end of the piece about to be parsed: rows
    /// that scroll off while it is parsed are gone by that offset.
    fn piece_end(&mut self, _end: u64) {}
    /// A plain line (without its CR LF) that scrolled through the screen and
    /// off its top by stream offset `tag`, never entering the model.
    fn passed_through(&mut self, _line: &[u8], _tag: u64) {}
}

/// Feeds a vt100 parser, skipping what scrolls straight through.
#[derive(Default)]
pub struct PlainLines {
    /// The model is in the state a plain line leaves it in (see above).
    settled: bool,
    /// A run of plain lines, after a settled model, not applied yet: a run
    /// is applied when something else comes, when it is long, or when the
    /// model is looked at ([`PlainLines::flush`]), so that the lines the
    /// model must parse (the last screenful) are paid once per run rather
    /// than once per chunk.
    run: Vec<u8>,
    /// Each line of `run`: its end in `run`, and its end in the stream.
    ends: Vec<(usize, u64)>,
    /// The start of a line after the run, cut by the end of a chunk:
    /// printable and narrower than a row, so it cannot scroll anything. It
    /// is joined to the rest of its line by the next call.
    partial: Vec<u8>,
    /// The stream offset at the end of `partial`.
    partial_end: u64,
}

/// Bytes of a pending run past which it is applied (bounds the buffer).
const MAX_RUN: usize = 128 * 1024;

/// Printable ASCII that fits on a row, then CR LF: printed as itself from the
/// first column, one cell per byte, with no other effect than the scroll.
fn is_plain(piece: &[u8], cols: usize) -> bool {
    let Some(body) = piece.strip_suffix(b"\r\n") else {
        return false;
    };
    // A fold rather than `all`: no early exit, so it vectorises.
    body.len() <= cols
        && body
            .iter()
            .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f))
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    memchr::memchr(b'\n', &bytes[from..]).map_or(bytes.len(), |k| from + k + 1)
}

impl PlainLines {
    /// The model changed in a way the fast path cannot follow (a resize, a
    /// sequence written to it directly): wait for a plain line to re-check.
    /// Call [`PlainLines::flush`] first.
    pub fn unsettle(&mut self) {
        debug_assert!(self.ends.is_empty());
        self.settled = false;
    }

    /// Processes `bytes`, which start at stream offset `offset`, one line at
    /// a time (so scrolled rows get the offset of the line that pushed them
    /// off), holding back runs of plain lines while the model is settled.
    /// The model is up to date only after [`PlainLines::flush`].
    pub fn process<C: Scrolls>(&mut self, parser: &mut Parser<C>, bytes: &[u8], offset: u64) {
        let (rows, cols) = parser.screen().size();
        let (rows, cols) = (rows.get() as usize, cols.get() as usize);
        let mut i = 0;
        if !self.partial.is_empty() {
            // The rest of the cut line, then on as usual.
            let end = line_end(bytes, 0);
            let mut piece = std::mem::take(&mut self.partial);
            piece.extend_from_slice(&bytes[..end]);
            self.line(parser, &piece, offset + end as u64, rows, cols);
            self.partial = piece;
            self.partial.clear();
            i = end;
        }
        while i < bytes.len() {
            let end = line_end(bytes, i);
            let piece = &bytes[i..end];
            let printable = |p: &[u8]| {
                p.len() <= cols
                    && p.iter()
                        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f))
            };
            if end == bytes.len()
                && !piece.ends_with(b"\n")
                && self.settled
                && !self.ends.is_empty()
                && printable(piece)
            {
                self.partial.extend_from_slice(piece);
                self.partial_end = offset + end as u64;
            } else {
                self.line(parser, piece, offset + end as u64, rows, cols);
            }
            i = end;
        }
    }

    /// One line (or the end of a chunk) ending at stream offset `end`.
    fn line<C: Scrolls>(
        &mut self,
        parser: &mut Parser<C>,
        piece: &[u8],
        end: u64,
        rows: usize,
        cols: usize,
    ) {
        if self.settled && rows >= 2 && is_plain(piece, cols) {
            self.run.extend_from_slice(piece);
            self.ends.push((self.run.len(), end));
            if self.run.len() >= MAX_RUN {
                self.flush(parser);
            }
        } else {
            self.flush(parser);
            self.feed(parser, piece, end, cols);
        }
    }

    /// Whether lines are held back, and then whether the cursor will be at
    /// the start of a row once they are applied (no cut line after them).
    pub fn held(&self) -> Option<bool> {
        (!self.ends.is_empty() || !self.partial.is_empty()).then_some(self.partial.is_empty())
    }

    /// Applies the pending run: the model is then up to date.
    pub fn flush<C: Scrolls>(&mut self, parser: &mut Parser<C>) {
        if self.ends.is_empty() && self.partial.is_empty() {
            return;
        }
        let (rows, cols) = parser.screen().size();
        let (rows, cols) = (rows.get() as usize, cols.get() as usize);
        let run = std::mem::take(&mut self.run);
        let ends = std::mem::take(&mut self.ends);
        if ends.len() < rows {
            let mut start = 0;
            for &(e, tag) in &ends {
                self.feed(parser, &run[start..e], tag, cols);
                start = e;
            }
        } else {
            skip_run(parser, &run, &ends, rows);
        }
        self.run = run;
        self.run.clear();
        self.ends = ends;
        self.ends.clear();
        if !self.partial.is_empty() {
            let partial = std::mem::take(&mut self.partial);
            self.feed(parser, &partial, self.partial_end, cols);
            self.partial = partial;
            self.partial.clear();
        }
    }

    /// Feeds one piece through the model and re-checks whether it is settled.
    fn feed<C: Scrolls>(&mut self, parser: &mut Parser<C>, piece: &[u8], end: u64, cols: usize) {
        let before = parser.callbacks().scrolls();
        parser.callbacks_mut().piece_end(end);
        parser.process(piece);
        self.settled = is_plain(piece, cols)
            && parser.callbacks().scrolls() == before + 1
            && settled_after(parser.screen(), &piece[..piece.len() - 2]);
    }
}

/// A run of `ends.len() >= rows` plain lines (in `run`) after a settled model.
fn skip_run<C: Scrolls>(parser: &mut Parser<C>, run: &[u8], ends: &[(usize, u64)], rows: usize) {
    let line = |k: usize| {
        let from = if k == 0 { 0 } else { ends[k - 1].0 };
        &run[from..ends[k].0]
    };
    let skipped = ends.len() - (rows - 1);
    // The last rows - 1 lines push the screen's rows above the bottom off;
    // screen row t really left with line t of the run.
    for (t, &(_, tag)) in ends.iter().enumerate().take(rows - 1) {
        parser.callbacks_mut().piece_end(tag);
        parser.process(line(skipped + t));
    }
    // Then the lines that never stayed: line k left with line k + rows - 1.
    for k in 0..skipped {
        let l = line(k);
        let tag = ends[k + rows - 1].1;
        parser
            .callbacks_mut()
            .passed_through(&l[..l.len() - 2], tag);
    }
    debug_assert!(settled_after(parser.screen(), {
        let l = line(ends.len() - 1);
        &l[..l.len() - 2]
    }));
}

/// After a plain line `body` went through the model (and scrolled it once):
/// whether the model is in the state that line leaves a settled model in.
fn settled_after(screen: &vt100::Screen, body: &[u8]) -> bool {
    let (rows, cols) = screen.size();
    let (rows, cols) = (rows.get(), cols.get());
    let default_pen = screen.fgcolor() == vt100::Color::Default
        && screen.bgcolor() == vt100::Color::Default
        && !screen.bold()
        && !screen.dim()
        && !screen.italic()
        && !screen.underline()
        && !screen.inverse();
    if rows < 2
        || screen.alternate_screen()
        || !default_pen
        || screen.cursor_position() != (rows - 1, 0)
        || screen.row_wrapped(rows - 2)
    {
        return false;
    }
    let plain = |c: &vt100::Cell| {
        c.fgcolor() == vt100::Color::Default
            && c.bgcolor() == vt100::Color::Default
            && !c.bold()
            && !c.dim()
            && !c.italic()
            && !c.underline()
            && !c.inverse()
            && !c.is_wide()
            && !c.is_wide_continuation()
    };
    (0..cols).all(|c| {
        let (Some(line), Some(bottom)) = (screen.cell(rows - 2, c), screen.cell(rows - 1, c))
        else {
            return false;
        };
        let want = body.get(c as usize).map(|&b| b as char);
        let shows = match want {
            Some(ch) => line.contents().len() == 1 && line.contents().starts_with(ch),
            None => !line.has_contents(),
        };
        shows && plain(line) && !bottom.has_contents() && plain(bottom)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU16;

    /// Records every row that scrolls off (formatted) with its tag.
    #[derive(Default)]
    struct Rec {
        rows: Vec<(String, u64)>,
        end: u64,
        scrolls: u64,
        /// Rows the model itself scrolled off.
        parsed: u64,
    }

    impl vt100::Callbacks for Rec {
        fn on_scroll(&mut self, row: vt100::capture::RowContents<'_>, alt: bool) {
            self.scrolls += 1;
            self.parsed += 1;
            if alt {
                return;
            }
            let mut s = String::new();
            let _ = row.write_formatted_basic(
                &mut s,
                &mut vt100::capture::BasicFormattedCaptureState::new(),
            );
            self.rows.push((s, self.end));
        }
    }

    impl Scrolls for Rec {
        fn scrolls(&self) -> u64 {
            self.scrolls
        }
        fn piece_end(&mut self, end: u64) {
            self.end = end;
        }
        fn passed_through(&mut self, line: &[u8], tag: u64) {
            self.scrolls += 1;
            self.rows
                .push((String::from_utf8(line.to_vec()).unwrap(), tag));
        }
    }

    fn parser(rows: u16, cols: u16) -> Parser<Rec> {
        Parser::new_with_callbacks(
            NonZeroU16::new(rows).unwrap(),
            NonZeroU16::new(cols).unwrap(),
            0,
            Rec::default(),
        )
    }

    /// Everything a model shows afterwards: screen, cursor, modes, history.
    fn state(p: &Parser<Rec>) -> (String, String, Vec<(String, u64)>) {
        (
            p.screen().contents_formatted_basic(),
            p.screen().state_formatted(),
            p.callbacks().rows.clone(),
        )
    }

    /// Plain runs mixed with what must not be skipped: colours, a scroll
    /// region, the alternate screen, an unfinished OSC, lines too wide,
    /// wide characters, tabs, bare LFs, spaces at the end of a line.
    fn corpus(seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut out = Vec::new();
        for i in 0..600 {
            match rnd(14) {
                0 => out.extend_from_slice(b"\x1b[31mred\x1b[0m\r\n"),
                1 => out.extend_from_slice(b"\x1b[31mleft red\r\n"),
                2 => out.extend_from_slice(b"\x1b[0m"),
                3 => out.extend_from_slice(b"\x1b[2;5r"),
                4 => out.extend_from_slice(b"\x1b[r\x1b[99;1H"),
                5 => out.extend_from_slice(b"\x1b[?1049h"),
                6 => out.extend_from_slice(b"\x1b[?1049l"),
                7 => out.extend_from_slice(b"\x1b]0;title "),
                8 => out.extend_from_slice(b"\x07"),
                9 => out.extend_from_slice(&[b'w'; 45]),
                10 => out.extend_from_slice("日本\tx\n".as_bytes()),
                11 => out.extend_from_slice(b"trailing   \r\n"),
                _ => {
                    for k in 0..rnd(70) {
                        let n = rnd(30) as usize;
                        out.extend(
                            format!("{i}.{k} ")
                                .bytes()
                                .chain(std::iter::repeat_n(b'a' + (k % 26) as u8, n)),
                        );
                        out.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
        out
    }

    #[test]
    fn skipping_gives_the_state_and_history_of_feeding_everything() {
        for seed in 1..40u64 {
            let data = corpus(seed * 7919);
            for chunk in [7usize, 100, 4096, usize::MAX] {
                // Reference: every byte through vt100, a line at a time (a
                // chunk's end ends a piece too).
                let mut slow = parser(6, 30);
                let mut fast = parser(6, 30);
                let mut lines = PlainLines::default();
                let mut off = 0;
                for c in data.chunks(chunk.min(data.len())) {
                    let mut at = off;
                    for piece in c.split_inclusive(|&b| b == b'\n') {
                        at += piece.len() as u64;
                        slow.callbacks_mut().end = at;
                        slow.process(piece);
                    }
                    lines.process(&mut fast, c, off);
                    off += c.len() as u64;
                    if off % 3 == 0 {
                        // Looked at now and then: the run so far is applied.
                        lines.flush(&mut fast);
                    }
                }
                lines.flush(&mut fast);
                let (f, s) = (state(&fast), state(&slow));
                assert_eq!(f.0, s.0, "screen: seed {seed}, chunks of {chunk}");
                assert_eq!(f.1, s.1, "modes: seed {seed}, chunks of {chunk}");
                assert_eq!(
                    f.2.len(),
                    s.2.len(),
                    "history: seed {seed}, chunks of {chunk}"
                );
                if let Some(k) = (0..f.2.len()).find(|&k| f.2[k] != s.2[k]) {
                    panic!(
                        "seed {seed}, chunks of {chunk}: row {k}: {:?} vs {:?}",
                        f.2[k], s.2[k]
                    );
                }
            }
        }
    }

    #[test]
    fn a_long_plain_run_is_mostly_skipped() {
        let data: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("{i}\r\n").into_bytes())
            .collect();
        let mut p = parser(24, 80);
        let mut lines = PlainLines::default();
        for c in data.chunks(1000) {
            lines.process(&mut p, c, 0);
        }
        lines.flush(&mut p);
        assert_eq!(p.callbacks().rows.len(), 10_000 - 23);
        // The first line settles the model; one screen of the run goes through it.
        assert!(p.callbacks().parsed < 30, "{}", p.callbacks().parsed);
        assert_eq!(p.callbacks().rows[9_000].0, "9000");
        assert_eq!(p.screen().contents().lines().next(), Some("9977"));
    }
}
