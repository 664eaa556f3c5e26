//! A pong overtakes output in flight: over QUIC, control frames travel on a
//! second stream sent with a higher priority, so they wait for the bottleneck
//! at most, not for the output queued behind it.
//!
//! The daemon's QUIC endpoint (the real transport, with a stand-in channel
//! that writes 200 KB of output at once and then answers pings) behind the
//! fault proxy's bottleneck: 2 Mbit/s, 100 ms round trip. With one stream the
//! pong comes after all the output (0.8 s of it); with the control lane it
//! comes while most of the output is still on its way. Both are measured and
//! printed; the one-stream case is asserted too, to show the bottleneck
//! really queues the output in this test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use abide::faultproxy::FaultProxy;
use abide::proto::frame::{Down, Hello, Request, TtyModes, Up};
use abide::transport::quic::{self, Serve, ServerEndpoint, Target};

const CHUNK: usize = 1000;
const CHUNKS: u64 = 200;

/// Reads the hello, writes all the output, then answers every ping.
fn flood_then_pong() -> Serve {
    Arc::new(|mut rx, mut tx, unproved| {
        Box::pin(async move {
            let hello = rx.next_raw().await?.expect("a hello");
            abide::proto::frame::decode_hello(&hello)?;
            let _ = unproved.proved.send(());
            for i in 0..CHUNKS {
                tx.feed(&Down::Output {
                    offset: i * CHUNK as u64,
                    data: vec![b'x'; CHUNK],
                })
                .await?;
            }
            tx.flush().await?;
            while let Some(up) = rx.next::<Up>().await? {
                if let Up::Ping { nonce } = up {
                    tx.send(&Down::Pong { nonce }).await?;
                }
            }
            Ok(())
        })
    })
}

struct Seen {
    /// From the ping to its pong.
    rtt: Duration,
    /// Output bytes that arrived before the pong, and in all.
    before: u64,
    total: u64,
}

/// The server behind the fault proxy's bottleneck (2 Mbit/s, 50 ms each
/// way); the proxy lives as long as the returned handle.
async fn through_a_slow_link(server: &ServerEndpoint) -> (FaultProxy, Target) {
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .unwrap();
    proxy.shape(Some(2_000_000), Duration::from_millis(50));
    let target = Target {
        addr: proxy.addr(),
        fingerprint: server.fingerprint.clone(),
        grant_id: [1; 16],
        secret: [2; 32],
    };
    (proxy, target)
}

async fn ping_during_output(lanes: bool) -> Seen {
    let server = ServerEndpoint::start(flood_then_pong(), (0, 0)).unwrap();
    let (_proxy, target) = through_a_slow_link(&server).await;
    let mut link = quic::connect_lanes(&target, lanes).await.unwrap();
    link.tx.send(&Hello::new(Request::List)).await.unwrap();
    let (mut ping_at, mut rtt, mut before, mut total) = (None, None, 0, 0);
    let all = CHUNKS * CHUNK as u64;
    while total < all || rtt.is_none() {
        let frame = tokio::time::timeout(Duration::from_secs(30), link.rx.next::<Down>())
            .await
            .expect("frames keep coming")
            .unwrap()
            .expect("the link stays open");
        match frame {
            Down::Output { data, .. } => total += data.len() as u64,
            Down::Pong { nonce: 7 } => {
                rtt = ping_at.map(|t: Instant| t.elapsed());
                before = total;
            }
            f => panic!("unexpected {f:?}"),
        }
        // The output is flowing (and queued behind the bottleneck): ping.
        if ping_at.is_none() {
            ping_at = Some(Instant::now());
            link.tx.send(&Up::Ping { nonce: 7 }).await.unwrap();
        }
    }
    Seen {
        rtt: rtt.unwrap(),
        before,
        total,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pong_overtakes_output_in_flight() {
    let one = ping_during_output(false).await;
    let two = ping_during_output(true).await;
    for (name, s) in [("one stream", &one), ("control lane", &two)] {
        eprintln!(
            "2 Mbit/s, 100 ms RTT, {name}: pong after {:?}, {} of {} output bytes before it",
            s.rtt, s.before, s.total
        );
    }
    // One stream: the pong waits for all the output (the bottleneck queues).
    assert_eq!(one.before, one.total);
    // The control lane: it overtakes most of it.
    assert!(
        two.before < two.total / 2,
        "the pong came after {} of {} bytes of output",
        two.before,
        two.total
    );
}

/// Writes a control frame and output, then ends the channel with a detach
/// (dropping its writer finishes both streams).
fn output_then_detached() -> Serve {
    Arc::new(|mut rx, mut tx, unproved| {
        Box::pin(async move {
            rx.next_raw().await?.expect("a hello");
            let _ = unproved.proved.send(());
            tx.send(&Down::TtyModes(TtyModes::default())).await?;
            for i in 0..CHUNKS {
                tx.feed(&Down::Output {
                    offset: i * CHUNK as u64,
                    data: vec![b'x'; CHUNK],
                })
                .await?;
            }
            tx.send(&Down::Detached).await?;
            Ok(())
        })
    })
}

/// The control lane ends first (it has nothing queued): the link does not
/// end there, the detach behind the output still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_frame_behind_the_output_arrives_after_the_control_lane_ends() {
    let server = ServerEndpoint::start(output_then_detached(), (0, 0)).unwrap();
    let (_proxy, target) = through_a_slow_link(&server).await;
    let mut link = quic::connect(&target).await.unwrap();
    link.tx.send(&Hello::new(Request::List)).await.unwrap();
    let mut output = 0;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), link.rx.next::<Down>())
            .await
            .expect("frames keep coming")
            .unwrap();
        match frame {
            Some(Down::Output { data, .. }) => output += data.len() as u64,
            Some(Down::TtyModes(_)) => {}
            Some(Down::Detached) => break,
            f => panic!("{f:?} after {output} bytes of output, before the detach"),
        }
    }
    assert_eq!(output, CHUNKS * CHUNK as u64);
}
