//! Predictive local echo: shows what a key will most likely draw before the
//! server has answered, and takes it back when the server draws otherwise.
//!
//! Sans-IO, like the rest of this crate. The driver hands in the keys the user
//! typed (with the input sequence number they travel under), the server's
//! acknowledgement of that input, the PTY's terminal modes, and a view of the
//! screen as the server drew it ([`Grid`]); it asks for the [`Overlay`] (cells
//! and a cursor to draw on top) and for the next time something may change.
//!
//! Every prediction is judged against what the server actually draws: it is
//! *confirmed* when its cell shows the predicted character, and *judged* once
//! the server has written the key to the program and a grace period for the
//! program's echo has passed. A wrong prediction is dropped together with every
//! later one (they were built on it), so when the server has settled the
//! overlay is empty and the screen is exactly what the server drew.
//!
//! When to show (the rest are tracked, judged and used as evidence, unseen):
//! - never while the PTY is in canonical mode without echo (a password
//!   prompt), never for a paste, never over text it cannot account for (part
//!   of a wide character, the middle of a line, past the right margin);
//! - within a context (a run of keys without Enter or another control key)
//!   once one of its keys has been confirmed;
//! - at the start of a context at once when the last judged key echoed, the
//!   screen is not an application's alternate screen and the cursor's row
//!   holds a prompt (text left of the cursor): the first keys on a new shell
//!   line, where mosh waits for a round trip;
//! - after exactly one key that the program consumed silently right after an
//!   echoing context (vim's `i`): the mode change that makes typing echo.
//!
//! Only shown when it is worth it: in [`Mode::Auto`] the round-trip time
//! measured from key to acknowledgement must exceed [`SHOW_ABOVE`] (with
//! hysteresis), and predictions are underlined while unconfirmed above
//! [`UNDERLINE_ABOVE`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use crate::frame::TtyModes;

/// `--predict`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Show predictions when the measured round trip makes them worth it.
    #[default]
    Auto,
    Always,
    Never,
}

/// Predictions are shown in [`Mode::Auto`] once the smoothed RTT exceeds this
/// and hidden again below [`SHOW_BELOW`].
pub const SHOW_ABOVE: Duration = Duration::from_millis(30);
pub const SHOW_BELOW: Duration = Duration::from_millis(20);
/// Unconfirmed predictions are underlined above this RTT (off below [`UNDERLINE_BELOW`]).
pub const UNDERLINE_ABOVE: Duration = Duration::from_millis(80);
pub const UNDERLINE_BELOW: Duration = Duration::from_millis(50);
/// How long after the server wrote a key to the program its echo may take to
/// come back before the prediction counts as wrong.
pub const ECHO_GRACE: Duration = Duration::from_millis(60);
/// A chunk of input longer than this is a paste, never predicted.
pub const PASTE_BYTES: usize = 100;
/// Predictions outstanding at most (a stalled link does not grow them forever).
const MAX_PENDING: usize = 256;

/// One cell of the screen as the server drew it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// `' '` for an empty cell.
    pub ch: char,
    /// 1, or 2 for the first half of a wide character, 0 for its second half.
    pub width: u8,
    /// An opaque id of the cell's colours and attributes (equal ids: same look).
    pub style: u32,
}

impl Cell {
    pub const BLANK: Cell = Cell {
        ch: ' ',
        width: 1,
        style: 0,
    };

    fn is_blank(&self) -> bool {
        self.width == 1 && (self.ch == ' ' || self.ch == '\0')
    }
}

/// The screen as the server drew it, filled by the driver from its model.
pub trait Grid {
    /// (rows, cols).
    fn size(&self) -> (u16, u16);
    /// (row, col), zero-based.
    fn cursor(&self) -> (u16, u16);
    /// A cell inside [`size`](Self::size); anything else may be blank.
    fn cell(&self, row: u16, col: u16) -> Cell;
    /// The program switched to the alternate screen (a full-screen application).
    fn alternate(&self) -> bool;
}

/// What to draw over the server's screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// (row, col, char, width); `' '` with width 1 erases the cell.
    pub cells: Vec<(u16, u16, char, u8)>,
    /// Where the cursor should appear, when predictions moved it.
    pub cursor: Option<(u16, u16)>,
    /// Draw the cells underlined (unconfirmed on a slow link).
    pub underline: bool,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.cursor.is_none()
    }
}

/// A key as far as prediction is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Char(char),
    Backspace,
    Left,
    Right,
    /// Enter, Esc, Ctrl-anything, an escape sequence we do not model: the
    /// screen may change in any way.
    Barrier,
}

/// What the evidence says about the program's echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trust {
    Unknown,
    /// The last judged key was drawn as predicted.
    Echoing,
    /// The last judged key was consumed without drawing, right after echo.
    SilentAfterEcho,
    /// Wrong, or silent more than once: wait for a confirmation.
    Doubtful,
}

#[derive(Clone, Debug)]
struct Pred {
    seq: u64,
    epoch: u64,
    /// The cell written, if any (`None`: a cursor move).
    cell: Option<(u16, u16, char, u8)>,
    /// What the server's screen showed there when predicted.
    orig: Option<Cell>,
    /// The cursor before and after this key.
    cursor_before: (u16, u16),
    cursor_after: (u16, u16),
    shown: bool,
    /// A barrier was typed after it: its fate says nothing about echo.
    closed: bool,
    /// When the server had written the key to the program, plus the grace.
    judge_at: Option<Instant>,
}

/// The typed text of the current context: the cells from `start` to `end`
/// (exclusive) on `row` are ours (predicted or confirmed).
#[derive(Clone, Copy, Debug)]
struct Typed {
    row: u16,
    start: u16,
    end: u16,
}

pub struct Predictor {
    mode: Mode,
    tty: Option<TtyModes>,
    srtt: Option<Duration>,
    showing: bool,
    underlining: bool,
    pending: VecDeque<Pred>,
    trust: Trust,
    epoch: u64,
    epoch_confirmed: bool,
    typed: Option<Typed>,
    /// Highest input seq sent with an unpredicted key; nothing is predicted
    /// until the server has written it and the grace has passed.
    blocked_by: Option<u64>,
    /// Highest input seq acknowledged, and when.
    acked: u64,
    acked_at: Option<Instant>,
    /// Keys sent, for RTT samples: (seq, sent at).
    sent: VecDeque<(u64, Instant)>,
}

impl Predictor {
    pub fn new(mode: Mode) -> Self {
        Predictor {
            mode,
            tty: None,
            srtt: None,
            showing: mode == Mode::Always,
            underlining: false,
            pending: VecDeque::new(),
            trust: Trust::Unknown,
            epoch: 0,
            epoch_confirmed: false,
            typed: None,
            blocked_by: None,
            acked: 0,
            acked_at: None,
            sent: VecDeque::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The smoothed round trip from key to the server's acknowledgement.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The PTY's modes as the server reported them.
    pub fn set_tty_modes(&mut self, modes: TtyModes) {
        self.tty = Some(modes);
        if modes.hidden() {
            // A password prompt: nothing typed now may ever be shown.
            self.rollback();
            self.new_epoch();
        }
    }

    /// Forget everything predicted (resize, snapshot, reconnect).
    pub fn reset(&mut self) {
        self.rollback();
        self.new_epoch();
        if let Some((seq, _)) = self.sent.back() {
            self.blocked_by = Some(self.blocked_by.unwrap_or(0).max(*seq));
        }
    }

    /// The user typed `data`, sent to the server as input chunk `seq`.
    /// `grid` is the server's screen as drawn so far.
    pub fn keys(&mut self, data: &[u8], seq: u64, grid: &dyn Grid, now: Instant) {
        if self.mode == Mode::Never {
            return;
        }
        if self.sent.len() >= MAX_PENDING {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, now));
        self.settle(grid, now);
        if data.len() > PASTE_BYTES {
            self.barrier(seq);
            return;
        }
        for key in parse_keys(data) {
            match key {
                Key::Barrier => self.barrier(seq),
                k => {
                    if !self.predict(k, seq, grid) {
                        // Not predicted: the screen is unknown until the
                        // server has handled this key.
                        self.blocked_by = Some(seq);
                    }
                }
            }
        }
    }

    /// The server has written every input chunk up to `seq` to the program.
    pub fn input_acked(&mut self, seq: u64, now: Instant) {
        if seq <= self.acked {
            return;
        }
        self.acked = seq;
        self.acked_at = Some(now);
        while let Some(&(s, at)) = self.sent.front() {
            if s > seq {
                break;
            }
            self.sent.pop_front();
            if s == seq {
                self.rtt_sample(now.saturating_duration_since(at));
            }
        }
        for p in self.pending.iter_mut() {
            if p.seq <= seq && p.judge_at.is_none() {
                p.judge_at = Some(now + ECHO_GRACE);
            }
        }
    }

    /// The server's screen changed (or time passed): confirm and judge.
    pub fn update(&mut self, grid: &dyn Grid, now: Instant) {
        self.settle(grid, now);
    }

    /// Nothing predicted and nothing waited for: [`update`](Self::update)
    /// would change nothing and the overlay is empty.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.blocked_by.is_none()
    }

    /// When [`update`](Self::update) should run again even if nothing arrives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let judge = self.pending.iter().filter_map(|p| p.judge_at).min();
        let unblock = match (self.blocked_by, self.acked_at) {
            (Some(b), Some(at)) if b <= self.acked => Some(at + ECHO_GRACE),
            _ => None,
        };
        match (judge, unblock) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What to draw over the server's screen now.
    pub fn overlay(&self) -> Overlay {
        let mut out = Overlay {
            underline: self.underlining,
            ..Overlay::default()
        };
        if !self.showing || self.mode == Mode::Never || self.tty.is_some_and(|t| t.hidden()) {
            return out;
        }
        for p in self.pending.iter().filter(|p| p.shown) {
            if let Some(c @ (r, col, _, _)) = p.cell {
                out.cells.retain(|&(r2, c2, _, _)| (r2, c2) != (r, col));
                out.cells.push(c);
            }
            out.cursor = Some(p.cursor_after);
        }
        out
    }

    fn rtt_sample(&mut self, sample: Duration) {
        let srtt = match self.srtt {
            None => sample,
            Some(s) => (s * 7 + sample) / 8,
        };
        self.srtt = Some(srtt);
        if self.mode == Mode::Auto {
            if srtt > SHOW_ABOVE {
                self.showing = true;
            } else if srtt < SHOW_BELOW {
                self.showing = false;
            }
        }
        if srtt > UNDERLINE_ABOVE {
            self.underlining = true;
        } else if srtt < UNDERLINE_BELOW {
            self.underlining = false;
        }
    }

    fn new_epoch(&mut self) {
        self.epoch += 1;
        self.epoch_confirmed = false;
        self.typed = None;
    }

    fn barrier(&mut self, seq: u64) {
        for p in self.pending.iter_mut() {
            p.closed = true;
        }
        self.blocked_by = Some(seq);
        self.new_epoch();
    }

    /// Drops every prediction (they all rest on the first wrong one).
    fn rollback(&mut self) {
        self.pending.clear();
        self.typed = None;
    }

    /// Where the next key lands: after the last prediction, or the server's cursor.
    fn base_cursor(&self, grid: &dyn Grid) -> (u16, u16) {
        self.pending
            .back()
            .map(|p| p.cursor_after)
            .unwrap_or_else(|| grid.cursor())
    }

    /// Predicts one key; false when it cannot be predicted safely.
    fn predict(&mut self, key: Key, seq: u64, grid: &dyn Grid) -> bool {
        if self.tty.is_some_and(|t| t.hidden()) || self.blocked_by.is_some() {
            return false;
        }
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        let (rows, cols) = grid.size();
        let (row, col) = self.base_cursor(grid);
        if row >= rows || col >= cols {
            return false;
        }
        let shown = self.epoch_confirmed
            || self.trust == Trust::SilentAfterEcho
            || (self.trust == Trust::Echoing
                && !grid.alternate()
                && (0..col).any(|c| !self.cell_now(grid, row, c).is_blank()));
        let typed = self.typed.filter(|t| t.row == row);
        let mut pred = Pred {
            seq,
            epoch: self.epoch,
            cell: None,
            orig: None,
            cursor_before: (row, col),
            cursor_after: (row, col),
            shown,
            closed: false,
            judge_at: None,
        };
        match key {
            Key::Char(ch) => {
                let w = char_width(ch);
                if w == 0 || col + w as u16 > cols {
                    return false;
                }
                // In the middle of our own text the program would push the
                // rest to the right: not modelled, so not predicted.
                if typed.is_some_and(|t| col < t.end) {
                    return false;
                }
                let here = self.cell_now(grid, row, col);
                if here.width == 0 || (w == 1 && here.width == 2) {
                    return false; // would split a wide character
                }
                if w == 2 {
                    let next = self.cell_now(grid, row, col + 1);
                    if next.width == 2 {
                        return false;
                    }
                }
                // Text under the cursor that looks like what is typed (same
                // style as the text before it) is the program's own line: it
                // may be pushed, so do not draw over it. Text in another style
                // (an autosuggestion) or past a gap (a right prompt) is
                // overwritten as the program will.
                if !here.is_blank() && col > 0 {
                    let left = self.cell_now(grid, row, col - 1);
                    if !left.is_blank() && left.style == here.style {
                        return false;
                    }
                }
                pred.cell = Some((row, col, ch, w));
                pred.orig = Some(grid.cell(row, col));
                pred.cursor_after = (row, col + w as u16);
                let t = typed.unwrap_or(Typed {
                    row,
                    start: col,
                    end: col,
                });
                self.typed = Some(Typed {
                    row,
                    start: t.start.min(col),
                    end: col + w as u16,
                });
            }
            Key::Backspace => {
                // Only over our own text, at its end (else the rest moves left).
                let Some(t) = typed else { return false };
                if col <= t.start || col != t.end {
                    return false;
                }
                let left = self.cell_now(grid, row, col - 1);
                let w = if left.width == 0 && col >= 2 { 2 } else { 1 };
                if col < t.start + w {
                    return false;
                }
                let at = col - w;
                pred.cell = Some((row, at, ' ', 1));
                pred.orig = Some(grid.cell(row, at));
                pred.cursor_after = (row, at);
                self.typed = Some(Typed { end: at, ..t });
                if w == 2 {
                    // The second half is blanked too.
                    self.push(Pred {
                        cell: Some((row, at + 1, ' ', 1)),
                        orig: Some(grid.cell(row, at + 1)),
                        ..pred.clone()
                    });
                }
            }
            Key::Left | Key::Right => {
                let Some(t) = typed else { return false };
                let to = if key == Key::Left {
                    if col <= t.start {
                        return false;
                    }
                    let left = self.cell_now(grid, row, col - 1);
                    col - if left.width == 0 && col >= 2 { 2 } else { 1 }
                } else {
                    if col >= t.end {
                        return false;
                    }
                    col + self.cell_now(grid, row, col).width.max(1) as u16
                };
                pred.cursor_after = (row, to);
            }
            Key::Barrier => return false,
        }
        self.push(pred);
        true
    }

    fn push(&mut self, p: Pred) {
        self.pending.push_back(p);
    }

    /// The cell as the user sees it: the latest prediction there, else the server's.
    fn cell_now(&self, grid: &dyn Grid, row: u16, col: u16) -> Cell {
        for p in self.pending.iter().rev() {
            if let Some((r, c, ch, w)) = p.cell {
                if r == row && c == col {
                    // A style no server cell has: "typed by us".
                    return Cell {
                        ch,
                        width: w,
                        style: u32::MAX,
                    };
                }
                if r == row && w == 2 && c + 1 == col {
                    return Cell {
                        ch: ' ',
                        width: 0,
                        style: 0,
                    };
                }
            }
        }
        grid.cell(row, col)
    }

    fn settle(&mut self, grid: &dyn Grid, now: Instant) {
        if let (Some(b), Some(at)) = (self.blocked_by, self.acked_at) {
            if b <= self.acked && now >= at + ECHO_GRACE {
                self.blocked_by = None;
            }
        }
        let (rows, cols) = grid.size();
        // Judge in order: a wrong prediction takes every later one with it.
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let cursor_ok = grid.cursor() == p.cursor_after;
            let verdict = match (p.cell, p.orig) {
                (Some((r, c, ch, w)), Some(orig)) => {
                    if r >= rows || c + (w as u16) > cols {
                        Verdict::Wrong
                    } else {
                        let now_cell = grid.cell(r, c);
                        let matches = now_cell.ch == ch && now_cell.width == w
                            || (ch == ' ' && now_cell.is_blank());
                        let credit = matches && !(orig.ch == ch && orig.width == w);
                        if matches && (credit || p.judge_at.is_some_and(|j| now >= j)) {
                            Verdict::Confirmed { credit }
                        } else if p.judge_at.is_some_and(|j| now >= j) {
                            if same_char(now_cell, orig) && grid.cursor() == p.cursor_before {
                                Verdict::Silent
                            } else {
                                Verdict::Wrong
                            }
                        } else if !matches && !now_cell.is_blank() && !same_char(now_cell, orig) {
                            // The server drew something else there.
                            Verdict::Wrong
                        } else {
                            Verdict::Pending
                        }
                    }
                }
                _ => {
                    // A cursor move.
                    if cursor_ok && p.judge_at.is_some() {
                        Verdict::Confirmed { credit: false }
                    } else if p.judge_at.is_some_and(|j| now >= j) {
                        if self.acked > p.seq || p.closed {
                            // Later keys moved it on: nothing to learn.
                            Verdict::Confirmed { credit: false }
                        } else {
                            Verdict::Wrong
                        }
                    } else {
                        Verdict::Pending
                    }
                }
            };
            match verdict {
                Verdict::Pending => i += 1,
                Verdict::Confirmed { credit } => {
                    let p = self.pending.remove(i).expect("index in range");
                    if credit {
                        // Drawn where predicted: the program echoes (also
                        // true of keys before an Enter).
                        self.trust = Trust::Echoing;
                        if p.epoch == self.epoch {
                            self.epoch_confirmed = true;
                            for q in self.pending.iter_mut().filter(|q| q.epoch == self.epoch) {
                                q.shown = true;
                            }
                        }
                    }
                }
                Verdict::Silent | Verdict::Wrong => {
                    let closed = self.pending[i].closed;
                    if !closed {
                        self.trust = match (verdict, self.trust) {
                            (Verdict::Silent, Trust::Echoing) => Trust::SilentAfterEcho,
                            _ => Trust::Doubtful,
                        };
                        self.epoch_confirmed = false;
                    }
                    // Everything from here on was built on it.
                    self.pending.truncate(i);
                    if !closed {
                        self.rollback();
                        // Wait for the server's answer to everything typed so far.
                        if let Some(&(last, _)) = self.sent.back() {
                            self.blocked_by = Some(self.blocked_by.unwrap_or(0).max(last));
                        } else {
                            self.blocked_by = Some(self.blocked_by.unwrap_or(0).max(self.acked));
                        }
                    }
                }
            }
        }
        if self.pending.is_empty() {
            // Keep the typed range only while it is still on the cursor's row.
            if self.typed.is_some_and(|t| t.row != grid.cursor().0) {
                self.typed = None;
            }
        }
    }
}

fn same_char(a: Cell, b: Cell) -> bool {
    (a.ch, a.width) == (b.ch, b.width) || (a.is_blank() && b.is_blank())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Pending,
    Confirmed { credit: bool },
    Silent,
    Wrong,
}

/// The display width of a character: 2 for East Asian wide and emoji, 0 for
/// combining marks and controls (not predicted), else 1.
pub fn char_width(c: char) -> u8 {
    let u = c as u32;
    if u < 0x20 || (0x7f..0xa0).contains(&u) {
        return 0;
    }
    if (0x300..0x370).contains(&u)
        || (0x200b..0x2010).contains(&u)
        || (0xfe00..0xfe10).contains(&u)
        || (0x1ab0..0x1b00).contains(&u)
        || (0x20d0..0x2100).contains(&u)
    {
        return 0;
    }
    let wide = (0x1100..=0x115f).contains(&u)
        || (0x2e80..=0x303e).contains(&u)
        || (0x3041..=0x33ff).contains(&u)
        || (0x3400..=0x4dbf).contains(&u)
        || (0x4e00..=0x9fff).contains(&u)
        || (0xa000..=0xa4cf).contains(&u)
        || (0xac00..=0xd7a3).contains(&u)
        || (0xf900..=0xfaff).contains(&u)
        || (0xfe30..=0xfe4f).contains(&u)
        || (0xff00..=0xff60).contains(&u)
        || (0xffe0..=0xffe6).contains(&u)
        || (0x1f300..=0x1f64f).contains(&u)
        || (0x1f900..=0x1f9ff).contains(&u)
        || (0x20000..=0x3fffd).contains(&u);
    if wide {
        2
    } else {
        1
    }
}

/// Splits typed bytes into keys. Anything not understood is a barrier.
fn parse_keys(data: &[u8]) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        match b {
            0x7f | 0x08 => {
                keys.push(Key::Backspace);
                i += 1;
            }
            0x1b => {
                let seq = &data[i..];
                if seq.len() >= 3
                    && (seq[1] == b'[' || seq[1] == b'O')
                    && matches!(seq[2], b'C' | b'D')
                {
                    keys.push(if seq[2] == b'C' {
                        Key::Right
                    } else {
                        Key::Left
                    });
                    i += 3;
                } else {
                    keys.push(Key::Barrier);
                    // The rest of an unknown sequence is part of the same barrier.
                    return keys;
                }
            }
            0x00..=0x1f => {
                keys.push(Key::Barrier);
                i += 1;
            }
            _ => {
                let len = match b {
                    0x20..=0x7e => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf7 => 4,
                    _ => 0,
                };
                let ch = (len > 0 && i + len <= data.len())
                    .then(|| std::str::from_utf8(&data[i..i + len]).ok())
                    .flatten()
                    .and_then(|s| s.chars().next());
                match ch {
                    Some(c) if char_width(c) > 0 => {
                        keys.push(Key::Char(c));
                        i += len;
                    }
                    _ => {
                        keys.push(Key::Barrier);
                        return keys;
                    }
                }
            }
        }
    }
    keys
}

pub mod sim;
#[cfg(test)]
mod tests;
