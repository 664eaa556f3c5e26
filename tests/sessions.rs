//! End-to-end tests: the real `abide` binary, clients in real PTYs, a daemon
//! per test in its own runtime directory.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

/// A program that prints `LINE 1` .. `LINE n` (every `pause` seconds), then
/// creates `marker` and waits.
fn counter(n: u32, pause: &str, marker: &std::path::Path) -> String {
    format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"LINE $i\"; {sleep}done; touch '{}'; exec sleep 1000",
        marker.display(),
        sleep = if pause.is_empty() {
            String::new()
        } else {
            format!("sleep {pause}; ")
        }
    )
}

fn wait_for_file(p: &std::path::Path) {
    eventually(&format!("{}", p.display()), T, || p.exists().then_some(()));
}

/// Detach, reattach, SIGKILL the client, attach a fresh one: it gets the whole
/// output replayed from offset 0, every line once, in order.
#[test]
fn replay_after_detach_and_sigkill_has_every_line_once_in_order() {
    let rt = Rt::new();
    let done = rt.scratch().join("done");
    let resume = rt.scratch().join("resume");
    let n = 400;
    // Holds at line 200 until told, so that the client below is killed
    // mid-stream however slow the machine.
    let script = counter(n, "0.01", &done).replacen(
        "echo \"LINE $i\"; ",
        &format!(
            "echo \"LINE $i\"; if [ $i -eq 200 ]; then while [ ! -e '{}' ]; do sleep 0.01; done; fi; ",
            resume.display()
        ),
        1,
    );

    let mut a = rt.pty(&["new", "-s", "count", "--", "sh", "-c", &script], 24, 80);
    a.expect(r"LINE 5\r\n");
    assert!(
        !a.is_cooked(),
        "an attached client puts its terminal in raw mode"
    );
    a.detach_keys();
    if let Err(e) = a.expect_within(
        &regex::escape("[detached from session 'count' \u{2014} reattach: abide attach count]"),
        T,
    ) {
        let log = std::fs::read_to_string(rt.runtime_dir().join("daemon.log")).unwrap_or_default();
        panic!("{e}\ndaemon log:\n{log}");
    }
    assert_eq!(a.exit_code(), 0);
    assert!(a.is_cooked(), "terminal restored after detach");

    // The program keeps running without a client.
    let mut b = rt.pty(&["attach", "count"], 24, 80);
    let seen = b.expect(r"LINE \d+\r\n");
    assert_eq!(seen, "LINE 1\r\n", "a fresh client starts at offset 0");
    // Let some live output arrive, then kill the client mid-stream.
    b.expect(r"LINE 1[0-9]{2}\r\n");
    b.kill(Signal::SIGKILL);
    let st = b.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(9),
        "{st}"
    );
    let lines_b = numbered_lines(&b.output());
    assert!(
        lines_b.len() < n as usize,
        "the client was killed before the program finished ({} lines)",
        lines_b.len()
    );

    std::fs::write(&resume, "").unwrap();
    wait_for_file(&done);
    let mut c = rt.pty(&["attach", "count"], 24, 80);
    c.expect(&format!(r"LINE {n}\r\n"));
    // Give anything that would be a duplicate a moment to show up.
    std::thread::sleep(Duration::from_millis(300));
    let got = numbered_lines(&c.output());
    let want: Vec<u64> = (1..=n as u64).collect();
    assert_eq!(got, want, "replayed lines: {}", show(&c.output()));
    c.detach_keys();
    c.expect_str("[detached from session 'count' \u{2014} reattach: abide attach count]");
    assert_eq!(c.exit_code(), 0);
}

/// After the ring overflowed, a fresh client gets a snapshot: its screen is
/// the program's last lines, and the model's scrollback arrives in order.
#[test]
fn snapshot_after_ring_overflow_restores_screen_and_scrollback() {
    let rows = 24u16;
    let cols = 80u16;
    let scrollback = 50usize;
    let rt = Rt::with_env(&[
        ("ABIDE_RING_BYTES", "4096"),
        ("ABIDE_SCROLLBACK_LINES", &scrollback.to_string()),
    ]);
    let done = rt.scratch().join("done");
    let n: u64 = 2000; // about 20 kB of output: five times the ring
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"LINE $i\"; done; printf 'END'; touch '{}'; exec sleep 1000",
        done.display()
    );
    // Started without a TTY, so the session has the default size 24x80.
    rt.ok(&["new", "-d", "-s", "big", "--", "sh", "-c", &script]);
    wait_for_file(&done);
    // The program has written everything; wait until the daemon has read it
    // all from the PTY (a loaded machine may lag a little).
    let written: u64 = (1..=n)
        .map(|i| format!("LINE {i}\r\n").len() as u64)
        .sum::<u64>()
        + 3;
    let deadline = Instant::now() + Duration::from_secs(10);
    let info = loop {
        let info = rt.ls_json();
        if info[0]["output_bytes"].as_u64() == Some(written) || Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let bytes = info[0]["output_bytes"].as_u64().unwrap();
    assert_eq!(
        bytes, written,
        "the daemon logged every byte the program wrote"
    );
    assert!(bytes > 4 * 4096, "output must overflow the ring: {bytes}");
    assert_eq!(
        (info[0]["rows"].as_u64(), info[0]["cols"].as_u64()),
        (Some(24), Some(80))
    );

    let mut c = rt.pty(&["attach", "big"], rows, cols);
    c.expect_str("END");
    std::thread::sleep(Duration::from_millis(300));
    let out = c.output();
    // The replay path would start at LINE 1: the ring no longer holds it.
    assert!(
        !numbered_lines(&out).contains(&1),
        "offset 0 is gone, the client must get a snapshot"
    );

    let mut term = screen_of(&out, rows, cols, 10_000);
    // The screen: the last rows-1 lines, then END with the cursor after it.
    let mut want: Vec<String> = (n - rows as u64 + 2..=n)
        .map(|i| format!("LINE {i}"))
        .collect();
    want.push("END".into());
    assert_eq!(screen_rows(&term), want, "screen of the new client");
    assert_eq!(term.screen().cursor_position(), (rows - 1, 3));

    // Scrollback: the model's last `scrollback` lines above the screen, in order.
    let history = scrollback_rows(&mut term);
    let first_on_screen = n - rows as u64 + 2;
    let want_hist: Vec<String> = (first_on_screen - scrollback as u64..first_on_screen)
        .map(|i| format!("LINE {i}"))
        .collect();
    assert_eq!(history, want_hist, "scrollback of the new client");

    c.detach_keys();
    c.expect_str("[detached from session 'big' \u{2014} reattach: abide attach big]");
    assert_eq!(c.exit_code(), 0);
}

/// Two clients attached at once both see the output caused by either one.
#[test]
fn two_clients_see_the_same_output() {
    let rt = Rt::new();
    rt.ok(&[
        "new",
        "-d",
        "-s",
        "two",
        "--",
        "sh",
        "-c",
        "while read l; do echo \"got:$l:end\"; done",
    ]);
    let mut a = rt.pty(&["attach", "two"], 24, 80);
    let mut b = rt.pty(&["attach", "two"], 24, 80);
    let clients = || rt.ls_json()[0]["clients"].as_u64();
    eventually("two clients in ls", T, || {
        (clients() == Some(2)).then_some(())
    });

    let word = format!("w{}", std::process::id());
    a.send(format!("{word}\r").as_bytes());
    let want = format!("got:{word}:end");
    a.expect_str(&want);
    b.expect_str(&want);
    b.send(b"from-b\r");
    a.expect_str("got:from-b:end");
    b.expect_str("got:from-b:end");

    a.detach_keys();
    a.expect_str("[detached from session 'two' \u{2014} reattach: abide attach two]");
    assert_eq!(a.exit_code(), 0);
    eventually("one client in ls", T, || {
        (clients() == Some(1)).then_some(())
    });
    // The other one is still attached and still works.
    b.send(b"still\r");
    b.expect_str("got:still:end");
    b.detach_keys();
    assert_eq!(b.exit_code(), 0);
}

/// The client's window size reaches the program, initially and on SIGWINCH.
#[test]
fn resize_reaches_the_program() {
    let rt = Rt::new();
    let mut c = rt.pty(
        &[
            "new",
            "-s",
            "sz",
            "--",
            "sh",
            "-c",
            "while read l; do echo \"size:$(stty size)\"; done",
        ],
        24,
        80,
    );
    c.send(b"\r");
    c.expect_str("size:24 80");

    c.resize(31, 97);
    // The SIGWINCH and the keystroke race inside the client; ask until the new size shows.
    let deadline = Instant::now() + T;
    loop {
        c.send(b"\r");
        match c.expect_within(r"size:\d+ \d+", Duration::from_millis(500)) {
            Ok(s) if s == "size:31 97" => break,
            _ if Instant::now() > deadline => {
                panic!("the program never saw 31x97:\n{}", show(&c.output()))
            }
            _ => {}
        }
    }
    let info = rt.ls_json();
    assert_eq!(
        (info[0]["rows"].as_u64(), info[0]["cols"].as_u64()),
        (Some(31), Some(97))
    );
    c.detach_keys();
    assert_eq!(c.exit_code(), 0);
}

/// The program's exit status becomes the client's; the session leaves `ls`.
#[test]
fn exit_status_propagates_and_session_disappears() {
    let rt = Rt::new();
    // Another session keeps the daemon up, so `ls` shows what is left.
    rt.ok(&["new", "-d", "-s", "keep", "--", "sleep", "1000"]);
    let mut c = rt.pty(
        &[
            "new",
            "-s",
            "seven",
            "--",
            "sh",
            "-c",
            "echo bye; sleep 0.2; exit 7",
        ],
        24,
        80,
    );
    c.expect_str("bye");
    c.expect_str("[session 'seven' exited with status 7]");
    assert_eq!(c.exit_code(), 7);
    assert!(c.is_cooked(), "terminal restored after the program exited");
    eventually("'seven' gone from ls", T, || {
        (rt.session_names() == ["keep"]).then_some(())
    });

    // A status other than 7 too, so the number is really carried.
    let mut d = rt.pty(&["new", "-s", "zero", "--", "true"], 24, 80);
    d.expect_str("[session 'zero' exited with status 0]");
    assert_eq!(d.exit_code(), 0);
}

/// A program that prints and exits while nobody is attached keeps its
/// output: `ls` shows it exited with its code, the daemon stays, and an
/// attach shows every line once, in order, then the exit status; then the
/// session is gone (and the daemon with its last session).
#[test]
fn a_program_that_exits_while_detached_is_kept_until_attached() {
    let rt = Rt::new();
    let go = rt.scratch().join("go");
    let n = 300;
    let script = format!(
        "echo started; while [ ! -e '{}' ]; do sleep 0.05; done; \
         i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"LINE $i\"; done; exit 5",
        go.display()
    );
    rt.ok(&["new", "-d", "-s", "job", "--", "sh", "-c", &script]);
    let daemon = rt.daemon_pid().expect("a daemon runs");
    std::fs::write(&go, b"").unwrap();
    let e = eventually("'job' exited in ls", T, || {
        let v = rt.ls_json();
        (v[0]["state"] == "exited").then(|| v[0].clone())
    });
    assert_eq!(e["name"], "job");
    assert_eq!(e["exit_code"], 5, "{e}");
    assert_eq!(e["status"], "exited 5", "{e}");
    let text = rt.ok(&["ls"]);
    let row = text.lines().find(|l| l.starts_with("job ")).unwrap_or("");
    assert!(row.ends_with("exited 5"), "{text}");
    // The daemon stays for it (it used to go with its last session).
    std::thread::sleep(Duration::from_millis(600));
    assert!(alive(daemon), "the daemon keeps the exited session");
    assert_eq!(rt.session_names(), ["job"]);

    let mut c = rt.pty(&["attach", "job"], 24, 80);
    c.expect_str("[session 'job' exited with status 5]");
    assert_eq!(c.exit_code(), 5);
    assert!(c.is_cooked(), "terminal restored");
    let out = c.output();
    let want: Vec<u64> = (1..=n as u64).collect();
    assert_eq!(numbered_lines(&out), want, "{}", show(&out));
    assert_eq!(c.output_string().matches("started").count(), 1);
    eventually("the daemon goes with its last session", T, || {
        (!alive(daemon)).then_some(())
    });
    assert!(rt.session_names().is_empty());
}

/// SIGTERM to an attached client: it exits and leaves the terminal cooked.
#[test]
fn terminal_restored_after_sigterm() {
    let rt = Rt::new();
    let mut c = rt.pty(
        &[
            "new",
            "-s",
            "t",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 1000",
        ],
        24,
        80,
    );
    c.expect_str("ready");
    assert!(!c.is_cooked(), "raw while attached");
    c.kill(Signal::SIGTERM);
    let code = c.exit_code();
    assert_ne!(code, 0, "killed by SIGTERM is not success");
    assert!(
        c.is_cooked(),
        "terminal not restored after SIGTERM: {:?}\noutput: {}",
        c.termios().local_flags,
        show(&c.output())
    );
    // The session outlives its client.
    assert_eq!(rt.session_names(), ["t"]);
    assert_eq!(rt.ls_json()[0]["clients"].as_u64(), Some(0));

    // And after a detach, from a client that attached to the existing session.
    let mut d = rt.pty(&["attach"], 24, 80);
    d.expect_str("ready");
    assert!(!d.is_cooked());
    d.detach_keys();
    d.expect_str("[detached from session 't' \u{2014} reattach: abide attach t]");
    assert_eq!(d.exit_code(), 0);
    assert!(d.is_cooked(), "terminal restored after detach");
}

/// Ctrl-^ . quits the client; the session keeps running.
#[test]
fn quit_key_leaves_session_running() {
    let rt = Rt::new();
    let mut c = rt.pty(
        &[
            "new",
            "-s",
            "q",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 1000",
        ],
        24,
        80,
    );
    c.expect_str("ready");
    c.send(b"\x1e.");
    c.expect_str("keeps running");
    assert_eq!(c.exit_code(), 0);
    assert!(c.is_cooked());
    assert_eq!(rt.session_names(), ["q"]);
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn attach_unknown_session_fails_clearly() {
    let rt = Rt::new();
    // Without a daemon.
    let mut c = rt.pty(&["attach", "nosuch"], 24, 80);
    c.expect_str("no session named 'nosuch'");
    assert_ne!(c.exit_code(), 0);
    assert!(c.is_cooked());
    // With a daemon and another session.
    rt.ok(&["new", "-d", "-s", "other", "--", "sleep", "1000"]);
    let mut c = rt.pty(&["attach", "nosuch"], 24, 80);
    c.expect_str("no session named 'nosuch'");
    assert_ne!(c.exit_code(), 0);
    assert!(c.is_cooked(), "the terminal never went raw");
}

#[test]
fn duplicate_name_is_refused() {
    let rt = Rt::new();
    rt.ok(&["new", "-d", "-s", "x", "--", "sleep", "1000"]);
    let o = rt.run(&["new", "-d", "-s", "x", "--", "sleep", "1000"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("already exists"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(rt.session_names(), ["x"]);
}

#[test]
fn attach_without_a_tty_refuses_but_new_detached_works() {
    let rt = Rt::new();
    let o = rt.run(&["new", "-d", "-s", "bg", "--", "sleep", "1000"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("started session 'bg'"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(rt.session_names(), ["bg"]);

    let o = rt.run(&["attach", "bg"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("not a terminal"),
        "{}",
        stderr_of(&o)
    );
    // Attaching `new` without a TTY refuses too, and creates nothing.
    let o = rt.run(&["new", "-s", "fg", "--", "sleep", "1000"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("not a terminal"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(rt.session_names(), ["bg"]);
}

#[test]
fn ls_json_has_the_fields() {
    let rt = Rt::new();
    assert_eq!(rt.ls_json(), serde_json::json!([]), "no daemon: empty list");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    rt.ok(&[
        "new",
        "-d",
        "-s",
        "j",
        "--",
        "sh",
        "-c",
        "echo hi; exec sleep 1000",
    ]);
    let mut c = rt.pty(&["attach", "j"], 30, 100);
    c.expect_str("hi");
    let v = eventually("ls with one client", T, || {
        let v = rt.ls_json();
        (v[0]["clients"].as_u64() == Some(1) && !v[0]["last_output"].is_null()).then_some(v)
    });
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    let s = &arr[0];
    for f in [
        "name",
        "command",
        "pid",
        "created",
        "last_output",
        "clients",
        "rows",
        "cols",
    ] {
        assert!(s.get(f).is_some(), "field {f} missing in {s}");
    }
    assert_eq!(s["name"], "j");
    assert_eq!(
        s["command"],
        serde_json::json!(["sh", "-c", "echo hi; exec sleep 1000"])
    );
    let pid = s["pid"].as_u64().unwrap() as i32;
    assert!(alive(pid), "the program's pid {pid} is alive");
    let created = s["created"].as_u64().unwrap();
    assert!(
        created >= before && created <= before + 60,
        "{created} vs {before}"
    );
    assert!(s["last_output"].as_u64().unwrap() >= created);
    assert_eq!(
        (s["rows"].as_u64(), s["cols"].as_u64()),
        (Some(30), Some(100))
    );

    // The plain listing names it too.
    let text = rt.ok(&["ls"]);
    assert!(text.contains("NAME") && text.contains("j "), "{text}");
    c.detach_keys();
    assert_eq!(c.exit_code(), 0);
}

/// A daemon that accepts and never answers: `ls` gives up within ~6 s.
#[test]
fn unresponsive_daemon_is_reported() {
    let rt = Rt::new();
    std::fs::create_dir_all(rt.runtime_dir()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(rt.runtime_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let listener = std::os::unix::net::UnixListener::bind(rt.runtime_dir().join("daemon.sock"))
        .expect("bind the fake daemon");
    let held = std::thread::spawn(move || {
        let mut keep = Vec::new();
        // Accept a few connections and hold them open, silently.
        for s in listener.incoming().take(4) {
            match s {
                Ok(s) => keep.push(s),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let started = Instant::now();
    let o = rt.run_timeout(&["ls"], Duration::from_secs(15));
    let took = started.elapsed();
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("not answering"), "{}", stderr_of(&o));
    assert!(took < Duration::from_secs(7), "took {took:?}");
    let o = rt.run_timeout(&["kill", "x"], Duration::from_secs(15));
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("not answering"), "{}", stderr_of(&o));
    drop(held); // the thread ends on its own; it only holds sockets
}

#[test]
fn kill_unknown_session_fails_and_kill_works() {
    let rt = Rt::new();
    let o = rt.run(&["kill", "nosuch"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("no session named 'nosuch'"),
        "{}",
        stderr_of(&o)
    );

    rt.ok(&["new", "-d", "-s", "a", "--", "sleep", "1000"]);
    rt.ok(&["new", "-d", "-s", "b", "--", "sleep", "1000"]);
    let o = rt.run(&["kill", "nosuch"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("no session named 'nosuch'"),
        "{}",
        stderr_of(&o)
    );
    let pid_a = rt.ls_json()[0]["pid"].as_u64().unwrap() as i32;
    rt.ok(&["kill", "a"]);
    eventually("'a' gone", T, || {
        (rt.session_names() == ["b"]).then_some(())
    });
    eventually("the program of 'a' gone", T, || {
        (!alive(pid_a)).then_some(())
    });
}

/// A name that could break `host:NAME` or a shell command is refused before
/// anything starts.
#[test]
fn bad_session_name_is_refused() {
    let rt = Rt::new();
    let o = rt.run(&["new", "-d", "-s", "a:b", "--", "sleep", "1"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("bad session name"),
        "{}",
        stderr_of(&o)
    );
    assert!(
        rt.daemon_pid().is_none(),
        "no daemon started for a bad name"
    );
}

/// A daemon exits when its last session ends; commands that reach it at that
/// moment must go to the next daemon, not fail with a reset connection.
#[test]
fn commands_racing_an_exiting_daemon_do_not_fail() {
    let rt = Rt::new();
    for round in 0..6 {
        // A session that expires a moment from now (its program has exited:
        // nobody comes for it), taking the daemon with it.
        rt.ok(&["new", "-d", "--expire", "1s", "--", "sleep", "0.3"]);
        let until = Instant::now() + Duration::from_millis(1600);
        while Instant::now() < until {
            rt.ok(&["ls"]);
            std::thread::sleep(Duration::from_millis(5));
        }
        // And a new session right as it goes.
        rt.ok(&[
            "new",
            "-d",
            "-s",
            &format!("r{round}"),
            "--expire",
            "1s",
            "--",
            "sleep",
            "0.25",
        ]);
        std::thread::sleep(Duration::from_millis(150 + 40 * round));
    }
}
