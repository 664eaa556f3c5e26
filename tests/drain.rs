//! A program that ends while its remote client is cut off: the daemon keeps
//! the exited session (output log, terminal model, exit status) until a
//! client has shown its end, so the client that comes back through the
//! fault proxy (QUIC, or ssh over a TCP relay) shows every line it missed, once, in order, then exits with
//! the program's status. (Local attach of an exited session: `tests/sessions.rs`.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use abide::client::attach::Outcome;
use abide::client::connector::Connector;
use abide::client::remote::{QuicConnector, RemoteConnector};
use abide::faultproxy::{FaultProxy, TcpFaultProxy};
use abide::proto::policy::{Choice, Transport};
use common::fake_ssh::{fake_sshd, write_ssh_wrapper};
use common::remote::{bootstrap, check_exact, quic_target, remote_connector, start_client};
use common::{alive, eventually, Rt, BIN, T};

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

const FIRST: u32 = 20;
const TOTAL: u32 = 400;
const CODE: i32 = 7;

/// The client sees `LINE FIRST`; `cut` breaks its path; the program prints
/// its last lines and exits; `ls` shows it exited and the daemon keeps it
/// while the path stays down (it used to drop it, and go with its last
/// session); `mend` restores the path: the client gets the tail and the exit
/// status, and then the session is gone.
async fn cut_off_at_the_end(
    rt: &Rt,
    go: &std::path::Path,
    session_id: u64,
    conn: Arc<dyn Connector>,
    cut: impl FnOnce(),
    mend: impl AsyncFnOnce(),
) {
    let daemon = rt.daemon_pid().expect("the bootstrap started a daemon");
    let client = start_client(conn, session_id);
    client
        .wait_for(&format!("LINE {FIRST}\r\n"), Duration::from_secs(20))
        .await;

    cut();
    // The client notices (about 1 s of silence) and tries new links, which
    // the fault eats too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::write(go, b"").unwrap();
    let entry = tokio::task::block_in_place(|| {
        eventually("the session shows as exited in ls", T, || {
            let v = rt.ls_json();
            (v[0]["state"] == "exited").then(|| v[0].clone())
        })
    });
    assert_eq!(entry["exit_code"], CODE, "{entry}");
    assert!(
        !client.text().contains(&format!("LINE {TOTAL}\r\n")),
        "the tail must not have reached the client yet"
    );
    // Longer than the daemon used to stay after its last session (3 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(alive(daemon), "the daemon keeps the exited session");

    mend().await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), client.task)
        .await
        .expect("the client ends once the path is back")
        .unwrap();
    match outcome {
        Ok(Outcome::Exited { code, .. }) => assert_eq!(code, CODE),
        Ok(_) => panic!("the client ended without the program's exit"),
        Err(e) => panic!("the client failed: {e:#}"),
    }
    let out = String::from_utf8_lossy(&client.output.lock().unwrap()).into_owned();
    check_exact(&out, TOTAL, &[]);
    tokio::task::block_in_place(|| {
        eventually("the daemon goes with its last session", T, || {
            (!alive(daemon)).then_some(())
        })
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quic_a_client_cut_off_when_the_program_ends_gets_the_tail_and_the_status() {
    let rt = Rt::new();
    let go = rt.scratch().join("go");
    let line = bootstrap(&rt, &ending_program(FIRST, TOTAL, &go, CODE));
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", line.port).parse().unwrap())
        .await
        .unwrap();
    let conn = Arc::new(QuicConnector {
        target: quic_target(&line, proxy.addr()),
    });
    cut_off_at_the_end(
        &rt,
        &go,
        line.session_id,
        conn,
        || proxy.blackhole(true),
        // The old connection stays dead (its address no longer works), so
        // the tail comes from the kept session over a new one.
        async || {
            proxy.roam();
            proxy.blackhole(false)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_ssh_a_client_cut_off_when_the_program_ends_gets_the_tail_and_the_status() {
    let rt = Rt::new();
    let go = rt.scratch().join("go");
    let line = bootstrap(&rt, &ending_program(FIRST, TOTAL, &go, CODE));
    let sshd = fake_sshd(rt.runtime_dir()).await;
    let tcp = TcpFaultProxy::start(sshd).await.unwrap();
    let conn = ssh_connector(&rt, &line, tcp.addr().port());
    cut_off_at_the_end(
        &rt,
        &go,
        line.session_id,
        conn,
        || tcp.blackhole(true),
        // The old connection is reset with whatever it held (ssh's
        // keepalives end a dead one), so the tail comes from the kept
        // session over a new ssh.
        async || {
            tcp.reset();
            // The relays drop their connections (and what they held) first.
            tokio::time::sleep(Duration::from_millis(300)).await;
            tcp.blackhole(false)
        },
    )
    .await;
}

/// The same over ssh when the path just comes back: the old connection
/// delivers what it held (the tail and the exit), and the client's word that
/// it has shown the exit reaches the daemon's channel, still waiting on that
/// link, so the session goes (the daemon with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_ssh_the_exit_held_by_a_blackhole_is_confirmed_on_the_same_link() {
    let rt = Rt::new();
    let go = rt.scratch().join("go");
    let line = bootstrap(&rt, &ending_program(FIRST, TOTAL, &go, CODE));
    let sshd = fake_sshd(rt.runtime_dir()).await;
    let tcp = TcpFaultProxy::start(sshd).await.unwrap();
    let conn = ssh_connector(&rt, &line, tcp.addr().port());
    cut_off_at_the_end(
        &rt,
        &go,
        line.session_id,
        conn,
        || tcp.blackhole(true),
        async || tcp.blackhole(false),
    )
    .await;
}

fn ssh_connector(
    rt: &Rt,
    line: &abide::server::bootstrap::ConnectLine,
    port: u16,
) -> Arc<RemoteConnector> {
    let ssh = write_ssh_wrapper(rt, port);
    Arc::new(remote_connector(
        rt,
        line,
        format!("127.0.0.1:{}", line.port).parse().unwrap(),
        vec![ssh.display().to_string()],
        BIN,
        Choice::Only(Transport::Ssh),
    ))
}
