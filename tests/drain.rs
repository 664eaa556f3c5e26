//! A program that ends while its remote client is cut off: the daemon keeps
//! the exited session (output log, terminal model, exit status) until a
//! client has shown its end, so the client that comes back through the
//! fault proxy shows every line it missed, once, in order, then exits with
//! the program's status. (Local attach of an exited session: `tests/sessions.rs`.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use abide::client::attach::Outcome;
use abide::client::remote::QuicConnector;
use abide::faultproxy::FaultProxy;
use common::remote::{bootstrap, check_exact, quic_target, start_client};
use common::{alive, eventually, Rt, T};

/// Prints `LINE 1..=first` slowly, waits for `go` to exist, prints the rest
/// up to `LINE total` at once and exits with `code`.
fn ending_program(first: u32, total: u32, go: &std::path::Path, code: i32) -> String {
    format!(
        "stty -echo; i=0; while [ $i -lt {first} ]; do i=$((i+1)); echo \"LINE $i\"; sleep 0.02; done; \
         while [ ! -e '{go}' ]; do sleep 0.05; done; \
         while [ $i -lt {total} ]; do i=$((i+1)); echo \"LINE $i\"; done; exit {code}",
        go = go.display()
    )
}

/// The session's entry in `ls --json` once the daemon has it as exited.
fn wait_exited(rt: &Rt) -> serde_json::Value {
    eventually("the session shows as exited in ls", T, || {
        let v = rt.ls_json();
        (v[0]["state"] == "exited").then(|| v[0].clone())
    })
}

/// Blackhole, the program prints its last lines and exits, the path stays
/// down past every server-side wait (the daemon's channel and QUIC
/// connection give up), the path returns: the client resumes on a new
/// connection, gets the tail and the exit status, and the session is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_when_the_program_ends_gets_the_tail_and_the_status() {
    let rt = Rt::new();
    let go = rt.scratch().join("go");
    let (first, total) = (20, 400);
    let line = bootstrap(&rt, &ending_program(first, total, &go, 7));
    let daemon = rt.daemon_pid().expect("the bootstrap started a daemon");
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", line.port).parse().unwrap())
        .await
        .unwrap();
    let conn = Arc::new(QuicConnector {
        target: quic_target(&line, proxy.addr()),
    });
    let client = start_client(conn, line.session_id);
    client
        .wait_for(&format!("LINE {first}\r\n"), Duration::from_secs(10))
        .await;

    proxy.blackhole(true);
    // The client notices (1 s of silence) and starts new handshakes, which
    // the blackhole eats too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::write(&go, b"").unwrap();
    let entry = tokio::task::block_in_place(|| wait_exited(&rt));
    assert_eq!(entry["exit_code"], 7, "{entry}");
    let before = client.text();
    assert!(
        !before.contains(&format!("LINE {total}\r\n")),
        "the tail must not have reached the client yet"
    );
    // Past the channel's wait for the client (5 s) and the QUIC
    // connection's close (2 s): the session is all that is left.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(alive(daemon), "the daemon keeps the exited session");

    proxy.blackhole(false);
    let outcome = tokio::time::timeout(Duration::from_secs(20), client.task)
        .await
        .expect("the client ends once the path is back")
        .unwrap();
    match outcome {
        Ok(Outcome::Exited { code, .. }) => assert_eq!(code, 7),
        Ok(_) => panic!("the client ended without the program's exit"),
        Err(e) => panic!("the client failed: {e:#}"),
    }
    let out = String::from_utf8_lossy(&client.output.lock().unwrap()).into_owned();
    check_exact(&out, total, &[]);
    tokio::task::block_in_place(|| {
        eventually("the daemon goes with its last session", T, || {
            (!alive(daemon)).then_some(())
        })
    });
}
