//! Remote sessions over QUIC through the loopback fault proxy: blackhole,
//! loss, NAT rebind and roam. Each test checks that the bytes the client
//! received are exactly the bytes the program wrote, and that lines typed
//! during the fault reach the program once each, in order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use abide::client::remote::QuicConnector;
use abide::faultproxy::FaultProxy;
use common::remote::{bootstrap, check_exact, program, quic_target, start_client};
use common::Rt;

const LINES: u32 = 150;

/// Recovery on loopback takes one QUIC retry interval (0.25 s) plus a
/// handshake; this bound only catches a policy that waits for seconds (the
/// machine may be loaded: the exact bounds are asserted in simulated time by
/// `abide-proto`'s `sim` tests).
const RECOVERY_BOUND: Duration = Duration::from_secs(3);

async fn scenario(
    name: &str,
    fault: impl AsyncFnOnce(&FaultProxy),
    restore: impl FnOnce(&FaultProxy),
) -> Duration {
    let rt = Rt::new();
    let line = bootstrap(&rt, &program(LINES, 20));
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let proxy = FaultProxy::start(server).await.unwrap();
    let conn = Arc::new(QuicConnector {
        target: quic_target(&line, proxy.addr()),
    });
    let client = start_client(conn, line.session_id);
    client
        .wait_for("LINE 20\r\n", Duration::from_secs(10))
        .await;

    fault(&proxy).await;
    // Three separate keystroke chunks while the path is down.
    let typed: Vec<String> = (1..=3)
        .map(|i| format!("typed-{i}-during-{name}"))
        .collect();
    for t in &typed {
        client.type_line(t).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    restore(&proxy);
    let took = client.time_to_next_output(Duration::from_secs(10)).await;
    eprintln!("{name}: output resumed {took:?} after the path returned");

    client
        .wait_for(&format!("LINE {LINES}\r\n"), Duration::from_secs(20))
        .await;
    client
        .wait_for(&format!("GOT:{}", typed[2]), Duration::from_secs(5))
        .await;
    let out = client.finish().await;
    let typed: Vec<&str> = typed.iter().map(String::as_str).collect();
    check_exact(&out, LINES, &typed);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_blackhole() {
    let took = scenario(
        "blackhole",
        async |p| p.blackhole(true),
        |p| p.blackhole(false),
    )
    .await;
    assert!(took <= RECOVERY_BOUND, "recovery took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_20_percent_loss() {
    let took = scenario("loss", async |p| p.loss(20), |p| p.loss(0)).await;
    assert!(took <= RECOVERY_BOUND, "recovery took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_nat_rebind() {
    let took = scenario("rebind", async |p| p.rebind().await.unwrap(), |_| {}).await;
    assert!(took <= RECOVERY_BOUND, "recovery took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_roam() {
    let took = scenario("roam", async |p| p.roam(), |_| {}).await;
    assert!(took <= RECOVERY_BOUND, "recovery took {took:?}");
}

/// Loss, a roam and a NAT rebind at once: the path changes twice while a
/// fifth of the packets vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_loss_roam_and_rebind_together() {
    let took = scenario(
        "loss+roam+rebind",
        async |p| {
            p.loss(20);
            p.roam();
            p.rebind().await.unwrap();
        },
        |p| p.loss(0),
    )
    .await;
    assert!(took <= RECOVERY_BOUND * 2, "recovery took {took:?}");
}

async fn refused(mutate: impl FnOnce(&mut abide::server::bootstrap::ConnectLine)) -> String {
    let rt = Rt::new();
    let mut line = bootstrap(&rt, "sleep 30");
    mutate(&mut line);
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let client = start_client(
        Arc::new(QuicConnector {
            target: quic_target(&line, server),
        }),
        line.session_id,
    );
    let result = tokio::time::timeout(Duration::from_secs(10), client.task)
        .await
        .unwrap()
        .unwrap();
    format!("{:#}", result.err().expect("must fail"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fingerprint_is_refused() {
    let msg = refused(|l| l.fingerprint = "00".repeat(32)).await;
    assert!(msg.contains("fingerprint mismatch"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused() {
    let msg = refused(|l| l.secret[0] ^= 1).await;
    assert!(msg.contains("authentication failed"), "{msg}");
}
