//! The corpus: what programs print into a session, as the PTY delivers it
//! (ONLCR applied: lines end in CR LF).

use std::fmt::Write;

/// `seq 1 N` until `bytes`.
pub fn seq(bytes: usize) -> Vec<u8> {
    let mut s = String::with_capacity(bytes + 32);
    let mut i = 1u64;
    while s.len() < bytes {
        let _ = write!(s, "{i}\r\n");
        i += 1;
    }
    s.into_bytes()
}

/// A colored build log and `ls --color` listings: SGR every few words.
pub fn sgr(bytes: usize) -> Vec<u8> {
    let mut s = String::with_capacity(bytes + 256);
    let names = [
        "src",
        "target",
        "Cargo.toml",
        "README.md",
        "build.rs",
        "main.rs",
        "lib.rs",
        "tests",
    ];
    let mut i = 0usize;
    while s.len() < bytes {
        match i % 4 {
            0 => {
                let _ = write!(s, "\x1b[1m\x1b[32m   Compiling\x1b[0m crate-{i} v0.{}.{} (/home/u/src/crate-{i})\r\n", i % 10, i % 7);
            }
            1 => {
                let _ = write!(s, "\x1b[0m\x1b[1m\x1b[33mwarning\x1b[0m\x1b[1m: unused variable: `x{i}`\x1b[0m\r\n   \x1b[0m\x1b[1m\x1b[38;5;12m--> \x1b[0msrc/m{i}.rs:{}:9\r\n", i % 300);
            }
            _ => {
                for k in 0..6 {
                    let n = names[(i + k) % names.len()];
                    let c = [34, 32, 36, 0, 35, 33][(i + k) % 6];
                    let _ = write!(s, "\x1b[01;{c}m{n}\x1b[0m  ");
                }
                s.push_str("\x1b[38;2;200;100;50mrgb\x1b[48;5;236m bg \x1b[0m\r\n");
            }
        }
        i += 1;
    }
    s.into_bytes()
}

/// A full-screen program (vim/top): alternate screen, frames of cursor
/// moves, colours and erases, scroll regions, synchronized output.
pub fn redraw(bytes: usize, rows: u16, cols: u16) -> Vec<u8> {
    let mut s = String::with_capacity(bytes + 4096);
    s.push_str("$ top\r\n\x1b[?1049h\x1b[?1h\x1b=\x1b[?2004h\x1b[?1000h\x1b[?1006h\x1b[?25l");
    let mut frame = 0usize;
    while s.len() < bytes {
        s.push_str("\x1b[?2026h\x1b[H");
        let _ = write!(
            s,
            "\x1b[7mtop - frame {frame:>8}  load average: 0.{:02}\x1b[K\x1b[0m",
            frame % 100
        );
        for r in 2..rows {
            let _ = write!(s, "\x1b[{r};1H");
            let pid = 1000 + (r as usize * 37 + frame) % 9000;
            let cpu = (r as usize * 13 + frame * 7) % 1000;
            let colour = if cpu > 500 { "\x1b[1;31m" } else { "\x1b[0m" };
            let line = format!(
                "{pid:>7} user  20 0 {:>6}M {colour}{:>3}.{}\x1b[0m  cmd-{}",
                (pid * 3) % 99999,
                cpu / 10,
                cpu % 10,
                r
            );
            s.push_str(&line);
            s.push_str("\x1b[K");
        }
        // A scroll region scrolled once, as vim does for Ctrl-E.
        let _ = write!(s, "\x1b[3;{}r\x1b[{};1H\n\x1b[r", rows - 1, rows - 1);
        let _ = write!(s, "\x1b[{rows};1H\x1b[44m-- INSERT -- {frame}\x1b[K\x1b[0m");
        let _ = write!(
            s,
            "\x1b[{};{}H\x1b[?2026l",
            (frame % (rows as usize - 2)) + 2,
            (frame % (cols as usize - 10)) + 1
        );
        frame += 1;
    }
    s.push_str("\x1b[?25h");
    s.into_bytes()
}

/// UTF-8: CJK (wide), emoji, accents, combining marks, box drawing.
pub fn wide(bytes: usize) -> Vec<u8> {
    let words = [
        "日本語のテキスト",
        "中文字符",
        "한국어",
        "café",
        "naïve",
        "e\u{301}té",
        "🙂👍",
        "│─┼─│",
        "Ωμέγα",
        "ascii text",
    ];
    let mut s = String::with_capacity(bytes + 256);
    let mut i = 0usize;
    while s.len() < bytes {
        for k in 0..5 {
            s.push_str(words[(i + k) % words.len()]);
            s.push(' ');
        }
        if i % 3 == 0 {
            s.push_str("\x1b[35m紫色\x1b[0m");
        }
        s.push_str("\r\n");
        i += 1;
    }
    s.into_bytes()
}
