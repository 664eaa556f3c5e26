//! A simulated server and link for the predictor: a screen the server draws
//! on, behaviours for what a program does with a key, a link with a one-way
//! delay, and a checker that nothing predicted outlives the server's answer.
//! Sans-IO and in simulated time; used by the unit tests, the property test
//! and the cargo-fuzz target (`fuzz/fuzz_targets/predict.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::*;

/// A screen: what the server draws and what the client has received.
#[derive(Clone, Debug)]
pub struct Screen {
    pub rows: u16,
    pub cols: u16,
    cells: Vec<Cell>,
    pub cursor: (u16, u16),
    pub alt: bool,
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
    pub fn new(rows: u16, cols: u16) -> Self {
        Screen {
            rows,
            cols,
            cells: vec![Cell::BLANK; rows as usize * cols as usize],
            cursor: (0, 0),
            alt: false,
        }
    }

    pub fn set(&mut self, row: u16, col: u16, cell: Cell) {
        if row < self.rows && col < self.cols {
            self.cells[row as usize * self.cols as usize + col as usize] = cell;
        }
    }

    /// Writes at the cursor and advances, as a terminal does (no wrapping: it stops at the margin).
    pub fn put_styled(&mut self, ch: char, style: u32) {
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

    pub fn text(&mut self, s: &str) {
        for ch in s.chars() {
            self.put_styled(ch, 0);
        }
    }

    pub fn newline(&mut self) {
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

    pub fn clear(&mut self) {
        self.cells.iter_mut().for_each(|c| *c = Cell::BLANK);
        self.cursor = (0, 0);
    }

    pub fn row_text(&self, row: u16) -> String {
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
pub type Behaviour = Box<dyn FnMut(&mut Screen, &[u8])>;

/// A readline-like line editor: echoes, backspace and left/right at the end,
/// Enter runs nothing and prints a new prompt.
pub fn shell() -> Behaviour {
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
pub struct Sim {
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
    pub fn new(mode: Mode, owd: Duration, server: Screen, behaviour: Behaviour) -> Self {
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
    pub fn type_keys(&mut self, data: &[u8]) {
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
    pub fn server_draws(&mut self, f: impl FnOnce(&mut Screen)) {
        f(&mut self.server);
        let at = (self.now + self.owd).max(self.in_flight.back().map_or(self.now, |a| a.at));
        self.in_flight.push_back(Arrival {
            at,
            ack: 0,
            screen: self.server.clone(),
        });
    }

    pub fn advance(&mut self, d: Duration) {
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
    pub fn visible(&self) -> Screen {
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

    pub fn row(&self, r: u16) -> String {
        self.visible().row_text(r)
    }

    /// Long enough for every answer to arrive and every prediction to be judged.
    pub fn settle(&mut self) {
        self.advance(self.owd * 4 + ECHO_GRACE * 2);
    }
}

pub fn prompt_screen(rows: u16, cols: u16) -> Screen {
    let mut s = Screen::new(rows, cols);
    s.text("$ ");
    s
}

/// A small deterministic generator (xorshift): the property test needs no dependency.
pub struct Rng(pub u64);

/// Where the random choices come from: a generator, or the fuzzer's bytes.
pub trait Source {
    fn next(&mut self) -> u64;
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

impl Source for Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The fuzzer's input, a byte per choice (zeros once it runs out).
pub struct Bytes<'a>(pub &'a [u8]);

impl Source for Bytes<'_> {
    fn next(&mut self) -> u64 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b as u64
            }
            None => 0,
        }
    }
}

/// Random keys against a server that sometimes echoes, sometimes
/// upper-cases, ignores, scribbles elsewhere, clears or hides input; the
/// link's delay varies. Once everything has arrived and been judged, the
/// overlay is empty: nothing on screen that the server did not draw.
pub fn run_random(seed: u64, steps: usize) {
    run_source(&mut Rng(seed | 1), steps, &format!("seed {seed}"));
}

/// The property on any source of choices; `what` names the run in a failure.
pub fn run_source(rng: &mut dyn Source, steps: usize, what: &str) {
    let seed = what;
    let owd = Duration::from_millis(rng.below(200) + 1);
    let rows = 3 + rng.below(6) as u16;
    let cols = 4 + rng.below(30) as u16;
    let mode = [Mode::Auto, Mode::Always][rng.below(2) as usize];
    let behaviour_seed = rng.next().wrapping_mul(0x9e37_79b9_7f4a_7c15);
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

/// Interprets arbitrary bytes as a session (the fuzz target's entry point):
/// each byte is one choice (link, screen, key, server behaviour, time).
/// Panics if anything predicted is left once the server has answered.
pub fn run_bytes(data: &[u8]) {
    let steps = data.len().min(600) / 3 + 1;
    run_source(&mut Bytes(data), steps, "fuzz input");
}
