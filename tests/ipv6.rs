//! IPv6: a session over ::1, a host written as an IPv6 address, and a client
//! that the server sees move between 127.0.0.1 and ::1 (the fault proxy moves
//! its flows from one family to the other): the daemon's one dual-stack QUIC
//! socket answers both, and the session resumes without losing a byte.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use abide::client::remote::{resolve_udp, QuicConnector};
use abide::faultproxy::FaultProxy;
use common::remote::{bootstrap, check_exact, program, quic_target, start_client};
use common::{PtyClient, Rt, BIN};

const LINES: u32 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_over_ipv6_loopback() {
    let rt = Rt::new();
    let line = bootstrap(&rt, &program(40, 10));
    let addr: SocketAddr = format!("[::1]:{}", line.port).parse().unwrap();
    let conn = Arc::new(QuicConnector {
        target: quic_target(&line, addr),
    });
    let client = start_client(conn, line.session_id);
    // Typed before the program's `stty -echo`, the line would be echoed too.
    client.wait_for("LINE 1\r\n", Duration::from_secs(20)).await;
    client.type_line("over-v6").await;
    client
        .wait_for("LINE 40\r\n", Duration::from_secs(20))
        .await;
    check_exact(&client.finish().await, 40, &["over-v6"]);
}

#[tokio::test]
async fn a_host_written_as_an_ipv6_address_resolves_to_it() {
    let v6: SocketAddr = "[::1]:7".parse().unwrap();
    for dest in ["::1", "me@::1", "[::1]", "me@[::1]"] {
        assert_eq!(resolve_udp(dest, None, 7).await.unwrap(), v6, "{dest}");
    }
    // What ssh reached, from SSH_CONNECTION, wins over the name.
    assert_eq!(
        resolve_udp("me@somewhere.invalid", Some("::1"), 7)
            .await
            .unwrap(),
        v6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moving_between_ipv4_and_ipv6_resumes() {
    let rt = Rt::new();
    let line = bootstrap(&rt, &program(LINES, 20));
    let v4: SocketAddr = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let v6: SocketAddr = format!("[::1]:{}", line.port).parse().unwrap();
    let proxy = FaultProxy::start(v4).await.unwrap();
    let conn = Arc::new(QuicConnector {
        target: quic_target(&line, proxy.addr()),
    });
    let client = start_client(conn, line.session_id);
    client
        .wait_for("LINE 20\r\n", Duration::from_secs(20))
        .await;

    // The same connection now arrives from ::1 (QUIC migration to a new
    // path of the other family).
    proxy.move_server(v6).await.unwrap();
    client.type_line("typed-after-moving-to-v6").await;
    client
        .wait_for("GOT:typed-after-moving-to-v6", Duration::from_secs(20))
        .await;
    let took = client.time_to_next_output(Duration::from_secs(10)).await;
    eprintln!("127.0.0.1 -> ::1: next output after {took:?}");

    // Back to IPv4, and the client's old address is gone: a new connection
    // from a new socket resumes the session.
    proxy.move_server(v4).await.unwrap();
    proxy.roam();
    client.type_line("typed-after-roaming-to-v4").await;
    client
        .wait_for("GOT:typed-after-roaming-to-v4", Duration::from_secs(20))
        .await;

    client
        .wait_for(&format!("LINE {LINES}\r\n"), Duration::from_secs(30))
        .await;
    check_exact(
        &client.finish().await,
        LINES,
        &["typed-after-moving-to-v6", "typed-after-roaming-to-v4"],
    );
}

/// `abide me@::1` as a user types it: ssh to an IPv6 literal, then QUIC to it.
#[test]
fn abide_user_at_an_ipv6_address_connects() {
    let rt = Rt::new();
    // ssh [options] DEST COMMAND: the stand-in checks DEST and runs COMMAND.
    let ssh = rt.scratch().join("ssh");
    common::write_executable(
        &ssh,
        "#!/bin/sh\nfor cmd; do :; done\ncase \" $* \" in *' me@::1 '*) ;; *) echo \"fake ssh: $*\" >&2; exit 255;; esac\nexec sh -c \"$cmd\"\n",
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
        "me@::1",
        "--",
        "sh",
        "-c",
        "echo v6-$((6*7)); exec sleep 60",
    ]);
    let mut client = PtyClient::spawn(cmd, 24, 80);
    client.expect_str("v6-42");
    client.send(b"\x1e.");
    client.wait();
}
