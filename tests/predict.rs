//! Predictive echo as a user meets it: bash in a real PTY on a daemon, the
//! real attach driver, QUIC through the loopback fault proxy delaying every
//! packet 150 ms each way (a 300 ms round trip).
//!
//! "At once" is shown without a stopwatch: the link is cut after warming up,
//! so a key that appears can only have come from the prediction. The final
//! screen is compared with the one the program's bytes alone draw.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use abide::client::attach::{run_headless, ClientIo, Outcome};
use abide::client::remote::QuicConnector;
use abide::faultproxy::FaultProxy;
use abide::proto::frame::{Target, WinSize};
use common::remote::{bootstrap, quic_target};
use common::{screen_of, screen_rows, Rt};
use tokio::sync::mpsc;

const ROWS: u16 = 24;
const COLS: u16 = 80;
const SHELL: &str = "PS1='$ ' exec bash --norc --noprofile -i";

struct Session {
    _rt: Rt,
    proxy: FaultProxy,
    /// Everything written to the terminal (program bytes and overlay).
    shown: Arc<Mutex<Vec<u8>>>,
    /// The program's bytes only.
    program: Arc<Mutex<Vec<u8>>>,
    input: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<anyhow::Result<Outcome>>,
}

impl Session {
    async fn start() -> Session {
        let rt = Rt::new();
        let line = bootstrap(&rt, SHELL);
        let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
        let proxy = FaultProxy::start(server).await.unwrap();
        proxy.delay(Duration::from_millis(150), Duration::ZERO);
        let conn = Arc::new(QuicConnector {
            target: quic_target(&line, proxy.addr()),
        });
        let shown = Arc::new(Mutex::new(Vec::new()));
        let program = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (shown.clone(), program.clone());
        let (input, rx) = mpsc::channel(16);
        let io = ClientIo {
            input: rx,
            output: Box::new(move |b: &[u8]| {
                s.lock().unwrap().extend_from_slice(b);
                Ok(())
            }),
            size: WinSize {
                rows: ROWS,
                cols: COLS,
            },
            terminal: false,
            notices: None,
            tap: Some(Box::new(move |b: &[u8]| {
                p.lock().unwrap().extend_from_slice(b)
            })),
        };
        let task = tokio::spawn(run_headless(conn, Target::Id(line.session_id), io));
        Session {
            _rt: rt,
            proxy,
            shown,
            program,
            input,
            task,
        }
    }

    fn screen(&self) -> vt100::Parser {
        screen_of(&self.shown.lock().unwrap(), ROWS, COLS, 0)
    }

    fn program_screen(&self) -> vt100::Parser {
        screen_of(&self.program.lock().unwrap(), ROWS, COLS, 0)
    }

    async fn send(&self, bytes: &[u8]) {
        self.input.send(bytes.to_vec()).await.unwrap();
    }

    /// Waits until the terminal's screen satisfies `f`.
    async fn wait_screen(&self, what: &str, f: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        loop {
            let rows = screen_rows(&self.screen());
            if f(&rows) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what}: not on screen within 20 s:\n{}",
                rows.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Both screens (with and without the overlay) agree, cursor included.
    async fn settled_screens_agree(&self) {
        let start = Instant::now();
        loop {
            let (a, b) = (self.screen(), self.program_screen());
            if a.screen().contents_formatted() == b.screen().contents_formatted()
                && a.screen().cursor_position() == b.screen().cursor_position()
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the terminal shows what the program did not draw:\nshown:\n{}\nprogram:\n{}",
                screen_rows(&a).join("\n"),
                screen_rows(&b).join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) {
        self.send(b"exit\r").await;
        let outcome = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("client ends")
            .unwrap();
        assert!(
            matches!(outcome, Ok(Outcome::Exited { .. })),
            "the shell did not exit"
        );
    }
}

fn last_prompt_row(rows: &[String]) -> Option<&String> {
    rows.iter()
        .rev()
        .find(|r| r.as_str() == "$" || r.starts_with("$ "))
}

/// A command typed and answered: the link's RTT is measured and echo seen.
async fn warm_up(s: &Session) {
    s.wait_screen("the prompt", |r| last_prompt_row(r).is_some())
        .await;
    for (i, cmd) in ["echo warm-1", "echo warm-2"].iter().enumerate() {
        s.send(format!("{cmd}\r").as_bytes()).await;
        let want = format!("warm-{}", i + 1);
        s.wait_screen("the warm-up output", |r| {
            r.iter().any(|l| l == &want) && r.last().is_some_and(|_| true)
        })
        .await;
    }
    s.wait_screen("a fresh prompt", |r| {
        r.iter()
            .position(|l| l == "warm-2")
            .is_some_and(|i| r.get(i + 1).is_some_and(|p| p == "$"))
    })
    .await;
    s.settled_screens_agree().await;
    // A person reads the output before typing on.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_show_before_the_server_answers_and_the_screen_ends_as_drawn() {
    let s = Session::start().await;
    warm_up(&s).await;
    // Cut the link: nothing typed now can come back from the server.
    s.proxy.blackhole(true);
    for b in "echo predicted".bytes() {
        s.send(&[b]).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    s.wait_screen("the typed keys, shown locally", |r| {
        r.iter().any(|l| l == "$ echo predicted")
    })
    .await;
    assert!(
        !screen_rows(&s.program_screen())
            .iter()
            .any(|l| l.contains("predicted")),
        "the program cannot have drawn it yet"
    );
    s.proxy.blackhole(false);
    let enter = Instant::now();
    s.send(b"\r").await;
    s.wait_screen("the command's output", |r| {
        r.iter().any(|l| l == "predicted")
    })
    .await;
    // The program's answer takes the link's round trip (a lower bound: load
    // can only make it later).
    assert!(
        enter.elapsed() >= Duration::from_millis(290),
        "the link is not delayed: {:?}",
        enter.elapsed()
    );
    s.settled_screens_agree().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_prompt_never_echoes() {
    let s = Session::start().await;
    warm_up(&s).await;
    s.send(b"read -s -p 'Password: ' pw; echo \"L=${#pw}\"\r")
        .await;
    s.wait_screen("the password prompt", |r| {
        r.iter().any(|l| l.starts_with("Password:"))
    })
    .await;
    // The modes frame follows the prompt within one ~50 ms poll; a person
    // takes longer than that to start typing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mark = s.shown.lock().unwrap().len();
    for b in "hunter2".bytes() {
        s.send(&[b]).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    s.send(b"\r").await;
    s.wait_screen("the program's answer", |r| {
        r.iter().any(|l| l.ends_with("L=7"))
    })
    .await;
    let after = s.shown.lock().unwrap()[mark..].to_vec();
    // What reached the terminal as text (escape sequences taken out).
    let csi = regex::bytes::Regex::new(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-_])").unwrap();
    let text = String::from_utf8_lossy(&csi.replace_all(&after, &b""[..])).into_owned();
    for ch in ['h', 'u', 'n', 't', 'r'] {
        assert!(
            !text.contains(ch),
            "a password key reached the terminal: {text:?}"
        );
    }
    s.settled_screens_agree().await;
    s.finish().await;
}
