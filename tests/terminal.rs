//! The user's terminal around a session, with tmux as that terminal: what the
//! attach leaves behind on every way out, the banner below earlier output,
//! reattach at other sizes, the demo, and the first minute (docs/terminal.md).

mod common;

use std::time::Duration;

use common::tmux::{available, Tmux};
use common::{Rt, BIN};

macro_rules! need {
    ($($p:expr),+) => {
        $(if !available($p) {
            eprintln!("skipped: {} is not installed (.ci/run installs it)", $p);
            return;
        })+
    };
}

/// Every flag the attach contract promises, as tmux sees its pane.
fn assert_left_as_found(t: &Tmux, rows: u16) {
    let flags = [
        ("alternate_on", "0".to_string()),
        ("scroll_region_upper", "0".to_string()),
        ("scroll_region_lower", (rows - 1).to_string()),
        ("cursor_flag", "1".to_string()),
        ("mouse_any_flag", "0".to_string()),
        ("keypad_cursor_flag", "0".to_string()),
        ("keypad_flag", "0".to_string()),
        ("origin_flag", "0".to_string()),
        ("wrap_flag", "1".to_string()),
    ];
    for (var, want) in flags {
        assert_eq!(t.var(var), want, "#{{{var}}} after leaving; screen:\n{}", t.screen());
    }
}

/// The message is on a line of its own and names the command to reattach.
fn assert_detach_message(screen: &str, name: &str) {
    let want = format!("[detached from session '{name}' \u{2014} reattach: abide attach {name}]");
    assert!(
        screen.lines().any(|l| l == want),
        "no line {want:?} on its own; screen:\n{screen}"
    );
}

fn wait_var(t: &Tmux, var: &str, want: &str) {
    let end = std::time::Instant::now() + common::T;
    while t.var(var) != want {
        assert!(
            std::time::Instant::now() < end,
            "#{{{var}}} never became {want}; screen:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn detach_from(program: &str, ready: &str, alternate_screen: bool) {
    let rt = Rt::new();
    let t = Tmux::start(&rt, 80, 24);
    t.run("for i in 1 2 3; do echo before-$i; done");
    t.run(&format!("{BIN} new -s full -- {program}"));
    if alternate_screen {
        wait_var(&t, "alternate_on", "1");
    }
    t.wait_for(ready, |s| s.contains(ready));
    t.keys(&["C-^", "d"]);
    let screen = t.wait_prompt_after("[detached");
    assert_detach_message(&screen, "full");
    assert_left_as_found(&t, 24);
    for i in 1..=3 {
        assert!(t.history().contains(&format!("before-{i}")), "{screen}");
    }
    // The session still runs, and a reattach shows it again.
    assert!(rt.session_names().contains(&"full".to_string()));
}

#[test]
fn detach_from_vim_leaves_the_terminal_as_found() {
    need!("tmux", "vim");
    detach_from("vim -u NONE -N -c 'set mouse=a' /etc/hostname", "/etc/hostname", true);
}

#[test]
fn detach_from_less_leaves_the_terminal_as_found() {
    need!("tmux", "less");
    detach_from("less /etc/passwd", "root", true);
}

#[test]
fn detach_from_top_leaves_the_terminal_as_found() {
    need!("tmux", "top");
    // top hides the cursor and leaves it hidden for whoever comes next.
    detach_from("top", "PID", false);
}
