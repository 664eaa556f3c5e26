//! Each candidate model behind one trait: feed bytes (capturing the rows that
//! scroll off as formatted text, as the daemon must), and render its state as
//! escape sequences (history into scrollback, then the screen, cursor, modes).

use std::fmt::Write;
use std::num::NonZeroU16;

pub trait Model {
    const NAME: &'static str;
    fn new(rows: u16, cols: u16, history: usize) -> Self;
    fn feed(&mut self, bytes: &[u8]);
    /// None: the model cannot render its state.
    fn render(&self) -> Option<Vec<u8>>;
}

// ---------- a common row formatter ----------

#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub enum C {
    #[default]
    Default,
    Idx(u8),
    Rgb(u8, u8, u8),
}

#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Look {
    pub fg: C,
    pub bg: C,
    pub bold: bool,
    pub dim: bool,
    pub italic: bool,
    pub underline: bool,
    pub inverse: bool,
}

fn colour(out: &mut String, c: C, base: u8) {
    match c {
        C::Default => {}
        C::Idx(i) if i < 8 => {
            let _ = write!(out, ";{}", base + i);
        }
        C::Idx(i) if i < 16 => {
            let _ = write!(out, ";{}", base + 60 + i - 8);
        }
        C::Idx(i) => {
            let _ = write!(out, ";{};5;{i}", base + 8);
        }
        C::Rgb(r, g, b) => {
            let _ = write!(out, ";{};2;{r};{g};{b}", base + 8);
        }
    }
}

pub fn sgr(out: &mut String, l: &Look) {
    out.push_str("\x1b[0");
    if l.bold {
        out.push_str(";1");
    }
    if l.dim {
        out.push_str(";2");
    }
    if l.italic {
        out.push_str(";3");
    }
    if l.underline {
        out.push_str(";4");
    }
    if l.inverse {
        out.push_str(";7");
    }
    colour(out, l.fg, 30);
    colour(out, l.bg, 40);
    out.push('m');
}

/// Formats cells (text, look, is a wide char's right half) up to the last
/// one that is not a default blank.
pub fn format_row<'a, I>(out: &mut String, cells: I)
where
    I: Iterator<Item = (&'a str, Look, bool)> + Clone,
{
    let last = cells
        .clone()
        .enumerate()
        .filter(|(_, (t, l, sp))| !*sp && !(*t == " " && *l == Look::default()))
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(0);
    let mut cur = Look::default();
    for (t, l, spacer) in cells.take(last) {
        if spacer {
            continue;
        }
        if l != cur {
            sgr(out, &l);
            cur = l;
        }
        out.push_str(if t.is_empty() { " " } else { t });
    }
    if cur != Look::default() {
        out.push_str("\x1b[0m");
    }
}

/// History lines, then the screen's rows as lines (pushing the history into
/// the viewer's scrollback) or the alternate screen, as the daemon does.
pub fn lines_then_screen(history: &[String], alt: bool, rows: u16, screen: &[String]) -> String {
    let mut out = String::from("\x1b[?1049l\x1b[0m\r");
    for l in history {
        out.push_str(l);
        out.push_str("\x1b[0m\r\n");
    }
    if alt {
        for _ in 1..rows {
            out.push_str("\r\n");
        }
        out.push_str("\x1b[?1049h\x1b[H\x1b[2J");
        for (r, l) in screen.iter().enumerate() {
            let _ = write!(out, "\x1b[{};1H", r + 1);
            out.push_str(l);
        }
    } else {
        for (r, l) in screen.iter().enumerate() {
            out.push_str(l);
            if r + 1 < screen.len() {
                out.push_str("\x1b[0m\r\n");
            }
        }
    }
    out
}

/// Captured rows: one buffer plus line starts, bounded.
#[derive(Default)]
pub struct Lines {
    pub text: String,
    pub starts: std::collections::VecDeque<usize>,
    pub max: usize,
}

impl Lines {
    fn start(&mut self) {
        if self.starts.len() == self.max {
            self.starts.pop_front();
            let dead = self.starts.front().copied().unwrap_or(self.text.len());
            if dead > self.text.len() / 2 && dead > 64 * 1024 {
                self.text.drain(..dead);
                self.starts.iter_mut().for_each(|s| *s -= dead);
            }
        }
        self.starts.push_back(self.text.len());
    }
    pub fn all(&self) -> Vec<String> {
        let ends: Vec<usize> = self
            .starts
            .iter()
            .skip(1)
            .copied()
            .chain([self.text.len()])
            .collect();
        self.starts
            .iter()
            .zip(ends)
            .map(|(&a, b)| self.text[a..b].to_string())
            .collect()
    }
}

// ---------- vt100 ----------

fn nz(v: u16) -> NonZeroU16 {
    NonZeroU16::new(v).unwrap()
}

pub struct Vt100Plain(vt100::Parser);

impl Model for Vt100Plain {
    const NAME: &'static str = "vt100 0.18 (screen only)";
    fn new(rows: u16, cols: u16, _: usize) -> Self {
        Vt100Plain(vt100::Parser::new(nz(rows), nz(cols), 0))
    }
    fn feed(&mut self, bytes: &[u8]) {
        self.0.process(bytes);
    }
    fn render(&self) -> Option<Vec<u8>> {
        None
    }
}

pub struct Cap(Lines);

impl vt100::Callbacks for Cap {
    fn on_scroll(&mut self, row: vt100::capture::RowContents<'_>, alt: bool) {
        if alt || self.0.max == 0 {
            return;
        }
        self.0.start();
        let mut st = vt100::capture::BasicFormattedCaptureState::new();
        let _ = row.write_formatted_basic(&mut self.0.text, &mut st);
    }
}

pub struct Vt100Cap(vt100::Parser<Cap>);

impl Model for Vt100Cap {
    const NAME: &'static str = "vt100 0.18 + on_scroll capture";
    fn new(rows: u16, cols: u16, history: usize) -> Self {
        Vt100Cap(vt100::Parser::new_with_callbacks(
            nz(rows),
            nz(cols),
            0,
            Cap(Lines {
                max: history,
                ..Default::default()
            }),
        ))
    }
    fn feed(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            self.0.process(piece);
        }
    }
    fn render(&self) -> Option<Vec<u8>> {
        // What abide's render_snapshot does.
        let screen = self.0.screen();
        let mut out = String::new();
        out.push_str("\x1b[?1049l\x1b[0m\r");
        for line in self.0.callbacks().0.all() {
            out.push_str(&line);
            out.push_str("\x1b[0m\r\n");
        }
        if screen.alternate_screen() {
            for _ in 1..screen.size().0.get() {
                out.push_str("\r\n");
            }
            out.push_str("\x1b[?1049h");
        } else {
            out.push_str(
                &screen
                    .contents_formatted_basic()
                    .replace('\n', "\x1b[0m\r\n"),
            );
        }
        out.push_str("\x1b[0m");
        out.push_str(&screen.state_formatted());
        Some(out.into_bytes())
    }
}

/// abide's model: vt100 + capture, with runs of plain lines skipped.
pub struct Vt100Plain2(vt100::Parser<Cap2>, crate::plain_lines::PlainLines, u64);

pub struct Cap2(Lines, u64);

impl vt100::Callbacks for Cap2 {
    fn on_scroll(&mut self, row: vt100::capture::RowContents<'_>, alt: bool) {
        self.1 += 1;
        if alt || self.0.max == 0 {
            return;
        }
        self.0.start();
        let mut st = vt100::capture::BasicFormattedCaptureState::new();
        let _ = row.write_formatted_basic(&mut self.0.text, &mut st);
    }
}

impl crate::plain_lines::Scrolls for Cap2 {
    fn scrolls(&self) -> u64 {
        self.1
    }
    fn passed_through(&mut self, line: &[u8], _: u64) {
        if self.0.max == 0 {
            return;
        }
        self.0.start();
        self.0.text.push_str(std::str::from_utf8(line).unwrap());
    }
}

impl Model for Vt100Plain2 {
    const NAME: &'static str = "vt100 0.18 + capture + plain-line skip (abide)";
    fn new(rows: u16, cols: u16, history: usize) -> Self {
        Vt100Plain2(
            vt100::Parser::new_with_callbacks(
                nz(rows),
                nz(cols),
                0,
                Cap2(
                    Lines {
                        max: history,
                        ..Default::default()
                    },
                    0,
                ),
            ),
            Default::default(),
            0,
        )
    }
    fn feed(&mut self, bytes: &[u8]) {
        self.1.process(&mut self.0, bytes, self.2);
        self.2 += bytes.len() as u64;
    }
    fn render(&self) -> Option<Vec<u8>> {
        None
    }
}

// ---------- avt ----------

/// Bytes to text across chunk boundaries (avt takes `&str`).
#[derive(Default)]
pub struct Utf8 {
    tail: Vec<u8>,
}

impl Utf8 {
    pub fn decode(&mut self, bytes: &[u8], f: &mut impl FnMut(&str)) {
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(bytes);
        let mut input = &buf[..];
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    f(s);
                    return;
                }
                Err(e) => {
                    let ok = e.valid_up_to();
                    f(std::str::from_utf8(&input[..ok]).expect("valid up to here"));
                    match e.error_len() {
                        None => {
                            self.tail = input[ok..].to_vec();
                            return;
                        }
                        Some(n) => {
                            f("\u{fffd}");
                            input = &input[ok + n..];
                        }
                    }
                }
            }
        }
    }
}

fn avt_c(c: Option<avt::Color>) -> C {
    match c {
        None => C::Default,
        Some(avt::Color::Indexed(i)) => C::Idx(i),
        Some(avt::Color::RGB(c)) => C::Rgb(c.r, c.g, c.b),
    }
}

fn avt_look(p: &avt::Pen) -> Look {
    Look {
        fg: avt_c(p.foreground()),
        bg: avt_c(p.background()),
        bold: p.is_bold(),
        dim: p.is_faint(),
        italic: p.is_italic(),
        underline: p.is_underline(),
        inverse: p.is_inverse(),
    }
}

fn avt_row(out: &mut String, line: &avt::Line) {
    let cells: Vec<(String, Look, bool)> = line
        .cells()
        .iter()
        .map(|c| (c.char().to_string(), avt_look(c.pen()), c.width() == 0))
        .collect();
    format_row(out, cells.iter().map(|(t, l, s)| (t.as_str(), *l, *s)));
}

pub struct AvtObs<'a>(&'a mut Lines);

impl avt::Observer for AvtObs<'_> {
    type Output = ();
    fn evicted(&mut self, _: &mut avt::Observation<'_>, line: &avt::Line) {
        if self.0.max == 0 {
            return;
        }
        self.0.start();
        avt_row(&mut self.0.text, line);
    }
    fn end(&mut self, _: &mut avt::Observation<'_>) {}
}

pub struct Avt {
    t: avt::Terminal,
    utf8: Utf8,
    lines: Lines,
    rows: u16,
}

impl Model for Avt {
    const NAME: &'static str = "avt 0.19 + evicted capture";
    fn new(rows: u16, cols: u16, history: usize) -> Self {
        Avt {
            t: avt::Terminal::with_scrollback(cols as usize, rows as usize, Some(0)).unwrap(),
            utf8: Utf8::default(),
            lines: Lines {
                max: history,
                ..Default::default()
            },
            rows,
        }
    }
    fn feed(&mut self, bytes: &[u8]) {
        let t = &mut self.t;
        let lines = &mut self.lines;
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            self.utf8.decode(piece, &mut |text: &str| {
                t.feed_with(text, AvtObs(lines));
            });
        }
    }
    fn render(&self) -> Option<Vec<u8>> {
        let alt = self.t.active_screen_kind() != avt::ScreenKind::Primary;
        let mut out = String::new();
        // History via our formatter, then avt's own dump of the screen state.
        let _ = alt;
        out.push_str("\x1b[?1049l\x1b[0m\r");
        for l in self.lines.all() {
            out.push_str(&l);
            out.push_str("\x1b[0m\r\n");
        }
        for _ in 1..self.rows {
            out.push_str("\r\n");
        }
        out.push_str(&self.t.dump());
        Some(out.into_bytes())
    }
}

// ---------- alacritty_terminal ----------

use alacritty_terminal::event::VoidListener;
use alacritty_terminal::grid::Dimensions;
use alacritty_terminal::index::{Column, Line};
use alacritty_terminal::term::cell::{Cell, Flags};
use alacritty_terminal::term::{test::TermSize, Config, TermMode};
use alacritty_terminal::vte::ansi::{Color as AColor, NamedColor, Processor};

pub struct Alacritty {
    t: alacritty_terminal::Term<VoidListener>,
    p: Processor,
    lines: Lines,
}

fn ala_c(c: AColor, default: NamedColor) -> C {
    match c {
        AColor::Named(n) if n == default => C::Default,
        AColor::Named(n) if (n as usize) < 16 => C::Idx(n as u8),
        AColor::Named(NamedColor::Foreground | NamedColor::Background) => C::Default,
        AColor::Named(n) => {
            // Dim colours: the dim attribute carries them.
            let i = n as usize;
            if (259..267).contains(&i) {
                C::Idx((i - 259) as u8)
            } else {
                C::Default
            }
        }
        AColor::Spec(rgb) => C::Rgb(rgb.r, rgb.g, rgb.b),
        AColor::Indexed(i) => C::Idx(i),
    }
}

fn ala_look(c: &Cell) -> Look {
    Look {
        fg: ala_c(c.fg, NamedColor::Foreground),
        bg: ala_c(c.bg, NamedColor::Background),
        bold: c.flags.contains(Flags::BOLD),
        dim: c.flags.contains(Flags::DIM),
        italic: c.flags.contains(Flags::ITALIC),
        underline: c.flags.intersects(Flags::ALL_UNDERLINES),
        inverse: c.flags.contains(Flags::INVERSE),
    }
}

/// Our serializer of one alacritty grid row.
fn ala_row(out: &mut String, row: &alacritty_terminal::grid::Row<Cell>, cols: usize) {
    // Find the last cell that is not a default blank.
    let mut last = 0;
    for c in 0..cols {
        let cell = &row[Column(c)];
        if cell.c != ' '
            || ala_look(cell) != Look::default()
            || cell.flags.contains(Flags::WIDE_CHAR)
        {
            last = c + 1;
        }
    }
    let mut cur = Look::default();
    for c in 0..last {
        let cell = &row[Column(c)];
        if cell.flags.intersects(Flags::WIDE_CHAR_SPACER) {
            continue;
        }
        let l = ala_look(cell);
        if l != cur {
            sgr(out, &l);
            cur = l;
        }
        if cell.flags.contains(Flags::LEADING_WIDE_CHAR_SPACER) {
            out.push(' ');
            continue;
        }
        out.push(cell.c);
        if let Some(z) = cell.zerowidth() {
            out.extend(z.iter());
        }
    }
    if cur != Look::default() {
        out.push_str("\x1b[0m");
    }
}

impl Alacritty {
    fn drain_history(&mut self) {
        let g = self.t.grid_mut();
        let h = g.history_size();
        if h == 0 {
            return;
        }
        let cols = g.columns();
        if self.lines.max > 0 {
            for i in (1..=h).rev() {
                self.lines.start();
                ala_row(&mut self.lines.text, &g[Line(-(i as i32))], cols);
            }
        }
        g.clear_history();
    }
}

impl Model for Alacritty {
    const NAME: &'static str = "alacritty_terminal 0.26 + our serializer";
    fn new(rows: u16, cols: u16, history: usize) -> Self {
        let config = Config {
            scrolling_history: 4096,
            ..Config::default()
        };
        Alacritty {
            t: alacritty_terminal::Term::new(
                config,
                &TermSize::new(cols as usize, rows as usize),
                VoidListener,
            ),
            p: Processor::new(),
            lines: Lines {
                max: history,
                ..Default::default()
            },
        }
    }
    fn feed(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            self.p.advance(&mut self.t, piece);
            self.drain_history();
        }
    }
    fn render(&self) -> Option<Vec<u8>> {
        let g = self.t.grid();
        let mode = *self.t.mode();
        let rows = g.screen_lines();
        let cols = g.columns();
        let mut screen = Vec::new();
        for r in 0..rows {
            let mut s = String::new();
            ala_row(&mut s, &g[Line(r as i32)], cols);
            screen.push(s);
        }
        let alt = mode.contains(TermMode::ALT_SCREEN);
        let mut out = lines_then_screen(&self.lines.all(), alt, rows as u16, &screen);
        let cur = &g.cursor;
        let _ = write!(
            out,
            "\x1b[{};{}H",
            cur.point.line.0 + 1,
            cur.point.column.0 + 1
        );
        sgr(&mut out, &ala_look(&cur.template));
        let flag = |out: &mut String, m: TermMode, n: &str| {
            let on = mode.contains(m);
            let _ = write!(out, "\x1b[?{n}{}", if on { 'h' } else { 'l' });
        };
        flag(&mut out, TermMode::APP_CURSOR, "1");
        flag(&mut out, TermMode::BRACKETED_PASTE, "2004");
        flag(&mut out, TermMode::SHOW_CURSOR, "25");
        flag(&mut out, TermMode::MOUSE_REPORT_CLICK, "1000");
        flag(&mut out, TermMode::MOUSE_DRAG, "1002");
        flag(&mut out, TermMode::MOUSE_MOTION, "1003");
        flag(&mut out, TermMode::SGR_MOUSE, "1006");
        flag(&mut out, TermMode::UTF8_MOUSE, "1005");
        out.push_str(if mode.contains(TermMode::APP_KEYPAD) {
            "\x1b="
        } else {
            "\x1b>"
        });
        Some(out.into_bytes())
    }
}

// ---------- termwiz (a parser: it has no terminal state machine) ----------

pub struct Termwiz(termwiz::escape::parser::Parser, usize);

impl Model for Termwiz {
    const NAME: &'static str = "termwiz 0.23 (parser only)";
    fn new(_: u16, _: u16, _: usize) -> Self {
        Termwiz(termwiz::escape::parser::Parser::new(), 0)
    }
    fn feed(&mut self, bytes: &[u8]) {
        let mut n = 0;
        self.0.parse(bytes, |a| {
            n += 1;
            std::hint::black_box(a);
        });
        self.1 += n;
    }
    fn render(&self) -> Option<Vec<u8>> {
        None
    }
}

// ---------- fidelity ----------

/// Feeds `data` to the model and to a reference vt100 with the same history;
/// replays the model's rendering into a fresh vt100 and compares every cell
/// of history and screen, the cursor and the modes. Returns a short verdict.
pub fn fidelity<M: Model>(data: &[u8], rows: u16, cols: u16) -> String {
    let hist = 10_000;
    let mut m = M::new(rows, cols, hist);
    for c in data.chunks(4096) {
        m.feed(c);
    }
    let Some(state) = m.render() else {
        return "n/a".into();
    };
    let mut want = vt100::Parser::new(nz(rows), nz(cols), hist);
    want.process(data);
    let mut got = vt100::Parser::new(nz(rows), nz(cols), hist + 1000);
    got.process(&state);
    let (mut cells, mut bad, mut first) = (0usize, 0usize, String::new());
    let cmp = |cells: &mut usize,
               bad: &mut usize,
               first: &mut String,
               w: &vt100::Screen,
               g: &vt100::Screen,
               wr: u16,
               gr: u16,
               what: &str| {
        for c in 0..cols {
            *cells += 1;
            let (a, b) = (w.cell(wr, c).unwrap(), g.cell(gr, c).unwrap());
            let same = a.contents() == b.contents()
                && a.fgcolor() == b.fgcolor()
                && a.bgcolor() == b.bgcolor()
                && a.bold() == b.bold()
                && a.italic() == b.italic()
                && a.underline() == b.underline()
                && a.inverse() == b.inverse()
                && a.is_wide() == b.is_wide()
                && a.is_wide_continuation() == b.is_wide_continuation();
            if !same {
                *bad += 1;
                if first.is_empty() {
                    *first = format!(
                        "{what} row {wr} col {c}: {:?}/{:?} {:?}/{:?}",
                        a.contents(),
                        b.contents(),
                        a.fgcolor(),
                        b.fgcolor()
                    );
                }
            }
        }
    };
    // Screen. The reference on the alternate screen: compare that.
    let (ws, gs) = (want.screen().clone(), got.screen().clone());
    for r in 0..rows {
        cmp(&mut cells, &mut bad, &mut first, &ws, &gs, r, r, "screen");
    }
    // History (primary screen only), newest first, as deep as both go.
    let depth = |p: &mut vt100::Parser| {
        p.screen_mut().set_scrollback(usize::MAX);
        let d = p.screen().scrollback();
        p.screen_mut().set_scrollback(0);
        d
    };
    let mut wantp = vt100::Parser::new(nz(rows), nz(cols), hist);
    // The reference's history lives on its primary screen; replay without the
    // alternate screen switch to reach it.
    wantp.process(data);
    let (wd, gd) = (depth(&mut wantp), depth(&mut got));
    let d = wd.min(gd);
    let mut hist_bad = 0;
    let b0 = bad;
    for k in 1..=d.min(2000) {
        wantp.screen_mut().set_scrollback(k);
        got.screen_mut().set_scrollback(k);
        let (w, g) = (wantp.screen().clone(), got.screen().clone());
        cmp(&mut cells, &mut bad, &mut first, &w, &g, 0, 0, "history");
    }
    hist_bad += bad - b0;
    got.screen_mut().set_scrollback(0);
    let mut notes = Vec::new();
    if gs.cursor_position() != ws.cursor_position() {
        notes.push(format!(
            "cursor {:?}≠{:?}",
            gs.cursor_position(),
            ws.cursor_position()
        ));
    }
    if gs.alternate_screen() != ws.alternate_screen() {
        notes.push("alt screen".into());
    }
    if gs.application_cursor() != ws.application_cursor() {
        notes.push("app cursor".into());
    }
    if gs.bracketed_paste() != ws.bracketed_paste() {
        notes.push("paste".into());
    }
    if gs.hide_cursor() != ws.hide_cursor() {
        notes.push("cursor vis".into());
    }
    if gs.mouse_protocol_mode() != ws.mouse_protocol_mode()
        || gs.mouse_protocol_encoding() != ws.mouse_protocol_encoding()
    {
        notes.push("mouse".into());
    }
    if wd.min(hist) != gd.min(hist) && !ws.alternate_screen() {
        notes.push(format!("history {gd}≠{wd}"));
    }
    let pct = 100.0 * (cells - bad) as f64 / cells as f64;
    let mut v = format!("{pct:.2} %");
    if hist_bad > 0 {
        v.push_str(&format!(" ({hist_bad} hist)"));
    }
    if !notes.is_empty() {
        v.push_str(&format!(" {}", notes.join(",")));
    }
    if bad > 0 && std::env::var("WHY").is_ok() {
        eprintln!("{}: {first}", M::NAME);
    }
    v
}
