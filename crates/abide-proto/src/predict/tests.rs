//! The predictor against a simulated server and link, in simulated time.

use super::*;

/// A screen: what the server draws and what the client has received.
#[derive(Clone, Debug)]
pub(super) struct Screen {
    rows: u16,
    cols: u16,
    cells: Vec<Cell>,
    cursor: (u16, u16),
    alt: bool,
}

impl Grid for Screen {
    fn size(&self) -> (u16, u16) {
        (self.rows, self.cols)
    }
    fn cursor(&self) -> (u16, u16) {
        self.cursor
    }
    fn cell(&self, row: u16, col: u16) -> Cell {
        if row < self.rows && col < self.cols {
            self.cells[row as usize * self.cols as usize + col as usize]
        } else {
            Cell::BLANK
        }
    }
    fn alternate(&self) -> bool {
        self.alt
    }
}

impl Screen {
    pub(super) fn new(rows: u16, cols: u16) -> Self {
        Screen {
            rows,
            cols,
            cells: vec![Cell::BLANK; rows as usize * cols as usize],
            cursor: (0, 0),
            alt: false,
        }
    }

    fn set(&mut self, row: u16, col: u16, cell: Cell) {
        if row < self.rows && col < self.cols {
            self.cells[row as usize * self.cols as usize + col as usize] = cell;
        }
    }

    /// Writes at the cursor and advances, as a terminal does (no wrapping: it stops at the margin).
    pub(super) fn put_styled(&mut self, ch: char, style: u32) {
        let w = char_width(ch).max(1);
        let (r, c) = self.cursor;
        if c + w as u16 > self.cols {
            return;
        }
        self.set(
            r,
            c,
            Cell {
                ch,
                width: w,
                style,
            },
        );
        if w == 2 {
            self.set(
                r,
                c + 1,
                Cell {
                    ch: ' ',
                    width: 0,
                    style,
                },
            );
        }
        self.cursor = (r, c + w as u16);
    }

    pub(super) fn text(&mut self, s: &str) {
        for ch in s.chars() {
            self.put_styled(ch, 0);
        }
    }

    pub(super) fn newline(&mut self) {
        let (r, _) = self.cursor;
        if r + 1 >= self.rows {
            let cols = self.cols as usize;
            self.cells.drain(..cols);
            self.cells.extend(std::iter::repeat_n(Cell::BLANK, cols));
            self.cursor = (r, 0);
        } else {
            self.cursor = (r + 1, 0);
        }
    }

    pub(super) fn clear(&mut self) {
        self.cells.iter_mut().for_each(|c| *c = Cell::BLANK);
        self.cursor = (0, 0);
    }

    fn row_text(&self, row: u16) -> String {
        (0..self.cols)
            .filter_map(|c| {
                let cell = self.cell(row, c);
                (cell.width != 0).then_some(cell.ch)
            })
            .collect::<String>()
            .trim_end()
            .to_string()
    }
}

/// What the server does with one input chunk.
pub(super) type Behaviour = Box<dyn FnMut(&mut Screen, &[u8])>;

/// A readline-like line editor: echoes, backspace and left/right at the end,
/// Enter runs nothing and prints a new prompt.
pub(super) fn shell() -> Behaviour {
    Box::new(|s: &mut Screen, data: &[u8]| {
        for key in parse_keys(data) {
            match key {
                Key::Char(c) => s.put_styled(c, 0),
                Key::Backspace => {
                    let (r, c) = s.cursor;
                    if c > 2 {
                        let w = if s.cell(r, c - 1).width == 0 { 2 } else { 1 };
                        for k in 0..w {
                            s.set(r, c - w + k, Cell::BLANK);
                        }
                        s.cursor = (r, c - w);
                    }
                }
                Key::Left => {
                    if s.cursor.1 > 2 {
                        s.cursor.1 -= 1;
                    }
                }
                Key::Right => {}
                Key::Barrier => {
                    s.newline();
                    s.text("$ ");
                }
            }
        }
    })
}

struct Arrival {
    at: Instant,
    ack: u64,
    screen: Screen,
}

/// The client, a link with a fixed one-way delay, and a server.
pub(super) struct Sim {
    pub p: Predictor,
    pub client: Screen,
    pub server: Screen,
    pub behaviour: Behaviour,
    pub now: Instant,
    pub owd: Duration,
    seq: u64,
    in_flight: VecDeque<Arrival>,
}

impl Sim {
    pub(super) fn new(mode: Mode, owd: Duration, server: Screen, behaviour: Behaviour) -> Self {
        Sim {
            p: Predictor::new(mode),
            client: server.clone(),
            server,
            behaviour,
            now: Instant::now(),
            owd,
            seq: 0,
            in_flight: VecDeque::new(),
        }
    }

    /// The server's processing happens when the key arrives; its answer (ack,
    /// then the screen) reaches the client one more `owd` later. Same order as sent.
    pub(super) fn type_keys(&mut self, data: &[u8]) {
        self.seq += 1;
        self.p.keys(data, self.seq, &self.client, self.now);
        (self.behaviour)(&mut self.server, data);
        let at = (self.now + self.owd * 2).max(self.in_flight.back().map_or(self.now, |a| a.at));
        self.in_flight.push_back(Arrival {
            at,
            ack: self.seq,
            screen: self.server.clone(),
        });
    }

    /// The server draws without input (a background job, a redraw).
    pub(super) fn server_draws(&mut self, f: impl FnOnce(&mut Screen)) {
        f(&mut self.server);
        let at = (self.now + self.owd).max(self.in_flight.back().map_or(self.now, |a| a.at));
        self.in_flight.push_back(Arrival {
            at,
            ack: 0,
            screen: self.server.clone(),
        });
    }

    pub(super) fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next_arrival = self.in_flight.front().map(|a| a.at).filter(|&t| t <= end);
            let next_timer = self.p.poll_timeout().filter(|&t| t <= end);
            let arrival_first = match (next_arrival, next_timer) {
                (None, None) => break,
                (Some(a), Some(t)) => a <= t,
                (a, _) => a.is_some(),
            };
            if arrival_first {
                let arr = self.in_flight.pop_front().unwrap();
                self.now = self.now.max(arr.at);
                if arr.ack > 0 {
                    self.p.input_acked(arr.ack, self.now);
                }
                self.client = arr.screen;
                self.p.update(&self.client, self.now);
            } else {
                let t = next_timer.unwrap();
                self.now = self.now.max(t);
                self.p.update(&self.client, self.now);
                if self.p.poll_timeout() == Some(t) {
                    // Nothing left to do at this instant.
                    break;
                }
            }
            self.check_bounds();
        }
        self.now = end;
        self.p.update(&self.client, self.now);
        self.check_bounds();
    }

    fn check_bounds(&self) {
        let o = self.p.overlay();
        for &(r, c, _, w) in &o.cells {
            assert!(r < self.client.rows && c + w as u16 <= self.client.cols);
        }
    }

    /// What the user sees: the client's screen with the overlay drawn on top.
    pub(super) fn visible(&self) -> Screen {
        let mut s = self.client.clone();
        let o = self.p.overlay();
        for &(r, c, ch, w) in &o.cells {
            s.set(
                r,
                c,
                Cell {
                    ch,
                    width: w,
                    style: 0,
                },
            );
            if w == 2 {
                s.set(
                    r,
                    c + 1,
                    Cell {
                        ch: ' ',
                        width: 0,
                        style: 0,
                    },
                );
            }
        }
        if let Some(cur) = o.cursor {
            s.cursor = cur;
        }
        s
    }

    pub(super) fn row(&self, r: u16) -> String {
        self.visible().row_text(r)
    }

    /// Long enough for every answer to arrive and every prediction to be judged.
    pub(super) fn settle(&mut self) {
        self.advance(self.owd * 4 + ECHO_GRACE * 2);
    }
}

const RTT_300: Duration = Duration::from_millis(150);
const KEY_GAP: Duration = Duration::from_millis(120);

fn prompt_screen(rows: u16, cols: u16) -> Screen {
    let mut s = Screen::new(rows, cols);
    s.text("$ ");
    s
}

/// A shell at a prompt on a 300 ms link, with the link measured and echo seen.
fn warmed_shell() -> Sim {
    let mut sim = Sim::new(Mode::Auto, RTT_300, prompt_screen(10, 40), shell());
    for k in b"ls" {
        sim.type_keys(&[*k]);
        sim.advance(KEY_GAP);
    }
    sim.type_keys(b"\r");
    sim.settle();
    assert_eq!(sim.p.trust, Trust::Echoing);
    sim
}

#[test]
fn keys_show_at_once_on_a_fresh_prompt_and_are_confirmed() {
    let mut sim = warmed_shell();
    assert_eq!(sim.row(1), "$");
    for (i, k) in b"echo hi".iter().enumerate() {
        sim.type_keys(&[*k]);
        // Shown at once, before the server has answered.
        assert_eq!(sim.row(1), format!("$ {}", &"echo hi"[..=i]).trim_end());
        assert_eq!(sim.visible().cursor, (1, 3 + i as u16));
        sim.advance(KEY_GAP);
    }
    assert!(
        sim.p.overlay().underline,
        "300 ms RTT: underlined while unconfirmed"
    );
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    assert_eq!(sim.client.row_text(1), "$ echo hi");
}

#[test]
fn fast_link_shows_nothing_in_auto_mode() {
    let mut sim = Sim::new(
        Mode::Auto,
        Duration::from_millis(2),
        prompt_screen(5, 20),
        shell(),
    );
    for k in b"abc" {
        sim.type_keys(&[*k]);
        assert!(sim.p.overlay().is_empty());
        sim.advance(KEY_GAP);
    }
    assert_eq!(sim.row(0), "$ abc");
}

#[test]
fn password_prompt_never_echoes() {
    let mut sim = warmed_shell();
    // `read -s -p Password:`: the program turns echo off and prints its prompt.
    sim.p.set_tty_modes(TtyModes {
        echo: false,
        canonical: true,
    });
    sim.server_draws(|s| s.text("Password: "));
    sim.behaviour = Box::new(|_: &mut Screen, _: &[u8]| {});
    sim.advance(Duration::from_millis(400));
    for k in b"hunter2" {
        sim.type_keys(&[*k]);
        assert!(sim.p.overlay().is_empty(), "a password key was shown");
        sim.advance(KEY_GAP);
        assert!(sim.p.overlay().is_empty(), "a password key was shown");
    }
    sim.settle();
    assert_eq!(sim.row(1), "$ Password:");
    // Echo back on: prediction resumes after the next confirmation.
    sim.p.set_tty_modes(TtyModes {
        echo: false,
        canonical: false,
    });
}

#[test]
fn password_keys_typed_before_the_mode_arrives_are_taken_away() {
    let mut sim = warmed_shell();
    sim.behaviour = Box::new(|_: &mut Screen, _: &[u8]| {});
    sim.type_keys(b"p");
    // The mode change overtakes the judgement: gone at once.
    sim.p.set_tty_modes(TtyModes {
        echo: false,
        canonical: true,
    });
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn right_prompt_is_overwritten_not_pushed() {
    let mut server = prompt_screen(5, 30);
    // zsh RPROMPT at the right margin.
    server.cursor = (0, 24);
    server.text("[main]");
    server.cursor = (0, 2);
    let mut sim = Sim::new(Mode::Always, RTT_300, server, shell());
    sim.p.trust = Trust::Echoing;
    sim.p.srtt = Some(Duration::from_millis(300));
    for k in b"git st" {
        sim.type_keys(&[*k]);
        sim.advance(KEY_GAP);
    }
    // The typed text is shown, and the right prompt stays where it is.
    assert_eq!(sim.row(0), "$ git st                [main]");
    sim.settle();
    assert_eq!(sim.row(0), "$ git st                [main]");
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn autosuggestion_is_overwritten_not_pushed() {
    const GREY: u32 = 8;
    let mut server = prompt_screen(5, 30);
    server.text("ec");
    for ch in "ho hello".chars() {
        server.put_styled(ch, GREY);
    }
    server.cursor = (0, 4);
    // fish: the typed key replaces the suggestion's cell, a divergent key drops it.
    let fish: Behaviour = Box::new(|s: &mut Screen, data: &[u8]| {
        for &b in data {
            let (r, c) = s.cursor;
            let suggested = s.cell(r, c);
            s.put_styled(b as char, 0);
            if suggested.ch != b as char {
                for k in c + 1..s.cols {
                    s.set(r, k, Cell::BLANK);
                }
            }
        }
    });
    let mut sim = Sim::new(Mode::Always, RTT_300, server, fish);
    sim.p.trust = Trust::Echoing;
    sim.p.srtt = Some(Duration::from_millis(300));
    sim.type_keys(b"h");
    assert_eq!(sim.row(0), "$ echo hello", "overwritten, not pushed");
    sim.advance(KEY_GAP);
    sim.type_keys(b"x");
    assert_eq!(sim.row(0), "$ echx hello");
    sim.settle();
    assert_eq!(sim.row(0), "$ echx");
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn enter_at_the_bottom_row() {
    let mut sim = warmed_shell();
    // Fill the screen so the prompt sits on the last row.
    sim.server_draws(|s| {
        for _ in 0..12 {
            s.newline();
        }
        s.text("$ ");
    });
    sim.settle();
    assert_eq!(sim.client.cursor, (9, 2));
    sim.type_keys(b"l");
    sim.advance(KEY_GAP);
    sim.type_keys(b"s");
    sim.advance(KEY_GAP);
    sim.type_keys(b"\r");
    // Typed before the server has answered the Enter: where it lands is
    // unknown (the screen scrolls), so it is not shown anywhere.
    sim.type_keys(b"p");
    sim.type_keys(b"w");
    let before = sim.visible();
    for r in 0..10 {
        let row = before.row_text(r);
        assert!(
            !row.contains("pw") && !row.ends_with('p'),
            "row {r}: {row:?}"
        );
    }
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    assert_eq!(sim.row(8), "$ ls");
    assert_eq!(sim.row(9), "$ pw");
    // Now settled on the new bottom row: the next key shows at once.
    sim.type_keys(b"d");
    assert_eq!(sim.row(9), "$ pwd");
    sim.settle();
    assert_eq!(sim.client.row_text(9), "$ pwd");
}

#[test]
fn wide_characters() {
    let mut sim = warmed_shell();
    sim.type_keys("日".as_bytes());
    assert_eq!(sim.row(1), "$ 日");
    assert_eq!(sim.visible().cursor, (1, 4));
    sim.advance(KEY_GAP);
    sim.type_keys("本".as_bytes());
    assert_eq!(sim.visible().cursor, (1, 6));
    sim.advance(KEY_GAP);
    sim.type_keys(b"x");
    assert_eq!(sim.row(1), "$ 日本x");
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    // Backspace over a confirmed wide character moves back two cells.
    sim.type_keys(b"\x7f");
    sim.advance(KEY_GAP);
    sim.type_keys(b"\x7f");
    assert_eq!(sim.row(1), "$ 日");
    assert_eq!(sim.visible().cursor, (1, 4));
    sim.settle();
    assert_eq!(sim.client.row_text(1), "$ 日");
    assert!(sim.p.overlay().is_empty());
    // A wide character never goes past the margin.
    sim.server_draws(|s| s.cursor = (1, 39));
    sim.settle();
    sim.type_keys("本".as_bytes());
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn wrong_prediction_is_corrected_within_one_round_trip() {
    let mut sim = warmed_shell();
    sim.type_keys(b"a");
    sim.advance(KEY_GAP);
    // The program starts upper-casing.
    sim.behaviour = Box::new(|s: &mut Screen, data: &[u8]| {
        for &b in data {
            s.put_styled(b.to_ascii_uppercase() as char, 0);
        }
    });
    let t0 = sim.now;
    sim.type_keys(b"b");
    sim.advance(KEY_GAP);
    sim.type_keys(b"c");
    assert_eq!(sim.row(1), "$ abc");
    // Exactly one round trip after 'b' the server's 'B' is there and the
    // predictions built on 'b' are gone.
    let rtt = sim.owd * 2;
    sim.advance(t0 + rtt - sim.now);
    assert_eq!(sim.row(1), "$ aB");
    assert!(sim.p.overlay().is_empty());
    sim.settle();
    assert_eq!(sim.row(1), "$ aBC");
    // Then no more guessing until the program echoes as predicted again.
    sim.type_keys(b"d");
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn first_key_after_a_mode_change_in_a_full_screen_editor() {
    let mut sim = warmed_shell();
    // `vim` + Enter: the alternate screen, cursor at the top left; `i`
    // draws nothing, then keys echo.
    let mut insert = false;
    sim.behaviour = Box::new(move |s: &mut Screen, data: &[u8]| {
        if data == b"\r" {
            s.clear();
            s.alt = true;
            for r in 1..s.rows {
                s.cursor = (r, 0);
                s.text("~");
            }
            s.cursor = (0, 0);
        } else if !insert && data == b"i" {
            insert = true;
        } else if insert {
            for ch in String::from_utf8_lossy(data).chars() {
                s.put_styled(ch, 0);
            }
        }
    });
    sim.type_keys(b"\r");
    sim.settle();
    sim.type_keys(b"i");
    assert!(sim.p.overlay().is_empty(), "no evidence that 'i' echoes");
    sim.settle();
    assert_eq!(sim.row(0), "");
    sim.type_keys(b"e");
    assert_eq!(sim.row(0), "e", "shown at once after the mode change");
    sim.advance(KEY_GAP);
    sim.type_keys(b"c");
    assert_eq!(sim.row(0), "ec");
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    assert_eq!(sim.client.row_text(0), "ec");
}

#[test]
fn pastes_are_not_predicted() {
    let mut sim = warmed_shell();
    sim.type_keys(&[b'x'; PASTE_BYTES + 1]);
    assert!(sim.p.overlay().is_empty());
    sim.type_keys(b"y");
    assert!(sim.p.overlay().is_empty());
    sim.settle();
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn left_right_and_backspace_within_typed_text() {
    let mut sim = warmed_shell();
    for k in b"abc" {
        sim.type_keys(&[*k]);
        sim.advance(KEY_GAP);
    }
    sim.type_keys(b"\x1b[D");
    assert_eq!(sim.visible().cursor, (1, 4));
    sim.advance(KEY_GAP);
    // Typing in the middle would push text right: not predicted.
    sim.type_keys(b"Z");
    assert_eq!(sim.row(1), "$ abc");
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    assert_eq!(sim.client.row_text(1), "$ abZ");
}

#[test]
fn never_mode_predicts_nothing() {
    let mut sim = Sim::new(Mode::Never, RTT_300, prompt_screen(5, 20), shell());
    sim.type_keys(b"a");
    assert!(sim.p.overlay().is_empty());
}

/// A small deterministic generator (xorshift): the property test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random keys against a server that sometimes echoes, sometimes
/// upper-cases, ignores, scribbles elsewhere, clears or hides input; the
/// link's delay varies. Once everything has arrived and been judged, the
/// overlay is empty: nothing on screen that the server did not draw.
pub(super) fn run_random(seed: u64, steps: usize) {
    let mut rng = Rng(seed | 1);
    let owd = Duration::from_millis(rng.below(200) + 1);
    let rows = 3 + rng.below(6) as u16;
    let cols = 4 + rng.below(30) as u16;
    let mode = [Mode::Auto, Mode::Always][rng.below(2) as usize];
    let behaviour_seed = rng.next();
    let mut brng = Rng(behaviour_seed | 1);
    let mut editor = shell();
    let behaviour: Behaviour = Box::new(move |s: &mut Screen, data: &[u8]| match brng.below(10) {
        0 => {}
        1 => {
            for ch in String::from_utf8_lossy(data).chars() {
                s.put_styled(ch.to_ascii_uppercase(), 0);
            }
        }
        2 => {
            let (r, c) = (
                brng.below(s.rows as u64) as u16,
                brng.below(s.cols as u64) as u16,
            );
            s.set(
                r,
                c,
                Cell {
                    ch: 'Q',
                    width: 1,
                    style: 3,
                },
            );
        }
        3 => {
            s.clear();
            s.text("$ ");
        }
        4 => {
            s.cursor = (
                brng.below(s.rows as u64) as u16,
                brng.below(s.cols as u64) as u16,
            )
        }
        _ => editor(s, data),
    });
    let mut sim = Sim::new(mode, owd, prompt_screen(rows, cols), behaviour);
    const KEYS: [&[u8]; 12] = [
        b"a",
        b"b",
        b" ",
        b"\x7f",
        b"\x1b[D",
        b"\x1b[C",
        b"\r",
        b"\x1b",
        "日".as_bytes(),
        "é".as_bytes(),
        b"xy",
        b"\x03",
    ];
    for _ in 0..steps {
        match rng.below(20) {
            0 => {
                let hidden = rng.below(2) == 0;
                sim.p.set_tty_modes(TtyModes {
                    echo: !hidden,
                    canonical: true,
                });
            }
            1 => sim.type_keys(&[b'p'; PASTE_BYTES + 1]),
            2 => sim.server_draws(|s| s.text("zz")),
            _ => {
                let k = KEYS[rng.below(KEYS.len() as u64) as usize];
                sim.type_keys(k);
            }
        }
        sim.advance(Duration::from_millis(rng.below(300)));
    }
    sim.settle();
    let o = sim.p.overlay();
    assert!(
        o.is_empty(),
        "seed {seed}: left on screen after settling: {o:?}"
    );
    assert!(
        sim.p.pending.is_empty(),
        "seed {seed}: predictions never judged"
    );
}

#[test]
fn random_keys_and_servers_leave_nothing_behind() {
    for seed in 0..300u64 {
        run_random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 60);
    }
}
