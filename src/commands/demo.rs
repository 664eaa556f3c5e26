//! `abide demo`: a real session over QUIC through the built-in fault proxy on
//! loopback, with a private daemon, narrated on the status line. Needs no
//! remote host and no root.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::sync::mpsc;

use crate::cli::DemoArgs;
use crate::client::attach::{self, ClientIo, Outcome};
use crate::client::remote::QuicConnector;
use crate::client::tty;
use crate::faultproxy::FaultProxy;
use crate::proto::connect_line::ConnectLine;
use crate::proto::frame::Target;

/// A steady printer: one numbered line every 100 ms for `secs`, then a total.
fn program(secs: u64) -> String {
    let n = secs * 10;
    format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo \"demo line $i  $(date +%T)\"; sleep 0.1; done; \
         echo \"DEMO-END sent=$i\"; sleep 0.3"
    )
}

/// Counts what reached the terminal and the longest silence.
#[derive(Default)]
struct Tally {
    seen: std::collections::BTreeSet<u64>,
    duplicates: u64,
    partial: Vec<u8>,
    last: Option<Instant>,
    longest_stall: Duration,
}

impl Tally {
    fn feed(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        if let Some(t) = self.last {
            self.longest_stall = self.longest_stall.max(now - t);
        }
        self.last = Some(now);
        self.partial.extend_from_slice(bytes);
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(rest) = line.trim().strip_prefix("demo line ") {
                if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                    if !self.seen.insert(n) {
                        self.duplicates += 1;
                    }
                }
            }
        }
    }
}

pub async fn run(args: DemoArgs) -> Result<i32> {
    let dir = tempfile::Builder::new()
        .prefix("abide-demo-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("cannot make a temp dir")?;
    let rt = dir.path().to_path_buf();
    let total_secs = 6 + args.blackhole_s + 5 + args.loss_s + 4 + 6;
    let exe = std::env::current_exe().context("cannot find abide")?;
    // With --delay-ms: a shell to type into over the slow link, no faults.
    let program = match args.delay_ms {
        0 => program(total_secs),
        _ => "exec \"${SHELL:-sh}\" -i".to_string(),
    };
    let out = tokio::process::Command::new(&exe)
        .args([
            "server",
            "--bootstrap",
            "--udp-ports",
            "0",
            "--",
            "sh",
            "-c",
            &program,
        ])
        .env("ABIDE_RUNTIME_DIR", &rt)
        .output()
        .await
        .context("cannot start the demo server")?;
    if !out.status.success() {
        bail!(
            "the demo server failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line = ConnectLine::find(&String::from_utf8_lossy(&out.stdout))
        .context("no connect line from the demo server")??;
    let result = demo(&args, &line).await;
    // Stop the private daemon and its session, whatever happened.
    if let Ok(Some(mut link)) = crate::server::launch::connect_existing(&rt).await {
        let _ =
            crate::transport::unix::request(&mut link, crate::proto::frame::Request::KillServer)
                .await;
    }
    result
}

async fn demo(args: &DemoArgs, line: &ConnectLine) -> Result<i32> {
    let server = format!("127.0.0.1:{}", line.port).parse()?;
    let proxy = Arc::new(FaultProxy::start(server).await?);
    let target = crate::transport::quic::Target {
        addr: proxy.addr(),
        fingerprint: line.fingerprint.clone(),
        grant_id: line.grant_id,
        secret: line.secret,
    };
    let connector = Arc::new(QuicConnector { target });
    let (notice_tx, notice_rx) = mpsc::channel(8);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let t2 = tally.clone();
    let interactive = tty::is_tty();
    // The status line is gone once the demo ends; what it said is printed
    // again after, so the story stays on screen and in the scrollback.
    let narration: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
    let started = Instant::now();

    proxy.delay(Duration::from_millis(args.delay_ms), Duration::ZERO);
    let script = if args.delay_ms > 0 {
        let ms = args.delay_ms;
        tokio::spawn(async move {
            let _ = notice_tx
                .send(format!("abide demo: every packet waits {ms} ms each way (round trip {} ms); type: predicted keys show underlined at once. Ctrl-^ . quits", 2 * ms))
                .await;
        })
    } else {
        let narration = narration.clone();
        let proxy = proxy.clone();
        let (b, pct, loss_s) = (args.blackhole_s, args.loss_pct, args.loss_s);
        tokio::spawn(async move {
            let say = |s: String| {
                let tx = notice_tx.clone();
                narration
                    .lock()
                    .unwrap()
                    .push((started.elapsed(), s.clone()));
                async move {
                    if interactive {
                        let _ = tx.send(s).await;
                    } else {
                        eprintln!("\n{s}");
                    }
                }
            };
            let sleep = |s: u64| tokio::time::sleep(Duration::from_secs(s));
            say("abide demo: a program prints a line every 100 ms; faults start in 5 s. Ctrl-^ . quits".into()).await;
            sleep(5).await;
            say(format!(
                "abide demo: cutting the link for {b} s (blackhole)"
            ))
            .await;
            proxy.blackhole(true);
            sleep(b).await;
            proxy.blackhole(false);
            say("abide demo: link restored; every line printed meanwhile arrives now".into()).await;
            sleep(4).await;
            say(format!(
                "abide demo: dropping {pct}% of packets each way for {loss_s} s"
            ))
            .await;
            proxy.loss(pct);
            sleep(loss_s).await;
            proxy.loss(0);
            say("abide demo: loss over; now moving the client to a new port (roam)".into()).await;
            sleep(1).await;
            proxy.roam();
            sleep(3).await;
            say("abide demo: roamed; the program finishes in a few seconds".into()).await;
        })
    };

    let outcome = if interactive {
        let tap = Box::new(move |b: &[u8]| t2.lock().unwrap().feed(b));
        attach::run_tapped(
            connector,
            Target::Id(line.session_id),
            Some(notice_rx),
            Some(tap),
        )
        .await
    } else {
        let (_input_tx, input) = mpsc::channel(1);
        let io = ClientIo {
            input,
            output: Box::new(|b: &[u8]| attach::write_terminal(b)),
            size: Default::default(),
            terminal: false,
            notices: None,
            tap: Some(Box::new(move |b: &[u8]| t2.lock().unwrap().feed(b))),
        };
        attach::run_headless(connector, Target::Id(line.session_id), io).await
    };
    script.abort();
    let outcome = outcome?;
    if args.delay_ms > 0 {
        // A shell, not the line counter: no tally.
        return Ok(crate::client::terminal_contract::farewell(&outcome, |n| {
            n.to_string()
        }));
    }
    let t = tally.lock().unwrap();
    let received = t.seen.len() as u64;
    let sent = t.seen.iter().next_back().copied().unwrap_or(0);
    let missing = (1..=sent).filter(|n| !t.seen.contains(n)).count();
    eprintln!();
    if interactive {
        eprintln!("what the demo did (shown on the status line meanwhile):");
        for (at, said) in narration.lock().unwrap().iter() {
            let said = said.strip_prefix("abide demo: ").unwrap_or(said);
            eprintln!("  {:>5.1} s  {said}", at.as_secs_f64());
        }
    }
    eprintln!("abide demo summary:");
    eprintln!("  lines printed by the program: {sent}");
    eprintln!(
        "  lines received:               {received} ({missing} missing, {} duplicated)",
        t.duplicates
    );
    eprintln!(
        "  longest stall:                {:.1} s (the blackhole was {} s)",
        t.longest_stall.as_secs_f64(),
        args.blackhole_s
    );
    match outcome {
        Outcome::Exited { .. } => Ok(if missing == 0 && t.duplicates == 0 {
            0
        } else {
            1
        }),
        other => Ok(crate::client::terminal_contract::farewell(&other, |n| {
            n.to_string()
        })),
    }
}
