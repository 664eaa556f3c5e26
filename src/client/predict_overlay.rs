//! Draws the echo predictions of `proto::predict` over the program's output.
//!
//! The program's bytes go to the terminal untouched (that keeps the native
//! scrollback), so the overlay lives on top of them: before each chunk of
//! program output the predicted cells are repainted from the client's vt100
//! model (as the banner is) and the cursor and pen are put back where the
//! program left them; after it, the predictor looks at the new screen and the
//! cells it still believes in are drawn again. All decisions are the core's;
//! this file turns its [`Overlay`] into escape sequences.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use crate::proto::frame::Down;
use crate::proto::predict::{Cell, Grid, Mode, Overlay, Predictor};

static MODE: AtomicU8 = AtomicU8::new(0);

/// `--predict`, set once by the command line before attaching.
pub fn set_mode(mode: Mode) {
    MODE.store(
        match mode {
            Mode::Auto => 0,
            Mode::Always => 1,
            Mode::Never => 2,
        },
        Ordering::Relaxed,
    );
}

fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Always,
        2 => Mode::Never,
        _ => Mode::Auto,
    }
}

/// The client's vt100 model seen as the predictor's [`Grid`].
struct View<'a>(&'a vt100::Screen);

impl Grid for View<'_> {
    fn size(&self) -> (u16, u16) {
        let (r, c) = self.0.size();
        (r.get(), c.get())
    }
    fn cursor(&self) -> (u16, u16) {
        self.0.cursor_position()
    }
    fn cell(&self, row: u16, col: u16) -> Cell {
        let Some(c) = self.0.cell(row, col) else {
            return Cell::BLANK;
        };
        let width = if c.is_wide_continuation() {
            0
        } else if c.is_wide() {
            2
        } else {
            1
        };
        let ch = c.contents().chars().next().unwrap_or(' ');
        Cell {
            ch: if width == 0 { ' ' } else { ch },
            width,
            style: style_id(c),
        }
    }
    fn alternate(&self) -> bool {
        self.0.alternate_screen()
    }
}

fn style_id(c: &vt100::Cell) -> u32 {
    let color = |c: vt100::Color| -> u32 {
        match c {
            vt100::Color::Default => 0,
            vt100::Color::Idx(i) => 1 + i as u32,
            vt100::Color::Rgb(r, g, b) => 0x100 + ((r as u32) << 16 | (g as u32) << 8 | b as u32),
        }
    };
    let flags = c.bold() as u32
        | (c.dim() as u32) << 1
        | (c.italic() as u32) << 2
        | (c.underline() as u32) << 3
        | (c.inverse() as u32) << 4;
    (color(c.fgcolor()).wrapping_mul(31) ^ color(c.bgcolor()).wrapping_mul(7919)) << 5 | flags
}

/// SGR for a model cell's look, after a reset.
fn sgr(out: &mut Vec<u8>, c: &vt100::Cell) {
    out.extend_from_slice(b"\x1b[0");
    let mut p = |s: &str| {
        out.push(b';');
        out.extend_from_slice(s.as_bytes());
    };
    for (on, code) in [
        (c.bold(), "1"),
        (c.dim(), "2"),
        (c.italic(), "3"),
        (c.underline(), "4"),
        (c.inverse(), "7"),
    ] {
        if on {
            p(code);
        }
    }
    for (color, base) in [(c.fgcolor(), 30u32), (c.bgcolor(), 40u32)] {
        match color {
            vt100::Color::Default => {}
            vt100::Color::Idx(i) if i < 8 => p(&(base + i as u32).to_string()),
            vt100::Color::Idx(i) if i < 16 => p(&(base + 60 + i as u32 - 8).to_string()),
            vt100::Color::Idx(i) => p(&format!("{};5;{i}", base + 8)),
            vt100::Color::Rgb(r, g, b) => p(&format!("{};2;{r};{g};{b}", base + 8)),
        }
    }
    out.push(b'm');
}

fn goto(out: &mut Vec<u8>, row: u16, col: u16) {
    out.extend_from_slice(format!("\x1b[{};{}H", row + 1, col + 1).as_bytes());
}

pub struct PredictOverlay {
    core: Predictor,
    /// Cells drawn on the terminal now: (row, col, width).
    drawn: Vec<(u16, u16, u8)>,
    /// The terminal's cursor is not where the model says.
    cursor_moved: bool,
    shown: Overlay,
}

impl Default for PredictOverlay {
    fn default() -> Self {
        Self::new(mode())
    }
}

impl PredictOverlay {
    pub fn new(mode: Mode) -> Self {
        PredictOverlay {
            core: Predictor::new(mode),
            drawn: Vec::new(),
            cursor_moved: false,
            shown: Overlay::default(),
        }
    }

    fn off(&self) -> bool {
        self.core.mode() == Mode::Never
    }

    /// The user typed `data`, queued as input chunk `seq`.
    pub fn keys(&mut self, data: &[u8], seq: u64, screen: &vt100::Screen) {
        if !self.off() {
            self.core.keys(data, seq, &View(screen), Instant::now());
        }
    }

    /// Every frame from the server passes here first.
    pub fn frame(&mut self, frame: &Down) {
        if self.off() {
            return;
        }
        match frame {
            Down::InputAck { seq } => self.core.input_acked(*seq, Instant::now()),
            Down::TtyModes(m) => self.core.set_tty_modes(*m),
            Down::Snapshot { .. } | Down::Attached(_) => self.core.reset(),
            _ => {}
        }
    }

    pub fn resized(&mut self) {
        self.core.reset();
    }

    /// Before program output (or anything else) is written: take the overlay
    /// away, so the terminal shows the model exactly and the program's bytes
    /// land where it expects. `screen` is the model before that output.
    pub fn hide(&mut self, out: &mut Vec<u8>, screen: &vt100::Screen) {
        if self.drawn.is_empty() && !self.cursor_moved {
            return;
        }
        for (row, col, width) in std::mem::take(&mut self.drawn) {
            // A wide character is repainted from its first half.
            let (mut start, mut end) = (col, col + width as u16);
            if screen
                .cell(row, start)
                .is_some_and(|c| c.is_wide_continuation())
                && start > 0
            {
                start -= 1;
            }
            if screen
                .cell(row, end.saturating_sub(1))
                .is_some_and(|c| c.is_wide())
            {
                end += 1;
            }
            goto(out, row, start);
            let mut c = start;
            while c < end {
                match screen.cell(row, c) {
                    Some(cell) => {
                        sgr(out, cell);
                        if cell.has_contents() {
                            out.extend_from_slice(cell.contents().as_bytes());
                        } else {
                            out.push(b' ');
                        }
                        c += if cell.is_wide() { 2 } else { 1 };
                    }
                    None => c = end,
                }
            }
        }
        self.cursor_moved = false;
        self.shown = Overlay::default();
        put_cursor_back(out, screen);
    }

    /// Whether `hide` or `render` would look at the model (the driver then
    /// brings it up to date; most of the time nothing is predicted).
    pub fn needs_model(&self) -> bool {
        !self.drawn.is_empty() || self.cursor_moved || !(self.off() || self.core.is_idle())
    }

    /// After the model was updated: judge the predictions against it and draw
    /// what is still predicted. `redraw`: something else was written since the
    /// overlay was drawn (a banner), so draw it all again.
    pub fn render(&mut self, out: &mut Vec<u8>, screen: &vt100::Screen, redraw: bool) {
        if self.off() || (self.core.is_idle() && !self.cursor_moved) {
            // The common case (no key in flight): nothing to judge or draw.
            return;
        }
        self.core.update(&View(screen), Instant::now());
        let next = self.core.overlay();
        if next == self.shown && !redraw {
            return;
        }
        self.hide(out, screen);
        if next.is_empty() {
            return;
        }
        for &(row, col, ch, width) in &next.cells {
            goto(out, row, col);
            out.extend_from_slice(if next.underline {
                b"\x1b[0;4m"
            } else {
                b"\x1b[0m"
            });
            let mut b = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            self.drawn.push((row, col, width));
        }
        out.extend_from_slice(b"\x1b[0m");
        out.extend_from_slice(screen.attributes_formatted().as_bytes());
        let (r, c) = next.cursor.unwrap_or(screen.cursor_position());
        goto(out, r, c);
        self.cursor_moved = true;
        self.shown = next;
    }

    /// When `render` should run even if nothing arrives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    pub fn is_drawn(&self) -> bool {
        self.cursor_moved
    }
}

fn put_cursor_back(out: &mut Vec<u8>, screen: &vt100::Screen) {
    let (row, col) = screen.cursor_position();
    out.extend_from_slice(b"\x1b[0m");
    goto(out, row, col);
    out.extend_from_slice(screen.attributes_formatted().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::TtyModes;
    use std::num::NonZeroU16;

    fn parser(rows: u16, cols: u16) -> vt100::Parser {
        vt100::Parser::new(
            NonZeroU16::new(rows).unwrap(),
            NonZeroU16::new(cols).unwrap(),
            0,
        )
    }

    struct Harness {
        model: vt100::Parser,
        term: vt100::Parser,
        o: PredictOverlay,
    }

    impl Harness {
        /// Program output through the driver's path; the terminal sees what it writes.
        fn program(&mut self, bytes: &[u8]) {
            let mut out = Vec::new();
            self.o.hide(&mut out, self.model.screen());
            out.extend_from_slice(bytes);
            self.model.process(bytes);
            self.o.render(&mut out, self.model.screen(), false);
            self.term.process(&out);
        }
    }

    /// The model, a terminal fed what the driver writes, and the overlay: a
    /// wrong prediction is drawn, then removed, and the terminal ends up
    /// exactly the program's screen (colours included).
    #[test]
    fn drawn_and_removed_without_a_trace() {
        let mut h = Harness {
            model: parser(4, 20),
            term: parser(4, 20),
            o: PredictOverlay::new(Mode::Always),
        };
        h.program(b"\x1b[1;32m$\x1b[0m ");
        h.o.frame(&Down::TtyModes(TtyModes {
            echo: false,
            canonical: false,
        }));
        // Evidence that the program echoes: 'l' predicted and echoed.
        h.o.keys(b"l", 1, h.model.screen());
        h.o.frame(&Down::InputAck { seq: 1 });
        h.program(b"l");
        h.o.keys(b"s", 2, h.model.screen());
        h.program(b"");
        assert_eq!(h.term.screen().contents().trim_end(), "$ ls");
        assert_eq!(h.term.screen().cursor_position(), (0, 4));
        assert_eq!(h.model.screen().contents().trim_end(), "$ l");
        // The program draws 'S' instead, in red: the prediction goes.
        h.o.frame(&Down::InputAck { seq: 2 });
        h.program(b"\x1b[31mS\x1b[0m");
        assert_eq!(
            h.term.screen().contents_formatted(),
            h.model.screen().contents_formatted()
        );
        assert_eq!(
            h.term.screen().cursor_position(),
            h.model.screen().cursor_position()
        );
    }
}
