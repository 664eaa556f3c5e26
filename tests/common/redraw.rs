//! A full-screen program for the typing tests, and the typing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Redraws all 24x80 cells 20 times a second inside synchronized output
/// (`CSI ? 2026 h/l`), a truecolor run every 3 cells (~13 KB a frame,
/// 260 KB/s: more than 2 Mbit/s carries), and shows what was typed on its
/// last row at once and in every frame, until Ctrl-C.
pub const REDRAW: &str = r#"
import os, select, sys, time, tty
tty.setraw(0)
out = sys.stdout.buffer
typed = b""
def status():
    return b"\x1b[24;1H\x1b[0mkeys:" + typed + b"\x1b[K"
n = 0
next_frame = time.monotonic()
while True:
    wait = max(0.0, next_frame - time.monotonic())
    if select.select([0], [], [], wait)[0]:
        k = os.read(0, 64)
        if b"\x03" in k:
            break
        typed += k
        out.write(b"\x1b[?2026h" + status() + b"\x1b[?2026l")
        out.flush()
        continue
    n += 1
    rows = []
    for r in range(23):
        cells = []
        for c in range(0, 80, 3):
            v = (n * 7 + r * 13 + c * 5) % 256
            cells.append(b"\x1b[38;2;%d;%d;%dm" % (v, 255 - v, (v * 3) % 256))
            cells.append(bytes([65 + (n + r + c) % 26]) * min(3, 80 - c))
        rows.append(b"\x1b[%d;1H" % (r + 1) + b"".join(cells))
    out.write(b"\x1b[?2026h" + b"".join(rows) + status() + b"\x1b[?2026l")
    out.flush()
    next_frame += 0.05
"#;

/// What the typing tests see of a client: the bytes it wrote to its
/// terminal, and where its keys go.
pub struct Typist<'a> {
    pub output: &'a Arc<Mutex<Vec<u8>>>,
    pub input: &'a mpsc::Sender<Vec<u8>>,
}

impl Typist<'_> {
    fn len(&self) -> usize {
        self.output.lock().unwrap().len()
    }

    /// Waits until [`REDRAW`] has drawn, lets it run for `warm_up`, then
    /// types `keys` one by one, 300 ms apart. Returns, for each key, the
    /// time until the program's last row showed it on the client's screen
    /// and the bytes the client received meanwhile.
    pub async fn type_into_redraw(&self, warm_up: Duration, keys: &str) -> Vec<(Duration, usize)> {
        let mut screen = crate::common::screen_of(b"", 24, 80, 0);
        let mut seen = 0;
        let mut last_row = || {
            let out = self.output.lock().unwrap();
            screen.process(&out[seen..]);
            seen = out.len();
            screen.screen().rows(0, 80).nth(23).unwrap_or_default()
        };
        let t = Instant::now();
        while !last_row().starts_with("keys:") {
            assert!(t.elapsed() < Duration::from_secs(20), "the program draws");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(warm_up).await;
        let mut typed = String::from("keys:");
        let mut took = Vec::new();
        for k in keys.chars() {
            typed.push(k);
            let sent = Instant::now();
            let before = self.len();
            self.input.send(k.to_string().into_bytes()).await.unwrap();
            while !last_row().starts_with(&typed) {
                assert!(
                    sent.elapsed() < Duration::from_secs(20),
                    "{k:?} never showed: {:?}",
                    last_row()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            took.push((sent.elapsed(), self.len() - before));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        took
    }
}
