//! tmux as the user's terminal: a private server (its own socket, no config)
//! per test, one pane running a plain shell, keys sent with `send-keys`, the
//! screen read with `capture-pane` and the terminal's state with format
//! variables (`#{alternate_on}`, `#{cursor_y}`, ...). The server is killed
//! on drop, also when the test fails.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{Rt, T};

pub struct Tmux {
    socket: String,
}

/// Whether tmux is installed (tests that need it skip with a message if not).
pub fn available(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl Tmux {
    /// A `cols`×`rows` terminal running `bash` with the prompt `$ ` and the
    /// runtime's environment.
    pub fn start(rt: &Rt, cols: u16, rows: u16) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let socket = format!(
            "abide-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let t = Tmux { socket };
        let mut args: Vec<String> = vec![
            "new-session".into(),
            "-d".into(),
            "-x".into(),
            cols.to_string(),
            "-y".into(),
            rows.to_string(),
        ];
        let path = std::env::var("PATH").unwrap_or_default();
        let env = rt
            .env()
            .iter()
            .cloned()
            .chain([("PS1".to_string(), "$ ".to_string()), ("PATH".into(), path)]);
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(["bash".into(), "--norc".into(), "--noprofile".into()]);
        let out = t.tmux(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "tmux new-session: {out:?}");
        // A big history, so that nothing the test checks scrolls out of reach.
        t.tmux(&["set", "-g", "history-limit", "5000"]);
        t.wait_for("the shell's prompt", |s| {
            s.lines().any(|l| l.starts_with('$'))
        });
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        assert!(self.tmux(&["send-keys", "-l", text]).status.success());
    }

    /// Presses keys by tmux's names (`Enter`, `C-^`, `q`).
    pub fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys"];
        a.extend(keys);
        assert!(self.tmux(&a).status.success());
    }

    /// Types a command line and presses Enter.
    pub fn run(&self, line: &str) {
        self.type_text(line);
        self.keys(&["Enter"]);
    }

    /// The visible screen, one line per row (trailing spaces trimmed).
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// The screen's rows, all of them (empty rows included).
    pub fn rows(&self) -> Vec<String> {
        let rows: usize = self.var("pane_height").parse().unwrap();
        let mut v: Vec<String> = self.screen().lines().map(str::to_string).collect();
        v.resize(rows, String::new());
        v
    }

    /// The pane's history and screen.
    pub fn history(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-S", "-"]).stdout).into_owned()
    }

    /// A format variable of the pane: `alternate_on`, `cursor_y`, ...
    pub fn var(&self, name: &str) -> String {
        let f = format!("#{{{name}}}");
        let out = self.tmux(&["display-message", "-p", &f]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn cursor(&self) -> (u16, u16) {
        (
            self.var("cursor_y").parse().unwrap(),
            self.var("cursor_x").parse().unwrap(),
        )
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let out = self.tmux(&[
            "resize-window",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
        assert!(out.status.success(), "resize: {out:?}");
    }

    /// Waits (bounded) until the screen satisfies `pred`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_within(what, T, pred)
    }

    pub fn wait_for_within(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let end = Instant::now() + limit;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > end {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the shell is at a prompt again (abide has exited).
    pub fn wait_prompt_after(&self, marker: &str) -> String {
        self.wait_for(&format!("a prompt after {marker:?}"), |s| {
            s.rsplit_once(marker)
                .is_some_and(|(_, after)| after.lines().any(|l| l.starts_with('$')))
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
