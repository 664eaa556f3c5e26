//! `cargo bench --bench attention_scan`: what looking for bells and
//! notifications costs on the output path. The daemon scans every byte a
//! program writes (`Attention::output`, under the session's attention lock)
//! before appending it to the log; this prints the scan rate over typical
//! terminal output (coloured lines, cursor moves, titles) in 64 KiB reads,
//! the size the pump reads.

use std::time::{Duration, Instant};

use abide::proto::attention::Attention;

fn main() {
    let mut text = Vec::new();
    let mut i = 0u64;
    while text.len() < 64 << 20 {
        text.extend_from_slice(
            format!(
                "\x1b[3{}mline {i} of some compiler output: warning: unused variable `x`\x1b[0m\r\n",
                i % 8
            )
            .as_bytes(),
        );
        if i % 1000 == 0 {
            text.extend_from_slice(b"\x1b]0;building\x07\x1b[1;1H\x1b[2K");
        }
        i += 1;
    }
    let runs = 5;
    let mut rates = Vec::new();
    for _ in 0..runs {
        let mut a = Attention::new(Some(Duration::from_secs(30)));
        let start = Instant::now();
        let now = Instant::now();
        let mut events = 0;
        for chunk in text.chunks(64 * 1024) {
            events += a.output(chunk, false, now, 0).len();
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(events, 0);
        rates.push(text.len() as f64 / secs / 1e6);
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "attention scan: {} MB of terminal output in 64 KiB reads: median {:.0} MB/s (min {:.0}, max {:.0}, {runs} runs)",
        text.len() >> 20,
        rates[runs / 2],
        rates[0],
        rates[runs - 1]
    );
}
