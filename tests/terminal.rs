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

fn last_line(screen: &str) -> &str {
    screen.trim_end().lines().last().unwrap_or("")
}

/// An "ssh" that runs the remote command right here and points the client's
/// UDP at `port` (the fault proxy) instead of the daemon's own port.
fn fake_ssh(rt: &Rt, port: u16) -> String {
    let path = rt.scratch().join("fake-ssh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nfor last; do :; done\nsh -c \"$last\" | sed 's/^\\(ABIDE-CONNECT [0-9]*\\) [0-9]* /\\1 {port} /'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// The daemon's QUIC port (starting its endpoint with a session of its own).
fn quic_port(rt: &Rt) -> u16 {
    let out = rt.ok(&[
        "server", "--bootstrap", "--udp-ports", "0", "--session", "warmup", "--", "sleep", "600",
    ]);
    abide::server::bootstrap::ConnectLine::find(&out)
        .expect("connect line")
        .expect("parse")
        .port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_below_earlier_output_overwrites_nothing() {
    need!("tmux");
    let rt = Rt::new();
    let server = format!("127.0.0.1:{}", quic_port(&rt)).parse().unwrap();
    let proxy = abide::faultproxy::FaultProxy::start(server).await.unwrap();
    let ssh = fake_ssh(&rt, proxy.addr().port());
    let t = Tmux::start(&rt, 80, 24);
    t.run("for i in $(seq 1 12); do echo previous-output-$i; done");
    t.wait_for("the shell", |s| last_line(s) == "$");
    t.run(&format!(
        "{BIN} --ssh {ssh} --server {BIN} --transport udp 127.0.0.1 -- env 'PS1=R> ' bash --norc --noprofile"
    ));
    t.wait_for("the remote prompt", |s| s.lines().any(|l| l == "R>"));
    t.run("echo hello-remote");
    t.wait_for("the remote echo", |s| s.lines().any(|l| l == "hello-remote"));
    t.wait_for("the next prompt", |s| last_line(s) == "R>");
    let before = t.rows();
    let cursor = t.cursor();

    proxy.blackhole(true);
    t.wait_for("the banner", |s| s.contains("no contact"));
    let during = t.rows();
    assert!(during[23].starts_with("abide: no contact"), "{during:#?}");
    assert_eq!(during[..23], before[..23], "the banner covered a row it should not");
    assert_eq!(t.cursor(), cursor, "the banner moved the cursor");
    t.run("echo typed-during-outage");
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.blackhole(false);
    let screen = t.wait_for("the typed line's output, banner gone", |s| {
        s.lines().any(|l| l == "typed-during-outage") && !s.contains("no contact")
    });
    let after = t.rows();
    let prompt_row = cursor.0 as usize;
    assert_eq!(after[..prompt_row], before[..prompt_row], "rows above were overwritten:\n{screen}");
    assert_eq!(after[prompt_row], "R> echo typed-during-outage", "{screen}");
    assert_eq!(after[prompt_row + 1], "typed-during-outage", "{screen}");
    assert_eq!(after[prompt_row + 2], "R>", "{screen}");
    assert_eq!(t.cursor(), (cursor.0 + 2, 3), "{screen}");
    for i in 1..=12 {
        assert!(
            screen.lines().any(|l| l == format!("previous-output-{i}")),
            "previous-output-{i} was overwritten:\n{screen}"
        );
    }
    t.keys(&["C-^", "d"]);
    let screen = t.wait_prompt_after("[detached");
    assert!(
        screen.contains("reattach: abide attach 127.0.0.1:"),
        "{screen}"
    );
    assert_left_as_found(&t, 24);
}
