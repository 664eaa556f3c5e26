//! The ssh transport when UDP is blocked. A stand-in `ssh` (a small Python
//! relay, written by the test) carries its stdin/stdout over TCP through
//! [`TcpFaultProxy`] to a stand-in sshd in the test, which runs the remote
//! command with `sh -c`, as sshd would. The UDP path goes through a
//! [`FaultProxy`] that drops everything from the start.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use abide::client::remote::RemoteConnector;
use abide::client::transport_memory::{network_of, TransportMemory};
use abide::faultproxy::{FaultProxy, TcpFaultProxy};
use abide::proto::policy::{Choice, Transport};
use common::fake_ssh::{fake_sshd, fake_sshd_counted, write_ssh_wrapper};
use common::remote::{
    bootstrap, check_exact, program, remote_connector, start_client, start_client_handed,
};
use common::{PtyClient, Rt, BIN};

struct Setup {
    rt: Rt,
    line: abide::server::bootstrap::ConnectLine,
    udp: FaultProxy,
    tcp: TcpFaultProxy,
    remote: Arc<RemoteConnector>,
}

async fn setup(lines: u32, interval_ms: u32) -> Setup {
    setup_in(Rt::new(), lines, interval_ms).await
}

/// The setup in an existing runtime (a second session shares the first one's
/// transport memory).
async fn setup_in(rt: Rt, lines: u32, interval_ms: u32) -> Setup {
    setup_with(rt, &program(lines, interval_ms)).await
}

/// The setup with a program of the test's own.
async fn setup_with(rt: Rt, program: &str) -> Setup {
    let line = bootstrap(&rt, program);
    let udp = FaultProxy::start(format!("127.0.0.1:{}", line.port).parse().unwrap())
        .await
        .unwrap();
    udp.blackhole(true);
    let sshd = fake_sshd(rt.runtime_dir()).await;
    let tcp = TcpFaultProxy::start(sshd).await.unwrap();
    // SAFETY of the environment: the fake ssh reads the port from its own
    // environment, which it inherits; the variable names this test's proxy.
    let wrapper = write_ssh_wrapper(&rt, tcp.addr().port());
    let remote = remote_connector(
        &rt,
        &line,
        udp.addr(),
        vec![wrapper.display().to_string()],
        BIN,
        Choice::Race,
    );
    Setup {
        rt,
        line,
        udp,
        tcp,
        remote: Arc::new(remote),
    }
}

const LONG: Duration = Duration::from_secs(60);

/// Recovery over ssh takes about one ssh login on loopback; this only catches
/// a policy that waits for seconds (the exact bounds are in the simulation).
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

fn hint(s: &Setup) -> Option<Transport> {
    let memory = TransportMemory::at(s.rt.scratch().join("transports.toml"));
    memory.hint(&s.remote.host_key, &network_of(s.udp.addr()).unwrap())
}

fn blackhole_secs() -> u64 {
    std::env::var("ABIDE_TEST_BLACKHOLE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_blocked_session_runs_over_ssh_through_blackhole_and_reset() {
    let bh = blackhole_secs();
    // Enough lines to outlast the connect, the blackhole and the reset.
    let lines = (bh as u32 + 12) * 10;
    let s = setup(lines, 100).await;
    let _rt = &s.rt;
    let client = start_client(s.remote.clone(), s.line.session_id);
    client.wait_for("LINE 20\r\n", LONG).await;

    s.tcp.blackhole(true);
    client.type_line("typed-in-blackhole").await;
    tokio::time::sleep(Duration::from_secs(bh)).await;
    s.tcp.blackhole(false);
    let took = client.time_to_next_output(LONG).await;
    eprintln!("ssh transport: output resumed {took:?} after a {bh} s blackhole");
    assert!(took <= RECOVERY_BOUND, "recovery took {took:?}");
    client.wait_for("GOT:typed-in-blackhole", LONG).await;

    s.tcp.reset();
    client.type_line("typed-after-reset").await;
    let took = client.time_to_next_output(LONG).await;
    eprintln!("ssh transport: output resumed {took:?} after a connection reset");
    assert!(took <= RECOVERY_BOUND, "recovery took {took:?}");
    client.wait_for("GOT:typed-after-reset", LONG).await;

    client.wait_for(&format!("LINE {lines}\r\n"), LONG).await;
    let out = client.finish().await;
    check_exact(&out, lines, &["typed-in-blackhole", "typed-after-reset"]);
    assert_eq!(
        s.udp
            .counters()
            .down
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no UDP got through"
    );
    // Whole QUIC handshakes timed out while ssh worked: recorded as a hint
    // for this host on this network (the memory is the test's own).
    assert_eq!(hint(&s), Some(Transport::Ssh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_moves_to_quic_when_udp_comes_back() {
    let lines = 150;
    let s = setup(lines, 40).await;
    let client = start_client(s.remote.clone(), s.line.session_id);
    client.wait_for("LINE 10\r\n", LONG).await;
    // UDP comes back; within an upgrade interval the session moves to QUIC.
    s.udp.blackhole(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Cut ssh for good: output can now only arrive over QUIC.
    s.tcp.blackhole(true);
    s.tcp.reset();
    client.type_line("typed-on-quic").await;
    client.wait_for(&format!("LINE {lines}\r\n"), LONG).await;
    client.wait_for("GOT:typed-on-quic", LONG).await;
    let out = client.finish().await;
    check_exact(&out, lines, &["typed-on-quic"]);
    assert!(
        s.udp
            .counters()
            .down
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    assert_eq!(hint(&s), Some(Transport::Quic));
}

/// The link policy's timers run while output floods in: a session on ssh
/// moves to QUIC when UDP comes back in the middle of a flood too. (The
/// client's loop served ready frames first, always, and a timer never fired
/// while frames kept coming.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_moves_to_quic_during_a_flood() {
    let rt = Rt::new();
    let s = setup_with(
        rt,
        "stty -echo; exec yes 'a line of a flood that never stops'",
    )
    .await;
    let client = start_client(s.remote.clone(), s.line.session_id);
    client.wait_for("flood", LONG).await;
    let down = || {
        s.udp
            .counters()
            .down
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(down(), 0);
    s.udp.blackhole(false);
    let t = std::time::Instant::now();
    // QUIC carrying the flood: far more than a handshake's packets.
    while down() < 200 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "still on ssh {:?} after UDP came back ({} UDP packets down, {} KB received)",
            t.elapsed(),
            down(),
            client.bytes_len() / 1000
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "moved to QUIC {:?} after UDP came back, during a flood ({} KB received)",
        t.elapsed(),
        client.bytes_len() / 1000
    );
    client.task.abort();
}

/// Over the ssh transport, where one TCP stream carries everything: typing
/// into the 20 fps redraw (more than the link carries) on 2 Mbit/s and 100 ms
/// each key shows within about 2 RTT + 50 ms (printed; the median is
/// asserted with a margin for loaded machines, below what the byte stream
/// alone gives: over a second and growing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_show_during_a_redraw_over_ssh_on_a_slow_link() {
    let rt = Rt::new();
    let script = rt.scratch().join("redraw.py");
    std::fs::write(&script, common::redraw::REDRAW).unwrap();
    let s = setup_with(rt, &format!("exec python3 {}", script.display())).await;
    s.tcp.shape(2_000_000, Duration::from_millis(50));
    let client = start_client(s.remote.clone(), s.line.session_id);
    let typist = common::redraw::Typist {
        output: &client.output,
        input: &client.input,
    };
    // Long enough for the link to be measured and the backlog to build.
    let keys = typist
        .type_into_redraw(Duration::from_secs(4), "abcdefghij")
        .await;
    let mut took: Vec<Duration> = keys.iter().map(|k| k.0).collect();
    let udp_down = s
        .udp
        .counters()
        .down
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(udp_down, 0, "all of it over ssh");
    eprintln!("over ssh, 2 Mbit/s, 100 ms RTT, 20 fps redraw: key to screen {took:?}");
    took.sort();
    let (p50, max) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!("  p50 {p50:?}, max {max:?} (target 250 ms)");
    assert!(p50 <= Duration::from_secs(1), "median key {p50:?}");
    client.task.abort();
}

/// A network that blocked UDP last time, open now, same transport memory: the
/// next session is on QUIC at once (the memory is a hint, never a verdict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_blocked_then_unblocked_with_the_same_memory() {
    let lines = 60;
    let first = setup(lines, 50).await;
    let client = start_client(first.remote.clone(), first.line.session_id);
    client.wait_for("LINE 5\r\n", LONG).await;
    // Long enough for three QUIC probes to time out while ssh works.
    let t0 = std::time::Instant::now();
    while hint(&first) != Some(Transport::Ssh) {
        assert!(t0.elapsed() < LONG, "UDP never recorded as blocked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = client.finish().await;
    check_exact(&out, lines, &[]);

    // Same runtime, same memory; UDP open, and ssh cut from the start, so
    // that only QUIC can carry the session.
    let Setup { rt, udp, tcp, .. } = first;
    drop((udp, tcp));
    let second = setup_in(rt, lines, 50).await;
    assert_eq!(
        hint(&second),
        Some(Transport::Ssh),
        "the stale hint is there"
    );
    second.udp.blackhole(false);
    second.tcp.blackhole(true);
    let started = std::time::Instant::now();
    let client = start_client(second.remote.clone(), second.line.session_id);
    let took = client.wait_for("LINE 1\r\n", LONG).await;
    eprintln!("after a UDP-blocked run: first output over QUIC {took:?} after start");
    assert!(
        started.elapsed() <= RECOVERY_BOUND,
        "first output took {took:?}"
    );
    client.type_line("typed-on-quic").await;
    client.wait_for("GOT:typed-on-quic", LONG).await;
    let out = client.finish().await;
    check_exact(&out, lines, &["typed-on-quic"]);
    assert_eq!(hint(&second), Some(Transport::Quic));
}

/// `abide HOST` as the client runs it: the real bootstrap over the fake ssh
/// (`--then-stdio`), its connection handed to the attach driver as the first
/// link, QUIC raced beside it through a proxy that drops UDP (or not).
struct Handed {
    rt: Rt,
    udp: FaultProxy,
    tcp: TcpFaultProxy,
    logins: Arc<AtomicUsize>,
    client: common::remote::Client,
}

async fn connect_handed(lines: u32, interval_ms: u32, udp_open: bool) -> Handed {
    connect_handed_with(lines, interval_ms, udp_open, false).await
}

/// [`connect_handed`]; `hold_ssh`: the ssh path holds every byte from the
/// moment the bootstrap is done (the client's hello on it waits in the proxy).
async fn connect_handed_with(
    lines: u32,
    interval_ms: u32,
    udp_open: bool,
    hold_ssh: bool,
) -> Handed {
    let rt = Rt::new();
    let (sshd, logins) = fake_sshd_counted(rt.runtime_dir()).await;
    let tcp = TcpFaultProxy::start(sshd).await.unwrap();
    let opts = abide::client::options::RemoteOpts {
        ssh: write_ssh_wrapper(&rt, tcp.addr().port())
            .display()
            .to_string(),
        server: BIN.into(),
        udp_ports: Some("0".into()),
        ..Default::default()
    };
    let prog = program(lines, interval_ms);
    let command = ["sh".to_string(), "-c".into(), prog];
    let spec = abide::client::remote::BootstrapSpec {
        session: None,
        command: &command,
        existing_only: false,
        watch: false,
        handover: true,
    };
    let b = abide::client::remote::bootstrap(&opts, "127.0.0.1", &spec)
        .await
        .expect("bootstrap");
    let link = b.link.expect("the bootstrap's ssh is handed over");
    assert_eq!(logins.load(Ordering::SeqCst), 1);
    let udp = FaultProxy::start(format!("127.0.0.1:{}", b.line.port).parse().unwrap())
        .await
        .unwrap();
    udp.blackhole(!udp_open);
    let remote = remote_connector(
        &rt,
        &b.line,
        udp.addr(),
        abide::client::remote::ssh_argv(&opts).unwrap(),
        &b.server,
        Choice::Race,
    );
    tcp.blackhole(hold_ssh);
    let client = start_client_handed(Arc::new(remote), b.line.session_id, Some(link));
    Handed {
        rt,
        udp,
        tcp,
        logins,
        client,
    }
}

/// The first connect to a host whose UDP is blocked costs one ssh login (the
/// bootstrap's), not two: the session runs on the bootstrap's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_blocked_first_connect_is_one_ssh_login() {
    let lines = 80;
    let h = connect_handed(lines, 50, false).await;
    let _rt = &h.rt;
    let took = h.client.wait_for("LINE 1\r\n", LONG).await;
    eprintln!("handed-over ssh link: first output {took:?} after the bootstrap");
    h.client.type_line("typed-on-handed-ssh").await;
    h.client.wait_for("GOT:typed-on-handed-ssh", LONG).await;
    assert_eq!(h.logins.load(Ordering::SeqCst), 1, "a second ssh login");
    // It recovers as any ssh link does: a reset costs one new login.
    h.tcp.reset();
    h.client.type_line("typed-after-reset").await;
    h.client.wait_for("GOT:typed-after-reset", LONG).await;
    h.client.wait_for(&format!("LINE {lines}\r\n"), LONG).await;
    assert_eq!(h.logins.load(Ordering::SeqCst), 2);
    let out = h.client.finish().await;
    check_exact(&out, lines, &["typed-on-handed-ssh", "typed-after-reset"]);
    assert_eq!(h.udp.counters().down.load(Ordering::Relaxed), 0);
}

/// With UDP open the session starts on the handed-over ssh link and moves to
/// QUIC at once: after ssh is cut, everything still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_over_ssh_gives_way_to_quic() {
    let lines = 80;
    let h = connect_handed(lines, 40, true).await;
    let _rt = &h.rt;
    h.client.wait_for("LINE 2\r\n", LONG).await;
    // Cut ssh for good: output can now only arrive over QUIC.
    h.tcp.blackhole(true);
    h.tcp.reset();
    h.client.type_line("typed-on-quic").await;
    h.client.wait_for("GOT:typed-on-quic", LONG).await;
    h.client.wait_for(&format!("LINE {lines}\r\n"), LONG).await;
    let out = h.client.finish().await;
    check_exact(&out, lines, &["typed-on-quic"]);
    assert!(h.udp.counters().down.load(Ordering::Relaxed) > 0);
    assert_eq!(h.logins.load(Ordering::SeqCst), 1, "a second ssh login");
}

/// The handed-over ssh link's hello is sent first but can reach the daemon
/// after QUIC's (the relay starts, the path is slow): the daemon then retires
/// the newer QUIC channel with a detach nobody asked for. The lab saw
/// `abide HOST` end at once with "[detached from session 'login' …]"; the
/// session must go on, on a fresh link, with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_hello_on_the_handed_over_link_does_not_detach_the_session() {
    let lines = 60;
    let h = connect_handed_with(lines, 50, true, true).await;
    let _rt = &h.rt;
    // QUIC attaches (the held ssh hello cannot), and shows output.
    h.client.wait_for("LINE 2\r\n", LONG).await;
    // Now the old hello gets through and the daemon retires the QUIC channel.
    h.tcp.blackhole(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.client.type_line("still-here").await;
    h.client.wait_for("GOT:still-here", LONG).await;
    h.client.wait_for(&format!("LINE {lines}\r\n"), LONG).await;
    let out = h.client.finish().await;
    check_exact(&out, lines, &["still-here"]);
}

/// Echo round trips over the ssh transport (the fake ssh, like OpenSSH for a
/// command without a tty, leaves Nagle on): a frame the client does not
/// answer (an input ack) must not hold back the echo behind the client's
/// delayed ACK (40 ms). Prints the figures; the exact coalescing is unit-tested
/// in `server::stdio`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_ssh_figures() {
    let h = connect_handed(100, 100, false).await;
    let _rt = &h.rt;
    h.client.wait_for("LINE 1\r\n", LONG).await;
    let mut took = Vec::new();
    for i in 0..15 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let word = format!("echo-{i}");
        let t = std::time::Instant::now();
        h.client.type_line(&word).await;
        h.client.wait_for(&format!("GOT:{word}\r\n"), LONG).await;
        took.push(t.elapsed());
    }
    took.sort();
    eprintln!(
        "ssh transport echo: median {:?}, max {:?} (15 lines typed)",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    h.client.wait_for("LINE 100\r\n", LONG).await;
    let out = h.client.finish().await;
    let typed: Vec<String> = (0..15).map(|i| format!("echo-{i}")).collect();
    let typed: Vec<&str> = typed.iter().map(String::as_str).collect();
    check_exact(&out, 100, &typed);
}

/// Keys typed while `abide HOST` logs in belong to the session, not to the
/// bootstrap's ssh (which forwards whatever it reads on its stdin: the lab
/// saw 6 s connects when its first command went that way). Both with the
/// bootstrap handed over (auto) and without (udp).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_typed_during_the_bootstrap_reach_the_session() {
    for transport in ["udp", "auto"] {
        let rt = Rt::new();
        let (sshd, _) = fake_sshd_counted(rt.runtime_dir()).await;
        let tcp = TcpFaultProxy::start(sshd).await.unwrap();
        let ssh = write_ssh_wrapper(&rt, tcp.addr().port());
        let cmd = rt.command(&[
            "--ssh",
            &ssh.display().to_string(),
            "--server",
            BIN,
            "--transport",
            transport,
            "--udp-ports",
            "0",
            "me@127.0.0.1",
            "--",
            "sh",
            "-c",
            "read l; echo GOT-$l-$((6*7)); exec sleep 30",
        ]);
        let mut client = PtyClient::spawn(cmd, 24, 80);
        // At once: ssh is starting or logging in.
        client.send(b"typeahead\r");
        let got = tokio::task::spawn_blocking(move || {
            client.expect_str("GOT-typeahead-42");
            client.send(b"\x1e.");
            client.wait();
        });
        tokio::time::timeout(LONG, got)
            .await
            .expect("typeahead arrived")
            .unwrap();
        drop(tcp);
    }
}
