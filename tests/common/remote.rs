//! Remote sessions in-process: a real daemon (the binary, in an [`Rt`]), the
//! bootstrap as ssh would run it, and the real attach driver without a
//! terminal, so a test sees every byte the client would have shown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use abide::client::attach::{run_headless_handed, ClientIo, Outcome};
use abide::client::connector::Connector;
use abide::proto::frame::{Target, WinSize};
use abide::server::bootstrap::ConnectLine;
use tokio::sync::mpsc;

use super::Rt;

/// `abide server --bootstrap -- sh -c PROGRAM`, as ssh would run it remotely.
pub fn bootstrap(rt: &Rt, program: &str) -> ConnectLine {
    let out = rt
        .command(&[
            "server",
            "--bootstrap",
            "--udp-ports",
            "0",
            "--",
            "sh",
            "-c",
            program,
        ])
        .output()
        .expect("run bootstrap");
    assert!(
        out.status.success(),
        "bootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ConnectLine::find(&String::from_utf8_lossy(&out.stdout))
        .expect("connect line")
        .expect("parse")
}

/// Prints `LINE 1..=lines`, one every `interval_ms`; echoes each input line as
/// `GOT:<line>`; exits after the loop once it has read `end`.
pub fn program(lines: u32, interval_ms: u32) -> String {
    format!(
        "stty -echo; exec 3<&0; (while IFS= read -r l <&3; do echo \"GOT:$l\"; [ \"$l\" = end ] && break; done) & \
         i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo \"LINE $i\"; sleep {}; done; wait",
        interval_ms as f64 / 1000.0
    )
}

pub fn quic_target(
    line: &ConnectLine,
    via: std::net::SocketAddr,
) -> abide::transport::quic::Target {
    abide::transport::quic::Target {
        addr: via,
        fingerprint: line.fingerprint.clone(),
        grant_id: line.grant_id,
        secret: line.secret,
    }
}

/// The connector a test client uses for the session `line` granted: QUIC to
/// `udp` (a fault proxy, or the daemon's port), ssh as `ssh` runs
/// `server` on 127.0.0.1, per `choice`; its transport memory in the
/// test's scratch directory.
pub fn remote_connector(
    rt: &Rt,
    line: &ConnectLine,
    udp: std::net::SocketAddr,
    ssh: Vec<String>,
    server: &str,
    choice: abide::proto::policy::Choice,
) -> abide::client::remote::RemoteConnector {
    abide::client::remote::RemoteConnector::new(
        abide::client::remote::QuicConnector {
            target: quic_target(line, udp),
        },
        abide::transport::ssh_stdio::SshTarget {
            ssh,
            dest: "127.0.0.1".into(),
            server: server.into(),
        },
        choice,
        "test-host".into(),
        abide::client::transport_memory::TransportMemory::at(rt.scratch().join("transports.toml")),
    )
}

pub struct Client {
    pub output: Arc<Mutex<Vec<u8>>>,
    pub input: mpsc::Sender<Vec<u8>>,
    pub task: tokio::task::JoinHandle<anyhow::Result<Outcome>>,
}

pub fn start_client(conn: Arc<dyn Connector>, session_id: u64) -> Client {
    start_client_handed(conn, session_id, None)
}

/// [`start_client`] on a link that exists already (the bootstrap's ssh).
pub fn start_client_handed(
    conn: Arc<dyn Connector>,
    session_id: u64,
    handed: Option<abide::transport::framed::Link>,
) -> Client {
    let output = Arc::new(Mutex::new(Vec::new()));
    let sink = output.clone();
    let (input, rx) = mpsc::channel(16);
    let io = ClientIo {
        input: rx,
        output: Box::new(move |b: &[u8]| {
            sink.lock().unwrap().extend_from_slice(b);
            Ok(())
        }),
        size: WinSize { rows: 24, cols: 80 },
        terminal: false,
        notices: None,
        tap: None,
    };
    let task = tokio::spawn(run_headless_handed(
        conn,
        Target::Id(session_id),
        io,
        handed,
    ));
    Client {
        output,
        input,
        task,
    }
}

impl Client {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    pub async fn wait_for(&self, needle: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while !self.text().contains(needle) {
            assert!(
                start.elapsed() < within,
                "no {needle:?} within {within:?}; got:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    pub fn bytes_len(&self) -> usize {
        self.output.lock().unwrap().len()
    }

    /// Time until the output grows past its current length.
    pub async fn time_to_next_output(&self, within: Duration) -> Duration {
        let before = self.bytes_len();
        let start = Instant::now();
        while self.bytes_len() == before && start.elapsed() < within {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        start.elapsed()
    }

    pub async fn type_line(&self, s: &str) {
        self.input
            .send(format!("{s}\r").into_bytes())
            .await
            .unwrap();
    }

    /// Types `end`, waits for the program's exit and returns the client's bytes.
    pub async fn finish(self) -> String {
        self.type_line("end").await;
        let outcome = tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("client ends")
            .unwrap();
        match outcome {
            Ok(Outcome::Exited { code, .. }) => assert_eq!(code, 0),
            Ok(_) => panic!("client ended without the program's exit"),
            Err(e) => panic!("client failed: {e:#}"),
        }
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
}

/// The output must be exactly the program's lines, in order, once each, and
/// each typed line echoed exactly once.
/// `out` is exactly LINE 1..=lines, with each typed line's `GOT:` answer
/// somewhere in between, once, in the order typed.
pub fn check_exact(out: &str, lines: u32, typed: &[&str]) {
    let positions: Vec<usize> = typed
        .iter()
        .map(|t| out.find(&format!("GOT:{t}\r\n")).unwrap_or(usize::MAX))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "typed lines {typed:?} must arrive in order:\n{out}"
    );
    let mut rest = out.replacen("GOT:end\r\n", "", 1);
    for t in typed {
        let got_line = format!("GOT:{t}\r\n");
        assert_eq!(
            rest.matches(&got_line).count(),
            1,
            "typed line {t:?} must arrive once:\n{out}"
        );
        rest = rest.replacen(&got_line, "", 1);
    }
    let expected: String = (1..=lines).map(|i| format!("LINE {i}\r\n")).collect();
    assert!(
        rest == expected,
        "output differs from what the program wrote:\n{rest}"
    );
}
