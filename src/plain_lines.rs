//! Lines that scroll straight through a terminal model are not fed to it.
//!
//! vt100 costs about a microsecond per row that scrolls (a fresh 80-cell row,
//! the capture of the old one) plus tens of nanoseconds per character: a
//! `cat` or `seq` through a session was bound by the models (the daemon's and
//! the client's), not by the PTY or the link. Most of such output is simple
//! lines that enter at the bottom row and leave at the top a screen later:
//! printable ASCII, perhaps coloured by SGR sequences (a build log's
//! `Compiling`, `warning`) as long as the line ends with the default pen, then
//! CR LF. When the model is known to be in the state such
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
//! (`tests`, at any chunking): the screen byte for byte, and each row of
//! history byte for byte when plain; a coloured row keeps the program's own
//! escape codes, which print the same cells as vt100's capture of the row.

use vt100::Parser;

/// What the fast path needs from a model's callbacks.
pub trait Scrolls: vt100::Callbacks {
    /// Rows scrolled off the top of the screen so far (any screen).
    fn scrolls(&self) -> u64;
    /// The stream offset of the end of the piece about to be parsed: rows
    /// that scroll off while it is parsed are gone by that offset.
    fn piece_end(&mut self, _end: u64) {}
    /// A simple line (without its CR LF: printable ASCII, perhaps SGR
    /// sequences, ending with the default pen) that scrolled through the
    /// screen and off its top by stream offset `tag`, never entering the model.
    fn passed_through(&mut self, _line: &[u8], _tag: u64) {}
}

/// Feeds a vt100 parser, skipping what scrolls straight through.
#[derive(Default)]
pub struct PlainLines {
    /// The model is in the state a simple line leaves it in (see above).
    settled: bool,
    /// A run of simple lines, after a settled model, not applied yet: a run
    /// is applied when something else comes, when it is long, or when the
    /// model is looked at ([`PlainLines::flush`]), so that the lines the
    /// model must parse (the last screenful) are paid once per run rather
    /// than once per chunk.
    run: Vec<u8>,
    /// Each line of `run`: its end in `run`, and its end in the stream.
    ends: Vec<(usize, u64)>,
    /// The start of a line after the run, cut by the end of a chunk: the
    /// start of a simple line narrower than a row, so it cannot scroll
    /// anything. It is joined to the rest of its line by the next call.
    partial: Vec<u8>,
    /// The stream offset at the end of `partial`.
    partial_end: u64,
}

/// Bytes of a pending run past which it is applied (bounds the buffer).
const MAX_RUN: usize = 128 * 1024;

/// At most this many parameters, of at most 5 digits, in an SGR sequence a
/// simple line may hold: vte caps both, and past them vt100 would not see
/// what a terminal does.
const MAX_SGR_PARAMS: usize = 16;
const MAX_SGR_DIGITS: usize = 5;

/// How a line body (without its line end) prints from the first column with
/// the default pen, if it is simple: the number of cells it fills, and
/// whether the pen is default again at its end. Simple is printable ASCII
/// (one cell per byte) and SGR sequences (`ESC [ digits;... m`, nothing
/// private), which change only the pen. An SGR sequence cut by the end of
/// `body` is allowed when `cut_ok` (the start of a line, its rest to come).
fn scan(body: &[u8], cut_ok: bool) -> Option<(usize, bool)> {
    // A fold rather than `all`: no early exit, so it vectorises.
    if body
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f))
    {
        return Some((body.len(), true));
    }
    let (mut i, mut cells, mut pen_default) = (0, 0, true);
    while i < body.len() {
        let b = body[i];
        if b.wrapping_sub(0x20) < 0x5f {
            cells += 1;
            i += 1;
            continue;
        }
        if b != 0x1b {
            return None;
        }
        match body.get(i + 1) {
            Some(b'[') => {}
            None if cut_ok => return Some((cells, false)),
            _ => return None,
        }
        // Parameters: the pen is default after this sequence only if every
        // one of them is a reset (0 or empty).
        let (mut j, mut params, mut digits, mut resets) = (i + 2, 1, 0, true);
        loop {
            match body.get(j) {
                Some(b'0') | Some(b'1'..=b'9') if digits == MAX_SGR_DIGITS => return None,
                Some(b'0') => digits += 1,
                Some(b'1'..=b'9') => {
                    digits += 1;
                    resets = false;
                }
                Some(b';') if params == MAX_SGR_PARAMS => return None,
                Some(b';') => {
                    params += 1;
                    digits = 0;
                }
                Some(b'm') => break,
                None if cut_ok => return Some((cells, false)),
                _ => return None,
            }
            j += 1;
        }
        pen_default = resets;
        i = j + 1;
    }
    Some((cells, pen_default))
}

/// A simple line that fits on a row, then CR LF: from a settled model it
/// prints as its visible text from the first column, leaves the default pen,
/// and scrolls once.
fn is_simple(piece: &[u8], cols: usize) -> bool {
    piece
        .strip_suffix(b"\r\n")
        .is_some_and(|body| prints_as_itself(body, cols))
}

/// Whether `line`, a row of history (without its line end), is a simple
/// line: printed as itself from the first column of a blank row with the
/// default pen, it shows the row and leaves the default pen.
pub fn prints_as_itself(line: &[u8], cols: usize) -> bool {
    matches!(scan(line, false), Some((cells, true)) if cells <= cols)
}

/// The printable characters of a simple line's body, its SGR sequences left out.
fn visible(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut in_sgr = false;
    for &b in body {
        match b {
            0x1b => in_sgr = true,
            b'm' if in_sgr => in_sgr = false,
            _ if in_sgr => {}
            _ => out.push(b),
        }
    }
    out
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
            // The start of a simple line (perhaps up to its CR), narrower
            // than a row: it cannot scroll anything, and is joined to its
            // rest by the next call.
            let cut_simple = |p: &[u8]| {
                let p = p.strip_suffix(b"\r").unwrap_or(p);
                matches!(scan(p, true), Some((cells, _)) if cells <= cols)
            };
            if end == bytes.len()
                && !piece.ends_with(b"\n")
                && self.settled
                && !self.ends.is_empty()
                && cut_simple(piece)
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
        if self.settled && rows >= 2 && is_simple(piece, cols) {
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
        self.settled = is_simple(piece, cols)
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

/// After a simple line `body` went through the model (and scrolled it once):
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
    let default_attrs = |c: &vt100::Cell| {
        c.fgcolor() == vt100::Color::Default
            && c.bgcolor() == vt100::Color::Default
            && !c.bold()
            && !c.dim()
            && !c.italic()
            && !c.underline()
            && !c.inverse()
    };
    let narrow = |c: &vt100::Cell| !c.is_wide() && !c.is_wide_continuation();
    // A coloured line's cells carry its colours; a plain line's must not.
    let coloured = body.contains(&0x1b);
    let text = visible(body);
    (0..cols).all(|c| {
        let (Some(line), Some(bottom)) = (screen.cell(rows - 2, c), screen.cell(rows - 1, c))
        else {
            return false;
        };
        let want = text.get(c as usize).map(|&b| b as char);
        let shows = match want {
            Some(ch) => line.contents().len() == 1 && line.contents().starts_with(ch),
            None => !line.has_contents(),
        };
        shows
            && narrow(line)
            && (coloured || default_attrs(line))
            && !bottom.has_contents()
            && narrow(bottom)
            && default_attrs(bottom)
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
            match rnd(21) {
                20 => out.extend_from_slice(b"\x1b[41merase\x1b[K the rest\x1b[m\r\n"),
                14 => out.extend_from_slice(
                    b"\x1b[1m\x1b[32m   Compiling\x1b[0m crate v1 \x1b[33mwarn\x1b[m\r\n",
                ),
                15 => out.extend_from_slice(
                    b"\x1b[38;5;208mexactly thirty columns wide...\x1b[0;0m\r\n",
                ),
                16 => out.extend_from_slice(
                    b"\x1b[7m inverse \x1b[0m and \x1b[4munder\x1b[24m still\r\n",
                ),
                17 => out.extend_from_slice(b"\x1b[>4;2mprivate, not SGR\x1b[m\r\n"),
                18 => out.extend_from_slice(b"\x1b[41m red background, left on\r\n"),
                19 => {
                    out.extend_from_slice(b"\x1b[1;0m\x1b[;mreset twice\x1b[0;1;0m\x1b[00000m\r\n")
                }
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
                let same_row = |a: &(String, u64), b: &(String, u64)| {
                    // A coloured row keeps the program's escape codes: it
                    // must print the same cells, with the same tag.
                    a == b
                        || (a.1 == b.1
                            && a.0.contains('\x1b')
                            && printed(&a.0, 30) == printed(&b.0, 30))
                };
                if let Some(k) = (0..f.2.len()).find(|&k| !same_row(&f.2[k], &s.2[k])) {
                    panic!(
                        "seed {seed}, chunks of {chunk}: row {k}: {:?} vs {:?}",
                        f.2[k], s.2[k]
                    );
                }
            }
        }
    }

    /// The cells a row of history shows, printed on a fresh row.
    fn printed(row: &str, cols: u16) -> String {
        let mut p = vt100::Parser::new(
            NonZeroU16::new(1).unwrap(),
            NonZeroU16::new(cols).unwrap(),
            0,
        );
        p.process(row.as_bytes());
        p.screen().contents_formatted_basic()
    }

    #[test]
    fn simple_lines_are_printable_text_and_pen_changes_that_end_with_the_default_pen() {
        let simple = |l: &[u8]| is_simple(l, 30);
        assert!(simple(b"plain\r\n"));
        assert!(simple(b"\x1b[1m\x1b[32mgreen\x1b[0m\r\n"));
        assert!(simple(b"\x1b[31mred\x1b[m\r\n"));
        assert!(simple(b"\x1b[38;5;208mx\x1b[0;0m\r\n"));
        // The pen is not default at the end.
        assert!(!simple(b"\x1b[31mred\r\n"));
        assert!(!simple(b"\x1b[0;1mbold\r\n"));
        // Not SGR: private markers, other finals, other escapes.
        assert!(!simple(b"\x1b[>4;2mx\x1b[m\r\n"));
        assert!(!simple(b"\x1b[2Kx\r\n"));
        assert!(!simple(b"\x1b]0;t\x07x\r\n"));
        assert!(!simple(b"\x1b[38:2:1:2:3mx\x1b[m\r\n"));
        // More than vte keeps.
        let many = format!("\x1b[{}mx\x1b[m\r\n", ["1"; 17].join(";"));
        assert!(!simple(many.as_bytes()));
        assert!(!simple(b"\x1b[000001mx\x1b[m\r\n"));
        // Visible width, not bytes, against the row.
        assert!(simple(
            format!("\x1b[1m{}\x1b[0m\r\n", "x".repeat(30)).as_bytes()
        ));
        assert!(!simple(
            format!("\x1b[1m{}\x1b[0m\r\n", "x".repeat(31)).as_bytes()
        ));
        // The start of one, cut by a chunk's end, anywhere in a sequence.
        for cut in [&b"\x1b"[..], b"ab\x1b[", b"ab\x1b[3", b"ab\x1b[3;"] {
            assert!(scan(cut, true).is_some(), "{cut:?}");
            assert!(scan(cut, false).is_none(), "{cut:?}");
        }
    }

    #[test]
    fn a_long_coloured_run_is_mostly_skipped() {
        let data: Vec<u8> = (0..3_000)
            .flat_map(|i| {
                format!("\x1b[1m\x1b[32m{i:>8}\x1b[0m done \x1b[33mwarn\x1b[0m\r\n").into_bytes()
            })
            .collect();
        // Under MAX_RUN bytes: one screenful is parsed per applied run.
        assert!(data.len() < MAX_RUN);
        let mut p = parser(24, 80);
        let mut lines = PlainLines::default();
        for c in data.chunks(1000) {
            lines.process(&mut p, c, 0);
        }
        lines.flush(&mut p);
        assert_eq!(p.callbacks().rows.len(), 3_000 - 23);
        assert!(p.callbacks().parsed < 30, "{}", p.callbacks().parsed);
        assert_eq!(
            p.callbacks().rows[2_000].0,
            "\x1b[1m\x1b[32m    2000\x1b[0m done \x1b[33mwarn\x1b[0m"
        );
        assert_eq!(
            p.screen().contents().lines().next(),
            Some("    2977 done warn")
        );
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
