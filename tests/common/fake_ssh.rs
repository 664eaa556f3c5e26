//! A stand-in for ssh and sshd: `ssh` is a small Python relay (written by the
//! test) that carries its stdin/stdout over TCP, through a fault proxy if the
//! test wants one, to a stand-in sshd that runs the remote command with
//! `sh -c`, as sshd would. Shared by the tests of the ssh transport.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::Rt;

/// `ssh [opts] DEST COMMAND` → connect to $FAKE_SSH_PORT, send COMMAND, relay.
/// Exits 255 when the connection breaks, as ssh does.
pub const FAKE_SSH: &str = r#"#!/usr/bin/env python3
import os, socket, sys, threading
try:
    s = socket.create_connection(("127.0.0.1", int(os.environ["FAKE_SSH_PORT"])), timeout=5)
    s.settimeout(None)
    s.sendall(sys.argv[-1].encode() + b"\n")
except OSError as e:
    sys.stderr.write("ssh: connect to host 127.0.0.1: %s\n" % e)
    sys.exit(255)
def up():
    try:
        while True:
            b = os.read(0, 65536)
            if not b:
                s.shutdown(socket.SHUT_WR)
                return
            s.sendall(b)
    except OSError:
        os._exit(255)
threading.Thread(target=up, daemon=True).start()
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        os.write(1, b)
except OSError:
    sys.stderr.write("Connection reset by peer\n")
    os._exit(255)
"#;

pub fn write_fake_ssh(rt: &Rt) -> PathBuf {
    let p = rt.scratch().join("fake-ssh");
    crate::common::write_executable(&p, FAKE_SSH);
    p
}

/// The stand-in sshd: one `sh -c COMMAND` per connection, stdio over the socket.
pub async fn fake_sshd(rt_dir: PathBuf) -> std::net::SocketAddr {
    fake_sshd_counted(rt_dir).await.0
}

/// [`fake_sshd`], counting its logins (connections).
pub async fn fake_sshd_counted(rt_dir: PathBuf) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let logins = Arc::new(AtomicUsize::new(0));
    let counter = logins.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let rt_dir = rt_dir.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let mut cmd = String::new();
                if r.read_line(&mut cmd).await.is_err() {
                    return;
                }
                let mut child = tokio::process::Command::new("sh")
                    .args(["-c", cmd.trim_end()])
                    .env("ABIDE_RUNTIME_DIR", &rt_dir)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                let mut cin = child.stdin.take().unwrap();
                let mut cout = child.stdout.take().unwrap();
                let up = async {
                    let r = tokio::io::copy(&mut r, &mut cin).await;
                    // ssh's stdin at its end: the command's too, as sshd does.
                    drop(cin);
                    r
                };
                let down = async {
                    let r = tokio::io::copy(&mut cout, &mut w).await;
                    let _ = w.shutdown().await;
                    r
                };
                tokio::pin!(down);
                // The connection breaking ends the session's ssh side, as with sshd.
                tokio::select! {
                    r = up => if r.is_ok() { let _ = (&mut down).await; },
                    _ = &mut down => {}
                }
            });
        }
    });
    (addr, logins)
}

/// `ssh`: the fake ssh, reaching the fake sshd through the proxy at `port`.
pub fn write_ssh_wrapper(rt: &Rt, port: u16) -> PathBuf {
    let fake = write_fake_ssh(rt);
    let wrapper = rt.scratch().join("ssh");
    crate::common::write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\nFAKE_SSH_PORT={port} exec python3 {} \"$@\"\n",
            fake.display()
        ),
    );
    wrapper
}
