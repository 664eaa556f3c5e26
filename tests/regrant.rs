//! A resume whose grant the server has dropped (idle too long: a laptop
//! asleep over a weekend) gets a new grant for the same session over ssh and
//! carries on without losing a byte; when no new grant can be had, the user
//! is told how to reattach. The daemon's test knobs shrink the grant's idle
//! time (`ABIDE_TEST_GRANT_IDLE_TTL_MS`) and how long a QUIC connection whose
//! client went away holds it (`ABIDE_TEST_QUIC_IDLE_MS`) to seconds. The
//! stand-in ssh (`common::fake_ssh`) runs the bootstrap again on this machine.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use abide::client::options::{RemoteOpts, TransportChoice};
use abide::client::remote::RemoteConnector;
use abide::faultproxy::FaultProxy;
use abide::proto::policy::{Choice, Transport};
use common::fake_ssh::{fake_sshd_counted, write_ssh_wrapper};
use common::remote::{bootstrap, check_exact, program, remote_connector, start_client};
use common::{numbered_lines, PtyClient, Rt, BIN};
use nix::sys::signal::Signal;

/// The grant idles out this long after its connection went.
const GRANT_TTL_MS: u64 = 1500;
/// The server drops a connection silent this long (its grant is then unused).
const QUIC_IDLE_MS: u64 = 3000;
/// Longer than both together, with room for a loaded machine.
const AWAY: Duration = Duration::from_millis(QUIC_IDLE_MS + GRANT_TTL_MS + 3000);

const LONG: Duration = Duration::from_secs(30);

struct Setup {
    rt: Rt,
    line: abide::server::bootstrap::ConnectLine,
    proxy: FaultProxy,
    remote: Arc<RemoteConnector>,
}

/// A session on a daemon with short grants, reached over QUIC through the
/// fault proxy; the ssh for a new grant reaches `ssh_port`.
async fn setup(rt: Rt, lines: u32, ssh_port: u16) -> Setup {
    let line = bootstrap(&rt, &program(lines, 100));
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let proxy = FaultProxy::start(server).await.unwrap();
    let wrapper = write_ssh_wrapper(&rt, ssh_port).display().to_string();
    let opts = RemoteOpts {
        ssh: wrapper.clone(),
        server: BIN.into(),
        no_deploy: true,
        transport: TransportChoice::Udp,
        udp_ports: None,
    };
    let remote = remote_connector(
        &rt,
        &line,
        proxy.addr(),
        vec![wrapper],
        BIN,
        Choice::Only(Transport::Quic),
    )
    .with_regrant(opts);
    Setup {
        rt,
        line,
        proxy,
        remote: Arc::new(remote),
    }
}

fn short_grants() -> Rt {
    Rt::with_env(&[
        ("ABIDE_TEST_GRANT_IDLE_TTL_MS", &GRANT_TTL_MS.to_string()),
        ("ABIDE_TEST_QUIC_IDLE_MS", &QUIC_IDLE_MS.to_string()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_idled_out_is_fetched_again_and_nothing_is_lost() {
    let rt = short_grants();
    let (sshd, logins) = fake_sshd_counted(rt.runtime_dir()).await;
    // Enough lines to outlast the connect, the time away and the new grant.
    let lines = 200;
    let s = setup(rt, lines, sshd.port()).await;
    let _rt = &s.rt;
    let client = start_client(s.remote.clone(), s.line.session_id);
    client.wait_for("LINE 10\r\n", LONG).await;

    s.proxy.blackhole(true);
    client.type_line("typed-while-away").await;
    tokio::time::sleep(AWAY).await;
    s.proxy.blackhole(false);
    client.type_line("typed-after").await;
    let took = client.time_to_next_output(LONG).await;
    eprintln!("regrant: output resumed {took:?} after the path returned");
    client
        .wait_for(&format!("LINE {lines}\r\n"), Duration::from_secs(60))
        .await;
    client.wait_for("GOT:typed-after", LONG).await;
    assert_eq!(
        logins.load(Ordering::SeqCst),
        1,
        "one ssh login for the new grant"
    );
    let out = client.finish().await;
    check_exact(&out, lines, &["typed-while-away", "typed-after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_grant_says_how_to_reattach() {
    let rt = short_grants();
    // Nothing listens there: ssh fails (exit 255), as with a host now unreachable over TCP.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = setup(rt, 400, closed).await;
    let _rt = &s.rt;
    let client = start_client(s.remote.clone(), s.line.session_id);
    client.wait_for("LINE 5\r\n", LONG).await;
    s.proxy.blackhole(true);
    tokio::time::sleep(AWAY).await;
    s.proxy.blackhole(false);
    let outcome = tokio::time::timeout(LONG, client.task)
        .await
        .expect("the client ends")
        .unwrap();
    let Err(e) = outcome else {
        panic!("the client carried on without a grant");
    };
    let msg = format!("{e:#}");
    eprintln!("{msg}");
    assert!(
        msg.contains(&format!("abide attach 127.0.0.1:{}", s.line.session_name)),
        "{msg}"
    );
    assert!(msg.contains("grant"), "{msg}");
    // The session itself is still there.
    let ls = s.rt.run(&["ls"]);
    assert!(
        String::from_utf8_lossy(&ls.stdout).contains(&s.line.session_name),
        "{ls:?}"
    );
}

/// As a user meets it: `abide HOST` in a terminal, the laptop asleep (the
/// client stopped) past the grant's idle time, then awake: one ssh login
/// more for the new grant, a one-line notice, and every line once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asleep_past_its_grant_wakes_up_in_its_session() {
    let rt = short_grants();
    // The daemon starts here, with the test knobs (the stand-in sshd does
    // not pass them on); the bootstrap over ssh finds it.
    rt.ok(&["new", "-d", "-s", "keep", "--", "sleep", "300"]);
    let (sshd, logins) = fake_sshd_counted(rt.runtime_dir()).await;
    let ssh = write_ssh_wrapper(&rt, sshd.port());
    let lines = 150;
    let program = format!(
        "i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo \"LINE $i\"; sleep 0.1; done; sleep 300"
    );
    let cmd = rt.command(&[
        "--ssh",
        &ssh.display().to_string(),
        "--server",
        BIN,
        "--transport",
        "udp",
        "--udp-ports",
        "0",
        "me@127.0.0.1",
        "--",
        "sh",
        "-c",
        &program,
    ]);
    let mut client = PtyClient::spawn(cmd, 24, 80);
    let done = tokio::task::spawn_blocking(move || {
        client.expect_str("LINE 10\r\n");
        client.kill(Signal::SIGSTOP);
        std::thread::sleep(AWAY);
        client.kill(Signal::SIGCONT);
        client.expect_str("signed in again over ssh");
        client.expect_str(&format!("LINE {lines}\r\n"));
        let seen = numbered_lines(&client.output());
        client.send(b"\x1e.");
        client.wait();
        seen
    });
    let seen = tokio::time::timeout(Duration::from_secs(90), done)
        .await
        .expect("the session came back")
        .unwrap();
    assert_eq!(seen, (1..=lines as u64).collect::<Vec<_>>());
    assert_eq!(
        logins.load(Ordering::SeqCst),
        2,
        "the bootstrap, then one login for the new grant"
    );
}
