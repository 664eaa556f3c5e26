//! A full-screen program for the typing tests.

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
