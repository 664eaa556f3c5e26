//! A session's output log and the terminal model that trails it.
//!
//! Why the model is off the output path: feeding vt100 (and capturing each
//! row that scrolls off) costs several times what appending to the log does,
//! and it used to run under the same lock, before clients were woken, so it
//! set the session's throughput. Now the pump only appends and wakes clients;
//! the model is fed from the log at its own offset, by a blocking task
//! ([`Recorder::feed`]) in chunks, outside the log lock.
//!
//! The guarantees of the old single lock are kept:
//! - A snapshot stands for exactly the output before its offset: it locks the
//!   model, catches it up to the end of the log and takes the log's end as its
//!   offset in the same critical section (under the log lock), then renders.
//! - The model never misses a byte: an append that would evict bytes the model
//!   has not consumed first catches the model up, synchronously, as before.
//! - The model never trails the log by more than [`MAX_MODEL_LAG`]: past it,
//!   the pump helps the feeder before appending (back-pressure on the program).
//! - A resize lands at the same place in the stream: the model is caught up to
//!   the log's end and resized while the log lock is held.
//!
//! Lock order: model, then log. Only the session's pump appends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use crate::proto::frame::WinSize;
use crate::proto::outlog::{OutLog, Read};
use crate::server::terminal::Terminal;

/// Bytes the model takes per step: small enough that a snapshot or a resize
/// waiting for the model lock gets it soon, large enough to be cheap.
const MODEL_CHUNK: usize = 64 * 1024;

/// How far the model may trail the log. A client that is behind gets the
/// model's state, so this bounds how stale that state can be (about 30 ms of
/// parsing) and how long a Ctrl-C's answer waits behind the model.
pub const MAX_MODEL_LAG: u64 = 1024 * 1024;

pub struct Recorder {
    log: Mutex<Log>,
    model: Mutex<Model>,
    /// `model.offset`, readable without the model lock (which the feeder may
    /// hold for a whole chunk): the pump checks it before evicting.
    modelled: AtomicU64,
}

pub struct Log {
    pub log: OutLog,
    pub last_output: Option<SystemTime>,
}

struct Model {
    term: Terminal,
    /// Every byte before this offset has been processed.
    offset: u64,
}

impl Recorder {
    pub fn new(ring_bytes: usize, size: WinSize, scrollback_lines: usize) -> Self {
        Recorder {
            log: Mutex::new(Log {
                log: OutLog::new(ring_bytes),
                last_output: None,
            }),
            model: Mutex::new(Model {
                term: Terminal::new(size, scrollback_lines),
                offset: 0,
            }),
            modelled: AtomicU64::new(0),
        }
    }

    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }

    /// How far the model would trail the log with `more` bytes appended.
    pub fn lag_after(&self, more: usize) -> u64 {
        self.log().log.end() + more as u64 - self.modelled.load(Ordering::Acquire)
    }

    /// Appends program output; returns the new end offset. Cheap unless the
    /// model has fallen [`MAX_MODEL_LAG`] (or a whole ring) behind; the pump
    /// waits for the model off the runtime thread first, so that this is rare.
    pub fn append(&self, bytes: &[u8]) -> u64 {
        if self.lag_after(bytes.len()) > MAX_MODEL_LAG {
            // The program prints faster than the model parses: help the
            // feeder here, which holds the pump (and so the program, once the
            // PTY is full) back, as a terminal that cannot keep up does.
            self.feed_until(MAX_MODEL_LAG / 2);
        }
        {
            let mut l = self.log();
            let evicts_to =
                (l.log.end() + bytes.len() as u64).saturating_sub(l.log.capacity() as u64);
            if evicts_to <= self.modelled.load(Ordering::Acquire) {
                l.log.append(bytes);
                l.last_output = Some(SystemTime::now());
                return l.log.end();
            }
        }
        // The bytes about to be evicted are not modelled yet: bring the model
        // up to date here and give it these bytes directly (they may not even
        // fit in the ring), as the single lock used to.
        let mut model = self.model.lock().unwrap();
        let mut l = self.catch_up(&mut model);
        let at = model.offset;
        model.term.process_at(bytes, at);
        l.log.append(bytes);
        l.last_output = Some(SystemTime::now());
        model.offset = l.log.end();
        self.modelled.store(model.offset, Ordering::Release);
        l.log.end()
    }

    /// Processes chunks until the model is at most `lag` behind the log.
    pub fn feed_until(&self, lag: u64) {
        let mut chunk = Vec::with_capacity(MODEL_CHUNK);
        loop {
            let mut model = self.model.lock().unwrap();
            if self.log().log.end() <= model.offset + lag
                || !self.next_chunk(&mut model, &mut chunk)
            {
                return;
            }
            self.process(&mut model, &chunk);
        }
    }

    /// Processes what the model has not seen yet (the background feeder).
    /// Takes the model lock one chunk at a time, so a snapshot never waits
    /// for more than a chunk.
    pub fn feed(&self) {
        let mut chunk = Vec::with_capacity(MODEL_CHUNK);
        loop {
            let mut model = self.model.lock().unwrap();
            if !self.next_chunk(&mut model, &mut chunk) {
                return;
            }
            self.process(&mut model, &chunk);
        }
    }

    /// The screen and scrollback as escape sequences, and the offset they
    /// stand for: the model is caught up to the log's end first.
    pub fn snapshot(&self) -> (Vec<u8>, u64) {
        let mut model = self.model.lock().unwrap();
        let at = self.catch_up(&mut model).log.end();
        (model.term.render_snapshot(), at)
    }

    /// The terminal's state for a client that shows the stream up to
    /// `from` (see [`Terminal::render_since`]), and the offset it stands for.
    ///
    /// Unlike a snapshot, it stands for what the model has processed, without
    /// catching up first: under a flood the program prints faster than the
    /// model parses, and the client gets the newest state there is at once.
    /// `None` when the model has not got past `from` yet.
    pub fn state_since(&self, from: u64, budget: usize, name: &str) -> Option<(Vec<u8>, u64)> {
        let mut model = self.model.lock().unwrap();
        let at = model.offset;
        (at > from).then(|| (model.term.render_since(from, budget, name).0, at))
    }

    /// How far the model has processed the log.
    pub fn modelled(&self) -> u64 {
        self.modelled.load(Ordering::Acquire)
    }

    /// The rows that scrolled off, as text with attributes.
    pub fn history(&self, tail: Option<usize>) -> Vec<u8> {
        let mut model = self.model.lock().unwrap();
        drop(self.catch_up(&mut model));
        model.term.history_text(tail)
    }

    pub fn resize(&self, size: WinSize) {
        let mut model = self.model.lock().unwrap();
        let _log = self.catch_up(&mut model);
        model.term.resize(size);
    }

    /// Feeds the model up to the log's end and returns with the log locked
    /// at that point, so the caller acts at a known offset.
    fn catch_up<'a>(&'a self, model: &mut Model) -> MutexGuard<'a, Log> {
        let mut chunk = Vec::with_capacity(MODEL_CHUNK);
        loop {
            let l = self.log();
            if l.log.end() == model.offset {
                return l;
            }
            copy_chunk(&l.log, model, &mut chunk);
            drop(l);
            self.process(model, &chunk);
        }
    }

    /// Copies the next unmodelled bytes into `chunk`; false when there are none.
    fn next_chunk(&self, model: &mut Model, chunk: &mut Vec<u8>) -> bool {
        let l = self.log();
        if l.log.end() == model.offset {
            return false;
        }
        copy_chunk(&l.log, model, chunk);
        true
    }

    fn process(&self, model: &mut Model, chunk: &[u8]) {
        model.term.process_at(chunk, model.offset);
        model.offset += chunk.len() as u64;
        self.modelled.store(model.offset, Ordering::Release);
    }
}

fn copy_chunk(log: &OutLog, model: &mut Model, chunk: &mut Vec<u8>) {
    chunk.clear();
    match log.read(model.offset, MODEL_CHUNK) {
        Read::Bytes(a, b) => {
            chunk.extend_from_slice(a);
            chunk.extend_from_slice(b);
        }
        // `append` never evicts unmodelled bytes; were it to happen, the model
        // can only go on from what is left.
        Read::Evicted { oldest } => {
            tracing::error!(
                model = model.offset,
                oldest,
                "terminal model lost output to the ring"
            );
            model.offset = oldest;
        }
        Read::Future { .. } => unreachable!("the model is never ahead of the log"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: WinSize = WinSize { rows: 5, cols: 20 };

    fn output() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("\x1b[3{}mline {i}\x1b[0m\r\n", i % 8).into_bytes())
            .collect();
        v.push(b"\x1b[1mprompt$ \x1b[0m".to_vec());
        v
    }

    fn reference(chunks: &[Vec<u8>], scrollback: usize) -> Vec<u8> {
        let mut t = Terminal::new(SIZE, scrollback);
        for c in chunks {
            t.process(c);
        }
        t.render_snapshot()
    }

    /// What a snapshot shows on a terminal of `size`: every row of its
    /// scrollback, then the screen with its cursor and modes. Two models fed
    /// the same output in different chunks show the same, though a coloured
    /// row may be spelled differently (the program's own escape codes when
    /// it scrolled straight through, vt100's when it was parsed).
    fn shown(snapshot: &[u8], size: WinSize) -> (Vec<String>, String) {
        let dim = |n: u16| std::num::NonZeroU16::new(n).unwrap();
        let mut p = vt100::Parser::new(dim(size.rows), dim(size.cols), 100_000);
        p.process(snapshot);
        let screen = p.screen().state_formatted();
        let n = p.screen().scrollback_len();
        let rows = (1..=n)
            .rev()
            .map(|k| {
                p.screen_mut().set_scrollback(k);
                p.screen().rows_formatted(0, size.cols).next().unwrap()
            })
            .collect();
        (rows, screen)
    }

    #[test]
    fn snapshot_of_a_lagging_model_equals_an_up_to_date_one() {
        let chunks = output();
        let total: usize = chunks.iter().map(Vec::len).sum();
        // Never fed in the background: the snapshot must catch up by itself.
        let lagging = Recorder::new(1 << 20, SIZE, 100);
        // Fed after every append, as if the feeder kept up.
        let current = Recorder::new(1 << 20, SIZE, 100);
        for c in &chunks {
            lagging.append(c);
            current.append(c);
            current.feed();
        }
        assert_eq!(lagging.modelled.load(Ordering::Acquire), 0);
        let (a, at_a) = lagging.snapshot();
        let (b, at_b) = current.snapshot();
        assert_eq!(at_a, total as u64);
        assert_eq!(at_b, total as u64);
        assert_eq!(shown(&a, SIZE), shown(&b, SIZE));
        assert_eq!(shown(&a, SIZE), shown(&reference(&chunks, 100), SIZE));
    }

    #[test]
    fn a_small_ring_never_evicts_what_the_model_has_not_seen() {
        let chunks = output();
        // A ring far smaller than the output, and one append larger than it.
        let r = Recorder::new(64, SIZE, 1000);
        for c in &chunks {
            r.append(c);
        }
        r.append(&[b'x'; 200]);
        let mut all = chunks.clone();
        all.push(vec![b'x'; 200]);
        let (snap, at) = r.snapshot();
        assert_eq!(at, all.iter().map(Vec::len).sum::<usize>() as u64);
        // Complete scrollback, in order: identical to a model fed everything.
        assert_eq!(shown(&snap, SIZE), shown(&reference(&all, 1000), SIZE));
    }

    #[test]
    fn a_resize_lands_where_it_happened_in_the_stream() {
        let r = Recorder::new(1 << 20, SIZE, 100);
        let mut t = Terminal::new(SIZE, 100);
        let wide = WinSize { rows: 3, cols: 40 };
        for (i, c) in output().iter().enumerate() {
            r.append(c);
            t.process(c);
            if i == 150 {
                r.resize(wide);
                t.resize(wide);
            }
        }
        assert_eq!(
            shown(&r.snapshot().0, wide),
            shown(&t.render_snapshot(), wide)
        );
    }

    #[test]
    fn the_model_never_trails_the_log_by_more_than_the_limit() {
        let r = Recorder::new(64 << 20, SIZE, 100);
        let line = b"0123456789 abcdefghijklmnopqrstuvwxyz\r\n".repeat(1000);
        for _ in 0..200 {
            let end = r.append(&line);
            assert!(
                end - r.modelled() <= MAX_MODEL_LAG,
                "{end} {}",
                r.modelled()
            );
        }
        assert!(
            r.modelled() > 0,
            "the pump helped: nobody else fed the model"
        );
    }
}
