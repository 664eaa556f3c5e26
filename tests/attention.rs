//! Sessions that need their user: bells and desktop notifications of
//! detached programs show in `abide ls`, an attach announces and clears them,
//! `abide watch` reports them as they happen (locally, and over QUIC through
//! the fault proxy across a blackhole, exactly once), quiet sessions are
//! noticed, and detached sessions expire.
//!
//! Programs wait on a FIFO for the test to say "now", so that an event's
//! moment is the test's to choose.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use abide::client::remote::QuicConnector;
use abide::client::watch::{follow, Report};
use abide::faultproxy::FaultProxy;
use abide::proto::attention::EventKind;
use common::{alive, eventually, Rt, T};

fn fifo(rt: &Rt, name: &str) -> PathBuf {
    let p = rt.scratch().join(name);
    let st = std::process::Command::new("mkfifo")
        .arg(&p)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    p
}

/// Lets a program blocked in `read < fifo` go on.
fn release(fifo: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .expect("open fifo");
    writeln!(f, "go").unwrap();
}

/// A program that prints, waits for the FIFO before each of `steps` (printf
/// formats), then sleeps. A `read` that reopens the FIFO while the last
/// writer still holds it sees only that writer's end-of-file: it waits again
/// (`until`), so each `release` lets exactly one step through.
fn waiting_program(fifo: &Path, steps: &[&str]) -> String {
    let mut s = String::from("echo working;");
    for step in steps {
        s.push_str(&format!(
            " until read x < '{}'; do :; done; printf '{step}';",
            fifo.display()
        ));
    }
    s.push_str(" sleep 600");
    s
}

fn entry(rt: &Rt, name: &str) -> serde_json::Value {
    rt.ls_json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no session {name} in ls"))
}

fn wait_state(rt: &Rt, name: &str, state: &str) -> serde_json::Value {
    let deadline = Instant::now() + T;
    loop {
        let e = entry(rt, name);
        if e["state"] == state {
            return e;
        }
        if Instant::now() > deadline {
            panic!(
                "{name} is not {state} after {T:?}: {e}\nits processes:\n{}",
                processes_of(e["pid"].as_u64().unwrap_or(0))
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ps` of a program and its children (what they wait in), for a failure message.
fn processes_of(pid: u64) -> String {
    let out = std::process::Command::new("ps")
        .args([
            "-o",
            "pid,ppid,stat,wchan:20,args",
            "--pid",
            &pid.to_string(),
        ])
        .args(["--ppid", &pid.to_string()])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn detached_bell_and_notifications_show_in_ls() {
    let rt = Rt::new();
    let cases = [
        ("bell", r"\007"),
        (
            "osc9",
            r"\033]9;Claude needs your permission to use Bash\007",
        ),
        (
            "osc777",
            r"\033]777;notify;Build;finished, 2 warnings\033\\",
        ),
        (
            "kitty",
            r"\033]99;i=1:d=0;Tests\033\\\033]99;i=1:p=body;all passed\033\\",
        ),
        ("title", r"\033]2;my agent\007"),
    ];
    let mut fifos = Vec::new();
    for (name, step) in cases {
        let f = fifo(&rt, name);
        rt.ok(&[
            "new",
            "-d",
            "-s",
            name,
            "--",
            "sh",
            "-c",
            &waiting_program(&f, &[step]),
        ]);
        fifos.push(f);
    }
    for (name, _) in cases {
        assert_eq!(entry(&rt, name)["state"], "running", "{name} before");
    }
    for f in &fifos {
        release(f);
    }
    let bell = wait_state(&rt, "bell", "bell");
    assert_eq!(bell["status"], "bell");
    assert_eq!(bell["bells"], 1);
    let osc9 = wait_state(&rt, "osc9", "asks");
    assert_eq!(osc9["asks"], "Claude needs your permission to use Bash");
    assert_eq!(
        osc9["status"],
        "asks \"Claude needs your permission to use Bash\""
    );
    let osc777 = wait_state(&rt, "osc777", "asks");
    assert_eq!(osc777["asks"], "Build: finished, 2 warnings");
    assert_eq!(osc777["notifications"], 1);
    assert!(osc777["last_notification"]["at"].as_u64().unwrap() > 0);
    let kitty = wait_state(&rt, "kitty", "asks");
    assert_eq!(kitty["asks"], "Tests: all passed");
    // A title is kept, but it is not a call for attention.
    let title = eventually("title recorded", T, || {
        let e = entry(&rt, "title");
        (e["title"] == "my agent").then_some(e)
    });
    assert_eq!(title["state"], "running");
    assert!(title["detached_since"].as_u64().is_some());
    // The table has the same column.
    let table = rt.ok(&["ls"]);
    assert!(table.contains("STATE"), "{table}");
    assert!(
        table.contains("asks \"Build: finished, 2 warnings\""),
        "{table}"
    );
}

#[test]
fn attach_announces_what_happened_and_clears_it() {
    let rt = Rt::new();
    let f = fifo(&rt, "ask");
    let prog = waiting_program(
        &f,
        &[
            r"\033]9;first question\007",
            r"\033]9;Claude needs your permission\007\007",
            r"\033]9;while attached\007",
        ],
    );
    rt.ok(&["new", "-d", "-s", "ask", "--", "sh", "-c", &prog]);
    release(&f);
    eventually("first notification", T, || {
        (entry(&rt, "ask")["notifications"] == 1).then_some(())
    });
    release(&f);
    let e = eventually("second notification", T, || {
        let e = entry(&rt, "ask");
        (e["notifications"] == 2).then_some(e)
    });
    assert_eq!(e["asks"], "Claude needs your permission");
    assert_eq!(e["bells"], 1);

    // The announcement as the user's terminal (tmux) shows it: the bottom
    // row, still there once the replayed output is on the screen.
    let t = common::tmux::Tmux::start(&rt, 100, 24);
    t.run(&format!("{} attach ask", common::BIN));
    let screen = t.wait_for("the announcement over the replayed output", |s| {
        s.contains("working") && s.contains("while you were away")
    });
    let rows = t.rows();
    let banner = rows.last().unwrap();
    let want = regex::Regex::new(
        "^abide: while you were away: 2 notifications, last: 'Claude needs your permission' at [0-9]{2}:[0-9]{2}; 1 bell",
    )
    .unwrap();
    assert!(want.is_match(banner), "bottom row {banner:?} of\n{screen}");
    t.keys(&["C-^", "d"]);
    t.wait_for("the detach", |s| s.contains("[detached from session 'ask'"));
    let e = wait_state(&rt, "ask", "running");
    assert_eq!(e["notifications"], 0);
    assert_eq!(e["bells"], 0);
    assert_eq!(e["asks"], serde_json::Value::Null);

    // Attached, a notification reaches the user's terminal untouched and
    // marks nothing.
    let mut c = rt.pty(&["attach", "ask"], 24, 100);
    c.expect_str("working");
    release(&f);
    c.expect_str("\x1b]9;while attached\x07");
    std::thread::sleep(Duration::from_millis(300));
    let e = entry(&rt, "ask");
    assert_eq!(
        (e["state"].as_str(), e["notifications"].as_u64()),
        (Some("running"), Some(0))
    );
    c.detach_keys();
    c.expect_str("[detached from session 'ask'");

    // Nothing happened since: the next attach announces nothing.
    let mut d = rt.pty(&["attach", "ask"], 24, 100);
    d.expect_str("working");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !d.output_string().contains("while you were away"),
        "{}",
        d.output_string()
    );
    d.detach_keys();
    d.expect_str("[detached from session 'ask'");
}

#[test]
fn watch_reports_events_locally_and_runs_the_command() {
    let rt = Rt::with_env(&[("ABIDE_QUIET_AFTER", "700ms")]);
    let f = fifo(&rt, "w");
    let prog = waiting_program(
        &f,
        &[r"\033]777;notify;Agent;May I run the tests?\033\\", r"\007"],
    );
    rt.ok(&["new", "-d", "-s", "agent", "--", "sh", "-c", &prog]);
    let g = fifo(&rt, "idle");
    let idle = waiting_program(&g, &[r"busy\n"]);
    rt.ok(&["new", "-d", "-s", "idle", "--", "sh", "-c", &idle]);
    let log = rt.scratch().join("exec.log");
    let exec = format!(
        "printf '%s|%s|%s|%s\\n' \"$ABIDE_EVENT\" \"$ABIDE_SESSION\" \"$ABIDE_TITLE\" \"$ABIDE_BODY\" >> '{}'",
        log.display()
    );
    let mut w = rt.pty(&["watch", "--exec", &exec], 24, 120);
    w.expect_str("abide: watching this machine");
    // Let the watch channel open before the event (a new watcher hears the future).
    std::thread::sleep(Duration::from_millis(500));

    let t0 = Instant::now();
    release(&f);
    w.expect_within("agent: Agent \u{2014} May I run the tests\\?", T)
        .unwrap();
    let took = t0.elapsed();
    eprintln!("watch (local): event printed {took:?} after the program wrote it");
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // Quiet: a program that goes silent after output, without asking.
    release(&g);
    w.expect_within("idle: quiet \u{2014} no output for", T)
        .unwrap();
    let e = entry(&rt, "idle");
    assert_eq!(e["state"], "quiet");
    assert!(e["status"].as_str().unwrap().starts_with("quiet "), "{e}");
    assert_eq!(
        entry(&rt, "agent")["state"],
        "asks",
        "a question outranks quiet"
    );

    release(&f);
    w.expect_within("agent: bell", T).unwrap();
    let lines = eventually("exec ran twice", T, || {
        let s = std::fs::read_to_string(&log).unwrap_or_default();
        (s.lines().filter(|l| !l.starts_with("quiet")).count() >= 2).then_some(s)
    });
    assert!(
        lines.contains("notify|agent|agent: Agent|May I run the tests?\n"),
        "{lines}"
    );
    assert!(lines.contains("bell|agent|agent: bell|\n"), "{lines}");

    // The program's exit is an event too.
    rt.ok(&["kill", "agent"]);
    w.expect_within("agent: exited", T).unwrap();
    w.kill(nix::sys::signal::Signal::SIGTERM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_watch_over_quic_gets_each_event_once_across_a_blackhole() {
    let rt = Rt::new();
    let f = fifo(&rt, "r");
    let prog = waiting_program(
        &f,
        &[
            r"\033]9;before\007",
            r"\033]9;during the blackhole\007",
            r"\033]9;after\007",
        ],
    );
    rt.ok(&["new", "-d", "-s", "far", "--", "sh", "-c", &prog]);
    let out = rt
        .command(&["server", "--bootstrap", "--watch", "--udp-ports", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = abide::server::bootstrap::ConnectLine::find(&String::from_utf8_lossy(&out.stdout))
        .expect("connect line")
        .expect("parses");
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let proxy = FaultProxy::start(server).await.unwrap();
    let conn = Arc::new(QuicConnector {
        target: common::remote::quic_target(&line, proxy.addr()),
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let task = tokio::spawn(follow(conn, tx));
    let next = async |rx: &mut tokio::sync::mpsc::Receiver<Report>, within: Duration| {
        tokio::time::timeout(within, async {
            loop {
                match rx.recv().await.expect("watcher running") {
                    Report::Event(ev) => return ev,
                    other => eprintln!("watch: {other:?}"),
                }
            }
        })
        .await
    };
    // Connected before the first event.
    loop {
        match tokio::time::timeout(T, rx.recv()).await.expect("connects") {
            Some(Report::Connected) => break,
            other => eprintln!("watch: {other:?}"),
        }
    }
    let f2 = f.clone();
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || release(&f2))
        .await
        .unwrap();
    let ev = next(&mut rx, T).await.expect("first event");
    eprintln!(
        "watch (QUIC): event arrived {:?} after the program wrote it",
        t0.elapsed()
    );
    assert_eq!(
        ev.kind,
        EventKind::Notify {
            title: String::new(),
            body: "before".into()
        }
    );
    assert!(t0.elapsed() < Duration::from_secs(3));

    proxy.blackhole(true);
    let f2 = f.clone();
    tokio::task::spawn_blocking(move || release(&f2))
        .await
        .unwrap();
    let mut seen = serde_json::Value::Null;
    let deadline = Instant::now() + T;
    while seen["asks"] != "during the blackhole" {
        assert!(
            Instant::now() < deadline,
            "the daemon never had it: {seen}\nits processes:\n{}",
            processes_of(seen["pid"].as_u64().unwrap_or(0))
        );
        std::thread::sleep(Duration::from_millis(50));
        seen = entry(&rt, "far");
    }
    assert!(
        next(&mut rx, Duration::from_secs(3)).await.is_err(),
        "nothing gets through a blackhole"
    );
    let back = Instant::now();
    proxy.blackhole(false);
    let ev = next(&mut rx, T).await.expect("event after the blackhole");
    eprintln!(
        "watch (QUIC): the blackholed event arrived {:?} after the path returned",
        back.elapsed()
    );
    assert_eq!(
        ev.kind,
        EventKind::Notify {
            title: String::new(),
            body: "during the blackhole".into()
        }
    );
    let f2 = f.clone();
    tokio::task::spawn_blocking(move || release(&f2))
        .await
        .unwrap();
    let ev3 = next(&mut rx, T).await.expect("third event");
    assert_eq!(
        ev3.kind,
        EventKind::Notify {
            title: String::new(),
            body: "after".into()
        },
        "exactly once: no repeat of the blackholed event"
    );
    assert!(ev3.seq > ev.seq);
    assert!(
        next(&mut rx, Duration::from_millis(800)).await.is_err(),
        "nothing more"
    );
    task.abort();
}

#[test]
fn detached_sessions_expire_and_the_daemon_goes_with_the_last() {
    let rt = Rt::with_env(&[("ABIDE_EXPIRE_DETACHED", "2s")]);
    rt.ok(&[
        "new", "-d", "-s", "keep", "--expire", "1h", "--", "sleep", "600",
    ]);
    rt.ok(&[
        "new", "-d", "-s", "short", "--expire", "1s", "--", "sleep", "600",
    ]);
    rt.ok(&["new", "-d", "-s", "default", "--", "sleep", "600"]);
    assert_eq!(entry(&rt, "short")["expire_after"], 1);
    assert_eq!(entry(&rt, "default")["expire_after"], 2);
    // An attached session does not expire.
    let mut c = rt.pty(&["attach", "default"], 24, 80);
    eventually("short expired", T, || {
        (!rt.session_names().contains(&"short".to_string())).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(rt.session_names().contains(&"default".to_string()));
    c.detach_keys();
    c.expect_str("[detached from session 'default'");
    eventually("default expired once detached", T, || {
        (!rt.session_names().contains(&"default".to_string())).then_some(())
    });
    assert_eq!(rt.session_names(), vec!["keep".to_string()]);
    let pid = rt.daemon_pid().expect("daemon runs");
    rt.ok(&["kill", "keep"]);
    eventually("the daemon exits with its last session", T, || {
        (!alive(pid)).then_some(())
    });
}

/// `ssh [opts] DEST COMMAND` run here: the last argument through `sh -c`.
fn local_ssh(rt: &Rt) -> String {
    let p = rt.scratch().join("here-ssh");
    common::write_executable(
        &p,
        "#!/bin/sh\nfor last; do :; done\nexec sh -c \"$last\"\n",
    );
    p.display().to_string()
}

#[test]
fn ls_and_watch_name_a_host() {
    let rt = Rt::new();
    let ssh = local_ssh(&rt);
    let f = fifo(&rt, "h");
    let prog = waiting_program(&f, &[r"\033]9;first\007", r"\033]9;over QUIC\007"]);
    rt.ok(&["new", "-d", "-s", "far", "--", "sh", "-c", &prog]);
    release(&f);
    wait_state(&rt, "far", "asks");
    let remote = ["--ssh", &ssh, "--server", common::BIN];
    let mut args = vec!["ls", "localhost", "--json"];
    args.extend(remote);
    let v: serde_json::Value = serde_json::from_str(&rt.ok(&args)).unwrap();
    let far = &v.as_array().unwrap()[0];
    assert_eq!(
        (far["state"].as_str(), far["asks"].as_str()),
        (Some("asks"), Some("first"))
    );
    assert!(far["detached_since"].as_u64().is_some());

    let mut args = vec!["watch", "localhost", "--transport", "udp"];
    args.extend(remote);
    let mut w = rt.pty(&args, 24, 120);
    w.expect_str("abide: watching localhost");
    std::thread::sleep(Duration::from_secs(1));
    release(&f);
    w.expect_within("localhost:far asks \u{2014} over QUIC", T)
        .unwrap();
    w.kill(nix::sys::signal::Signal::SIGTERM);
}

/// A grant for one session (what a forced command restricted to a session
/// gives) lets its holder attach there, not read every session's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_grant_cannot_watch() {
    let rt = Rt::new();
    let line = common::remote::bootstrap(&rt, "sleep 60");
    let conn = Arc::new(QuicConnector {
        target: common::remote::quic_target(
            &line,
            format!("127.0.0.1:{}", line.port).parse().unwrap(),
        ),
    });
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let err = tokio::time::timeout(T, follow(conn, tx))
        .await
        .expect("refused, not retried")
        .expect_err("a session grant must not watch");
    assert!(
        err.to_string().contains("only attach is allowed"),
        "{err:#}"
    );
}
