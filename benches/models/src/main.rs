//! Terminal models on abide's own corpus: parse rate with the daemon's
//! capture of scrolled rows, memory for 10 000 lines of history, and
//! re-render fidelity against a reference vt100 (see BENCHMARKS.md).
//! `MB=20 cargo run --release`; `ONLY=vt100cap,plain` picks rows; `WHY=1`
//! prints the first differing cell.

mod corpus;
mod models;
#[path = "../../../src/plain_lines.rs"]
#[allow(dead_code)]
mod plain_lines;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes (memory per 10 000 lines); forwards to the system allocator.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;

use models::Model;

const ROWS: u16 = 24;
const COLS: u16 = 80;

fn rate<M: Model>(data: &[u8], history: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut m = M::new(ROWS, COLS, history);
        let t = Instant::now();
        for c in data.chunks(64 * 1024) {
            m.feed(c);
        }
        std::hint::black_box(&m);
        best = best.min(t.elapsed().as_secs_f64());
    }
    data.len() as f64 / best / 1e6
}

fn memory<M: Model>() -> f64 {
    let data = corpus::sgr(0); // empty
    drop(data);
    let before = LIVE.load(Ordering::Relaxed);
    let mut m = M::new(ROWS, COLS, 10_000);
    let mut line = String::new();
    for i in 0..10_000 + ROWS as usize {
        line.clear();
        use std::fmt::Write;
        let _ = write!(line, "\x1b[32mscrollback line {i:06}\x1b[0m the quick brown fox jumps over the lazy dog 0123456789\r\n");
        m.feed(line.as_bytes());
    }
    let after = LIVE.load(Ordering::Relaxed);
    std::hint::black_box(&m);
    (after - before) as f64 / 1e6
}

fn row<M: Model>(corpora: &[(&str, Vec<u8>)], fid: &[(&str, Vec<u8>)]) {
    let mut cols = Vec::new();
    for (_, data) in corpora {
        cols.push(format!("{:>8.1}", rate::<M>(data, 10_000)));
    }
    let nofid = std::env::var("NOFID").is_ok();
    let mem = if nofid { 0.0 } else { memory::<M>() };
    let mut f = Vec::new();
    for (_, data) in fid.iter().filter(|_| !nofid) {
        f.push(models::fidelity::<M>(data, ROWS, COLS));
    }
    println!(
        "| {:<28} | {} | {:>7.1} MB | {} |",
        M::NAME,
        cols.join(" | "),
        mem,
        f.join(" | ")
    );
}

fn main() {
    let mb: usize = std::env::var("MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let n = mb * 1_000_000;
    let corpora = vec![
        ("seq", corpus::seq(n)),
        ("sgr", corpus::sgr(n)),
        ("redraw", corpus::redraw(n, ROWS, COLS)),
        ("utf8", corpus::wide(n)),
    ];
    let fid = vec![
        ("seq", corpus::seq(300_000)),
        ("sgr", corpus::sgr(300_000)),
        ("redraw", corpus::redraw(300_000, ROWS, COLS)),
        ("utf8", corpus::wide(300_000)),
    ];
    println!("| model | seq MB/s | sgr MB/s | redraw MB/s | utf8 MB/s | 10 000 lines | fidelity seq | sgr | redraw | utf8 |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let which = std::env::var("ONLY").unwrap_or_default();
    let want = |s: &str| which.is_empty() || which.split(',').any(|w| w == s);
    if want("vt100") {
        row::<models::Vt100Plain>(&corpora, &fid);
    }
    if want("vt100cap") {
        row::<models::Vt100Cap>(&corpora, &fid);
    }
    if want("plain") {
        row::<models::Vt100Plain2>(&corpora, &fid);
    }
    if want("avt") {
        row::<models::Avt>(&corpora, &fid);
    }
    if want("alacritty") {
        row::<models::Alacritty>(&corpora, &fid);
    }
    if want("termwiz") {
        row::<models::Termwiz>(&corpora, &fid);
    }
}
