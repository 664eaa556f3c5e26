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
        assert_eq!(
            t.var(var),
            want,
            "#{{{var}}} after leaving; screen:\n{}",
            t.screen()
        );
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
    detach_from(
        "vim -u NONE -N -c 'set mouse=a' /etc/hostname",
        "/etc/hostname",
        true,
    );
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

/// An "ssh" that runs the remote command right here and, with `port`, points
/// the client's UDP at it (the fault proxy) instead of the daemon's own port.
fn fake_ssh(rt: &Rt, port: Option<u16>) -> String {
    let path = rt.scratch().join(format!("fake-ssh-{}", port.unwrap_or(0)));
    let run = match port {
        Some(port) => {
            format!("sh -c \"$last\" | sed 's/^\\(ABIDE-CONNECT [0-9]*\\) [0-9]* /\\1 {port} /'")
        }
        None => "exec sh -c \"$last\"".to_string(),
    };
    std::fs::write(&path, format!("#!/bin/sh\nfor last; do :; done\n{run}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// The daemon's QUIC port (starting its endpoint with a session of its own).
fn quic_port(rt: &Rt) -> u16 {
    let out = rt.ok(&[
        "server",
        "--bootstrap",
        "--udp-ports",
        "0",
        "--session",
        "warmup",
        "--",
        "sleep",
        "600",
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
    let ssh = fake_ssh(&rt, Some(proxy.addr().port()));
    let t = Tmux::start(&rt, 80, 24);
    t.run("for i in $(seq 1 12); do echo previous-output-$i; done");
    t.wait_for("the shell", |s| last_line(s) == "$");
    t.run(&format!(
        "{BIN} --ssh {ssh} --server {BIN} --transport udp 127.0.0.1 -- env 'PS1=R> ' bash --norc --noprofile"
    ));
    t.wait_for("the remote prompt", |s| s.lines().any(|l| l == "R>"));
    t.run("echo hello-remote");
    t.wait_for("the remote echo", |s| {
        s.lines().any(|l| l == "hello-remote")
    });
    t.wait_for("the next prompt", |s| last_line(s) == "R>");
    let before = t.rows();
    let cursor = t.cursor();

    proxy.blackhole(true);
    t.wait_for("the banner", |s| s.contains("no contact"));
    let during = t.rows();
    assert!(during[23].starts_with("abide: no contact"), "{during:#?}");
    assert_eq!(
        during[..23],
        before[..23],
        "the banner covered a row it should not"
    );
    assert_eq!(t.cursor(), cursor, "the banner moved the cursor");
    t.run("echo typed-during-outage");
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.blackhole(false);
    let screen = t.wait_for("the typed line's output, banner gone", |s| {
        s.lines().any(|l| l == "typed-during-outage") && !s.contains("no contact")
    });
    let after = t.rows();
    let prompt_row = cursor.0 as usize;
    assert_eq!(
        after[..prompt_row],
        before[..prompt_row],
        "rows above were overwritten:\n{screen}"
    );
    assert_eq!(after[prompt_row], "R> echo typed-during-outage", "{screen}");
    assert_eq!(after[prompt_row + 1], "typed-during-outage", "{screen}");
    assert_eq!(after[prompt_row + 2], "R>", "{screen}");
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while t.cursor() != (cursor.0 + 2, 3) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(t.cursor(), (cursor.0 + 2, 3), "{}", t.screen());
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

/// An "ssh" that prints its arguments to `log` and answers `ls --json` with `[]`.
fn recording_ssh(rt: &Rt) -> (String, std::path::PathBuf) {
    let path = rt.scratch().join("recording-ssh");
    let log = rt.scratch().join("ssh-args");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {}\necho '[]'\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path.display().to_string(), log)
}

#[test]
fn remote_options_work_before_the_subcommand_and_are_refused_where_meaningless() {
    let rt = Rt::new();
    let (ssh, log) = recording_ssh(&rt);
    for args in [
        vec!["--ssh", ssh.as_str(), "ls", "box"],
        vec!["ls", "--ssh", ssh.as_str(), "box"],
    ] {
        let out = rt.run(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no sessions");
    }
    let args = std::fs::read_to_string(&log).unwrap();
    assert_eq!(args.matches("box").count(), 2, "{args}");
    for args in [
        vec!["new", "-d", "--ssh", "x", "true"],
        vec!["--ssh", "x", "new", "-d", "true"],
        vec!["--transport", "udp", "explain", "Broken pipe"],
    ] {
        let out = rt.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} accepted: {err}");
        assert!(
            err.contains("--ssh") || err.contains("--transport"),
            "{err}"
        );
    }
    assert!(rt.session_names().is_empty());
}

/// Every ssh abide starts gets a ConnectTimeout, unless the user gave one.
#[test]
fn every_ssh_gets_a_connect_timeout_unless_the_user_set_one() {
    let rt = Rt::new();
    let (ssh, log) = recording_ssh(&rt);
    rt.run(&["ls", "--ssh", &ssh, "box"]);
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.contains("ConnectTimeout=10"), "{args}");
    std::fs::remove_file(&log).unwrap();
    let mine = format!("{ssh} -o ConnectTimeout=3");
    rt.run(&["ls", "--ssh", &mine, "box"]);
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.contains("ConnectTimeout=3"), "{args}");
    assert!(!args.contains("ConnectTimeout=10"), "{args}");
}

#[test]
fn new_detached_takes_the_command_without_double_dash() {
    let rt = Rt::new();
    let out = rt.run(&["new", "-d", "-s", "nap", "sleep", "100"]);
    assert!(out.status.success(), "{out:?}");
    let ls = rt.ls_json();
    assert_eq!(ls[0]["command"], serde_json::json!(["sleep", "100"]));
    let out = rt.run(&["new", "-d", "-s", "mk", "sh", "-c", "sleep 100"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_program_that_cannot_start_or_exits_at_once_is_reported() {
    let rt = Rt::new();
    let out = rt.run(&["new", "-d", "--", "nosuchprogram"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot start 'nosuchprogram': no such program"),
        "{err}"
    );
    assert_eq!(
        err.matches("No such file").count() + err.matches("no such program").count(),
        1,
        "{err}"
    );

    let out = rt.run(&["new", "-d", "--", "sh", "-c", "echo cannot-work; exit 3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("exited with status 3 at once"), "{err}");
    assert!(err.contains("cannot-work"), "{err}");
}

#[test]
fn a_session_killed_by_a_signal_says_so() {
    need!("tmux");
    let rt = Rt::new();
    let t = Tmux::start(&rt, 80, 24);
    t.run(&format!(
        "{BIN} new -s sig -- sh -c 'sleep 0.5; kill -HUP $$'"
    ));
    let screen = t.wait_prompt_after("[session 'sig'");
    assert!(
        screen.contains("[session 'sig' killed by SIGHUP]"),
        "{screen}"
    );
    t.run("echo status=$?");
    t.wait_for("the status", |s| s.contains("status=129"));
    assert_left_as_found(&t, 24);
}

/// A host that never answers: abide says it is connecting, and Ctrl-^ . gives up.
#[test]
fn connecting_is_said_and_ctrl_caret_dot_gives_up() {
    need!("tmux");
    let rt = Rt::new();
    let path = rt.scratch().join("hanging-ssh");
    let pid = rt.scratch().join("hanging-ssh.pid");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho $$ > {}\nexec sleep 600\n", pid.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = Tmux::start(&rt, 80, 24);
    t.run(&format!("{BIN} --ssh {} far.example", path.display()));
    t.wait_for("the connecting line", |s| {
        s.contains("abide: connecting to far.example\u{2026}")
    });
    let ssh_pid: i32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    t.keys(&["C-^"]);
    t.keys(&["."]);
    let screen = t.wait_prompt_after("gave up connecting to far.example");
    assert_eq!(
        last_line(&screen),
        "$",
        "the '.' reached the shell:\n{screen}"
    );
    let end = std::time::Instant::now() + common::T;
    while common::alive(ssh_pid) {
        assert!(std::time::Instant::now() < end, "the ssh still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The terminal's quit character is Ctrl-\ again.
    t.run("stty -a | tr ';' '\\n' | grep -w quit");
    t.wait_for("stty", |s| s.contains("quit = ^\\"));
}

/// `abide HOST` comes back to the login shell it started, not to the session
/// that ran last; bare `abide attach` says which session it took.
#[test]
fn abide_host_resumes_its_login_session() {
    need!("tmux");
    let rt = Rt::new();
    let ssh = fake_ssh(&rt, None);
    let t = Tmux::start(&rt, 80, 24);
    let open = format!("{BIN} --ssh {ssh} --server {BIN} --transport ssh 127.0.0.1");
    t.run(&open);
    t.wait_for("the login shell", |s| {
        let l = last_line(s);
        !l.ends_with("127.0.0.1") && (l.ends_with('#') || l.ends_with('$'))
    });
    t.run("echo in-session-$ABIDE_SESSION");
    t.wait_for("the session's name", |s| s.contains("in-session-login"));
    t.keys(&["C-^", "d"]);
    t.wait_prompt_after("[detached");
    // A newer session, used more recently.
    assert!(rt
        .run(&["new", "-d", "-s", "newer", "sleep", "600"])
        .status
        .success());
    t.run("clear");
    t.run(&open);
    t.wait_for("the login shell again", |s| s.contains("in-session-login"));
    t.run("echo again-$ABIDE_SESSION");
    t.wait_for("the session's name", |s| s.contains("again-login"));
    t.keys(&["C-^", "d"]);
    t.wait_prompt_after("[detached from session 'login'");
    t.run("clear");
    t.run(&format!("{BIN} attach"));
    let screen = t.wait_for("the pick", |s| s.contains("abide: attaching to session '"));
    assert!(
        screen.contains("attaching to session 'newer'")
            || screen.contains("attaching to session 'login'"),
        "{screen}"
    );
    t.keys(&["C-^", "d"]);
    t.wait_prompt_after("[detached");
}

/// A session shown at one size and reattached from a larger, then a smaller
/// terminal: the program's screen fits each, and nothing of the old size
/// (scroll region, rows) is left behind.
#[test]
fn reattach_at_a_larger_and_a_smaller_size() {
    need!("tmux", "top");
    let rt = Rt::new();
    let t = Tmux::start(&rt, 80, 24);
    t.run(&format!("{BIN} new -s sized -- top -d 0.5"));
    t.wait_for("top", |s| s.starts_with("top - "));
    t.keys(&["C-^", "d"]);
    t.wait_prompt_after("[detached");
    for (cols, rows) in [(100u16, 40u16), (60, 15)] {
        t.resize(cols, rows);
        t.run("clear");
        t.run(&format!("{BIN} attach sized"));
        let screen = t.wait_for(&format!("top at {cols}x{rows}"), |s| {
            let rows_shown: Vec<&str> = s.lines().collect();
            rows_shown.first().is_some_and(|l| l.starts_with("top - "))
                && rows_shown.len() == rows as usize
                && !rows_shown[rows as usize - 1].trim().is_empty()
        });
        assert_eq!(
            t.var("scroll_region_lower"),
            (rows - 1).to_string(),
            "{screen}"
        );
        // The header stays (a stale region would scroll it away).
        std::thread::sleep(Duration::from_millis(1200));
        let screen = t.screen();
        assert!(
            screen.starts_with("top - "),
            "top's header is gone at {cols}x{rows}:\n{screen}"
        );
        t.keys(&["C-^", "d"]);
        t.wait_prompt_after("[detached");
        assert_left_as_found(&t, rows);
        t.run("seq 1 100");
        let screen = t.wait_for("the shell's output", |s| s.contains("100\n$"));
        // The user's shell has every row again: output ends on the last row.
        assert_eq!(
            t.cursor().0,
            rows - 1,
            "the shell is confined to part of the screen:\n{screen}"
        );
    }
}

/// The README's first command, after cargo's own lines: the demo writes below
/// them, never over them, and its narration stays after it ends.
#[test]
fn the_demo_leaves_the_lines_above_it_intact() {
    need!("tmux");
    let rt = Rt::new();
    let t = Tmux::start(&rt, 100, 30);
    t.run("for i in 1 2 3 4 5; do echo cargo-line-$i; done");
    t.wait_for("the shell", |s| last_line(s) == "$");
    t.run(&format!("{BIN} demo --blackhole-s 2 --loss-s 1"));
    t.wait_for("the demo's first line", |s| s.contains("demo line 1 "));
    let screen = t.screen();
    for i in 1..=5 {
        assert!(
            screen.lines().any(|l| l == format!("cargo-line-{i}")),
            "cargo-line-{i} overwritten at the start:\n{screen}"
        );
    }
    t.wait_for_within("the demo's end", Duration::from_secs(90), |s| {
        s.contains("abide demo summary:") && last_line(s) == "$"
    });
    let all = t.history();
    for i in 1..=5 {
        assert_eq!(
            all.lines()
                .filter(|l| *l == format!("cargo-line-{i}"))
                .count(),
            1,
            "cargo-line-{i}:\n{all}"
        );
    }
    assert!(all.contains("cutting the link for 2 s"), "{all}");
    assert!(all.contains("(0 missing, 0 duplicated)"), "{all}");
    // The program's lines come after cargo's, in order.
    let pos = |needle: &str| {
        all.find(needle)
            .unwrap_or_else(|| panic!("{needle}:\n{all}"))
    };
    assert!(pos("cargo-line-5") < pos("demo line 1 "));
    assert_left_as_found(&t, 30);
}

/// A snapshot in the middle of an attach (the output outran the log while the
/// link was down): the terminal drops what the program had set up before,
/// here the alternate screen and a scroll region, and shows the new screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_after_an_outage_lands_on_a_clean_terminal() {
    need!("tmux");
    let rt = Rt::with_env(&[("ABIDE_RING_BYTES", "4096")]);
    let server = format!("127.0.0.1:{}", quic_port(&rt)).parse().unwrap();
    let proxy = abide::faultproxy::FaultProxy::start(server).await.unwrap();
    let ssh = fake_ssh(&rt, Some(proxy.addr().port()));
    let t = Tmux::start(&rt, 80, 24);
    t.run(&format!(
        "{BIN} --ssh {ssh} --server {BIN} --transport udp 127.0.0.1 -- env 'PS1=R> ' bash --norc --noprofile"
    ));
    t.wait_for("the remote prompt", |s| s.lines().any(|l| l == "R>"));
    t.run(r"printf '\033[?1049h\033[2;6rIN-ALT\n'; sleep 3; printf '\033[r\033[?1049l'; seq 1 3000; echo fini''shed");
    wait_var(&t, "alternate_on", "1");
    assert_eq!(t.var("scroll_region_lower"), "5");
    proxy.blackhole(true);
    t.wait_for("the banner", |s| s.contains("no contact"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.blackhole(false);
    let screen = t.wait_for("the end of the output", |s| {
        s.lines().any(|l| l == "finished") && !s.contains("no contact")
    });
    assert_eq!(t.var("alternate_on"), "0", "{screen}");
    assert_eq!(t.var("scroll_region_upper"), "0", "{screen}");
    assert_eq!(t.var("scroll_region_lower"), "23", "{screen}");
    let rows = t.rows();
    let at = rows.iter().position(|l| l == "finished").unwrap();
    assert_eq!(rows[at - 1], "3000", "{screen}");
    assert_eq!(rows[at - 2], "2999", "{screen}");
    t.keys(&["C-^", "d"]);
    t.wait_prompt_after("[detached");
    assert_left_as_found(&t, 24);
}
