//! A UDP relay on loopback that breaks the path on command: blackhole, random
//! loss in each direction, NAT rebinding (the server sees a new source port)
//! and roaming (the client's old address stops working altogether), and a
//! bottleneck (bandwidth limit with a bounded queue, and delay). Used by the
//! tests and by `abide demo`; it only ever binds and sends on loopback.
//! A one-way delay with jitter turns loopback into a slow link (see `Delayer`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Faults {
    blackhole: bool,
    /// Percent dropped, client → server and server → client.
    loss_up: u32,
    loss_down: u32,
    /// Client addresses that have "left" (roam): their packets go nowhere.
    gone: HashSet<SocketAddr>,
    rng: u64,
    /// One-way delay of every packet, each direction, plus up to ± jitter.
    delay: std::time::Duration,
    jitter: std::time::Duration,
}

impl Faults {
    fn roll(&mut self, pct: u32) -> bool {
        // xorshift64*: plenty for fault injection, no dependency.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 100 < pct as u64
    }
}

#[derive(Default)]
pub struct Counters {
    pub up: AtomicU64,
    pub down: AtomicU64,
    pub dropped: AtomicU64,
}

struct Flow {
    upstream: Arc<UdpSocket>,
    task: JoinHandle<()>,
}

struct Shared {
    /// Where new flows go (changes with [`FaultProxy::move_server`]).
    server: Mutex<SocketAddr>,
    listen: Arc<UdpSocket>,
    faults: Mutex<Faults>,
    flows: Mutex<HashMap<SocketAddr, Flow>>,
    counters: Counters,
    delayed: tokio::sync::mpsc::Sender<Delayed>,
    /// Bandwidth limits, client → server and server → client.
    shape_up: Bottleneck,
    shape_down: Bottleneck,
}

pub struct FaultProxy {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    delayer: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.delayer.abort();
        for (_, f) in self.shared.flows.lock().unwrap().drain() {
            f.task.abort();
        }
    }
}

impl FaultProxy {
    /// Relays from a fresh loopback port to `server` (which must be loopback).
    pub async fn start(server: SocketAddr) -> Result<FaultProxy> {
        if !server.ip().is_loopback() {
            bail!("the fault proxy only relays to loopback, not {server}");
        }
        let listen = Arc::new(
            UdpSocket::bind((server.ip(), 0))
                .await
                .context("fault proxy bind")?,
        );
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        let (delayed_tx, delayed_rx) = tokio::sync::mpsc::channel(MAX_DELAYED);
        let shared = Arc::new(Shared {
            server: Mutex::new(server),
            listen,
            faults: Mutex::new(Faults {
                rng: seed,
                ..Default::default()
            }),
            flows: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            delayed: delayed_tx,
            shape_up: Bottleneck::default(),
            shape_down: Bottleneck::default(),
        });
        let task = tokio::spawn(relay_up(shared.clone()));
        let delayer = tokio::spawn(run_delayer(shared.listen.clone(), delayed_rx));
        Ok(FaultProxy {
            shared,
            task,
            delayer,
        })
    }

    /// Where clients should send.
    pub fn addr(&self) -> SocketAddr {
        self.shared.listen.local_addr().expect("bound")
    }

    pub fn blackhole(&self, on: bool) {
        self.shared.faults.lock().unwrap().blackhole = on;
    }

    /// Every packet waits `delay` (± up to `jitter`, uniformly) in each
    /// direction: the round trip grows by twice `delay`. Without jitter the
    /// order is kept; with it packets may overtake each other, as on netem.
    pub fn delay(&self, delay: std::time::Duration, jitter: std::time::Duration) {
        let mut f = self.shared.faults.lock().unwrap();
        f.delay = delay;
        f.jitter = jitter;
    }

    pub fn loss(&self, pct: u32) {
        let mut f = self.shared.faults.lock().unwrap();
        f.loss_up = pct.min(100);
        f.loss_down = pct.min(100);
    }

    /// NAT rebinding: every flow gets a new upstream socket, so the server sees
    /// a new source port; replies to the old one are lost.
    pub async fn rebind(&self) -> Result<()> {
        let clients: Vec<SocketAddr> = self.shared.flows.lock().unwrap().keys().copied().collect();
        for c in clients {
            let flow = new_flow(&self.shared, c).await?;
            if let Some(old) = self.shared.flows.lock().unwrap().insert(c, flow) {
                old.task.abort();
            }
        }
        Ok(())
    }

    /// Roaming: the client's current addresses stop working in both
    /// directions; only a new socket of the client's gets through.
    pub fn roam(&self) {
        let mut flows = self.shared.flows.lock().unwrap();
        let mut f = self.shared.faults.lock().unwrap();
        for (c, flow) in flows.drain() {
            flow.task.abort();
            f.gone.insert(c);
        }
    }

    /// The server is reached at another address from now on (the same
    /// dual-stack server as ::1 instead of 127.0.0.1, say), and every flow
    /// moves there: the server sees its client arrive from the other family.
    pub async fn move_server(&self, server: SocketAddr) -> Result<()> {
        if !server.ip().is_loopback() {
            bail!("the fault proxy only relays to loopback, not {server}");
        }
        *self.shared.server.lock().unwrap() = server;
        self.rebind().await
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// A bottleneck in each direction: `bits_per_sec` (none: unlimited)
    /// with a queue of about 100 ms of it, then `one_way` delay.
    pub fn shape(&self, bits_per_sec: Option<u64>, one_way: Duration) {
        self.shared.shape_up.set(bits_per_sec);
        self.shared.shape_down.set(bits_per_sec);
        self.delay(one_way, Duration::ZERO);
    }
}

async fn new_flow(shared: &Arc<Shared>, client: SocketAddr) -> Result<Flow> {
    let server = *shared.server.lock().unwrap();
    let upstream = Arc::new(UdpSocket::bind((server.ip(), 0)).await?);
    upstream.connect(server).await?;
    let task = tokio::spawn(relay_down(shared.clone(), upstream.clone(), client));
    Ok(Flow { upstream, task })
}

async fn relay_up(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = shared.listen.recv_from(&mut buf).await else {
            return;
        };
        let drop_it = {
            let mut f = shared.faults.lock().unwrap();
            let loss = f.loss_up;
            f.blackhole || f.gone.contains(&from) || f.roll(loss)
        };
        if drop_it {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let existing = shared
            .flows
            .lock()
            .unwrap()
            .get(&from)
            .map(|f| f.upstream.clone());
        let upstream = match existing {
            Some(u) => u,
            None => match new_flow(&shared, from).await {
                Ok(flow) => {
                    let u = flow.upstream.clone();
                    shared.flows.lock().unwrap().insert(from, flow);
                    u
                }
                Err(_) => continue,
            },
        };
        shared.counters.up.fetch_add(1, Ordering::Relaxed);
        let due = match shared.shape_up.admit(n) {
            Some(depart) => shared.faults.lock().unwrap().due_after(depart),
            None => {
                shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        match due {
            Some(due) => delay(&shared, due, Dest::Up(upstream), &buf[..n]),
            None => {
                let _ = upstream.send(&buf[..n]).await;
            }
        }
    }
}

async fn relay_down(shared: Arc<Shared>, upstream: Arc<UdpSocket>, client: SocketAddr) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok(n) = upstream.recv(&mut buf).await else {
            return;
        };
        let drop_it = {
            let mut f = shared.faults.lock().unwrap();
            let loss = f.loss_down;
            f.blackhole || f.gone.contains(&client) || f.roll(loss)
        };
        if drop_it {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        shared.counters.down.fetch_add(1, Ordering::Relaxed);
        let due = match shared.shape_down.admit(n) {
            Some(depart) => shared.faults.lock().unwrap().due_after(depart),
            None => {
                shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        match due {
            Some(due) => delay(&shared, due, Dest::Down(client), &buf[..n]),
            None => {
                let _ = shared.listen.send_to(&buf[..n], client).await;
            }
        }
    }
}

/// Packets held back at most (a slow link's queue; beyond it they drop).
const MAX_DELAYED: usize = 10_000;

impl Faults {
    /// When a packet relayed now is due, if the link is delayed.
    fn due(&mut self) -> Option<tokio::time::Instant> {
        if self.delay.is_zero() && self.jitter.is_zero() {
            return None;
        }
        let j = self.jitter.as_micros() as i64;
        let offset = if j > 0 {
            self.roll(0); // advance the generator
            (self.rng >> 11) as i64 % (2 * j + 1) - j
        } else {
            0
        };
        let micros = (self.delay.as_micros() as i64 + offset).max(0) as u64;
        Some(tokio::time::Instant::now() + std::time::Duration::from_micros(micros))
    }
}

enum Dest {
    Up(Arc<UdpSocket>),
    Down(SocketAddr),
}

struct Delayed {
    due: tokio::time::Instant,
    dest: Dest,
    data: Vec<u8>,
}

fn delay(shared: &Shared, due: tokio::time::Instant, dest: Dest, data: &[u8]) {
    let item = Delayed {
        due,
        dest,
        data: data.to_vec(),
    };
    if shared.delayed.try_send(item).is_err() {
        shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends each held packet when it is due, earliest first (equal times in
/// arrival order).
async fn run_delayer(listen: Arc<UdpSocket>, mut rx: tokio::sync::mpsc::Receiver<Delayed>) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut heap: BinaryHeap<Reverse<(tokio::time::Instant, u64)>> = BinaryHeap::new();
    let mut items: HashMap<u64, Delayed> = HashMap::new();
    let mut n = 0u64;
    loop {
        let next = heap.peek().map(|Reverse((due, _))| *due);
        tokio::select! {
            item = rx.recv() => match item {
                Some(d) => {
                    n += 1;
                    heap.push(Reverse((d.due, n)));
                    items.insert(n, d);
                }
                None => return,
            },
            _ = async { tokio::time::sleep_until(next.unwrap()).await }, if next.is_some() => {
                while let Some(Reverse((due, k))) = heap.peek().copied() {
                    if due > tokio::time::Instant::now() {
                        break;
                    }
                    heap.pop();
                    if let Some(d) = items.remove(&k) {
                        let _ = match d.dest {
                            Dest::Up(u) => u.send(&d.data).await,
                            Dest::Down(c) => listen.send_to(&d.data, c).await,
                        };
                    }
                }
            }
        }
    }
}

/// A bottleneck link: a token bucket of `rate` bytes/s (one packet of
/// burst) in front of a bounded queue, as a slow access link with a buffer
/// behaves: packets beyond the queue are dropped, the rest leave at the
/// link's rate, in order. The delay (see [`FaultProxy::delay`]) comes after.
#[derive(Default)]
struct Bottleneck {
    state: Mutex<Shape>,
}

#[derive(Default)]
struct Shape {
    /// Bytes per second; `None`: unlimited.
    rate: Option<f64>,
    queue_bytes: f64,
    /// When the last admitted packet finishes leaving the bottleneck.
    busy_until: Option<tokio::time::Instant>,
}

impl Bottleneck {
    fn set(&self, bits_per_sec: Option<u64>) {
        let mut s = self.state.lock().unwrap();
        s.rate = bits_per_sec.map(|b| b as f64 / 8.0);
        s.queue_bytes = s.rate.map_or(0.0, |r| (r * 0.1).max(16.0 * 1024.0));
        s.busy_until = None;
    }

    /// When a packet of `len` bytes arriving now has left the bottleneck
    /// (`Some(None)`: at once, no limit), or `None`: the queue is full.
    fn admit(&self, len: usize) -> Option<Option<tokio::time::Instant>> {
        let mut s = self.state.lock().unwrap();
        let Some(rate) = s.rate else {
            return Some(None);
        };
        let now = tokio::time::Instant::now();
        let busy = s.busy_until.filter(|b| *b > now).unwrap_or(now);
        let queued = (busy - now).as_secs_f64() * rate;
        if queued + len as f64 > s.queue_bytes {
            return None;
        }
        let done = busy + Duration::from_secs_f64(len as f64 / rate);
        s.busy_until = Some(done);
        Some(Some(done))
    }
}

impl Faults {
    /// When a packet that leaves the bottleneck at `depart` (`None`: now)
    /// is due at the other end, if it is held back at all.
    fn due_after(&mut self, depart: Option<tokio::time::Instant>) -> Option<tokio::time::Instant> {
        let delayed = self.due();
        match (depart, delayed) {
            (None, d) => d,
            (Some(t), None) => Some(t),
            (Some(t), Some(d)) => {
                Some(t + d.saturating_duration_since(tokio::time::Instant::now()))
            }
        }
    }
}

/// A TCP relay on loopback for the ssh transport's tests: a blackhole holds
/// every byte in both directions (as a dead path does, until TCP gives up),
/// a reset kills every connection with RST, and a shape makes each direction
/// a slow link (a rate, a queue of about 100 ms of it that holds the sender
/// back when full, as TCP's flow control does, then a delay).
pub struct TcpFaultProxy {
    addr: SocketAddr,
    blackhole: tokio::sync::watch::Sender<bool>,
    resets: tokio::sync::watch::Sender<u64>,
    shape: tokio::sync::watch::Sender<Option<TcpShape>>,
    task: JoinHandle<()>,
}

/// A slow link for [`TcpFaultProxy::shape`].
#[derive(Clone, Copy, Debug)]
struct TcpShape {
    /// Bytes per second.
    rate: f64,
    one_way: Duration,
}

/// The pieces a shaped relay moves at once: about a packet.
const TCP_SHAPED_PIECE: usize = 1400;

impl Drop for TcpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.resets.send_modify(|g| *g += 1);
    }
}

impl TcpFaultProxy {
    pub async fn start(upstream: SocketAddr) -> Result<TcpFaultProxy> {
        if !upstream.ip().is_loopback() {
            bail!("the fault proxy only relays to loopback, not {upstream}");
        }
        let listener = tokio::net::TcpListener::bind((upstream.ip(), 0)).await?;
        let addr = listener.local_addr()?;
        let blackhole = tokio::sync::watch::channel(false).0;
        let resets = tokio::sync::watch::channel(0u64).0;
        let shape = tokio::sync::watch::channel(None).0;
        let (bh, rs, sh) = (blackhole.clone(), resets.clone(), shape.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (bh, rs, sh) = (bh.subscribe(), rs.subscribe(), *sh.borrow());
                tokio::spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(upstream).await {
                        tcp_relay(client, server, bh, rs, sh).await;
                    }
                });
            }
        });
        Ok(TcpFaultProxy {
            addr,
            blackhole,
            resets,
            shape,
            task,
        })
    }

    /// Connections made from now on cross a link of `bits_per_sec` each way
    /// (with a queue of about 100 ms of it), then `one_way` of delay.
    pub fn shape(&self, bits_per_sec: u64, one_way: Duration) {
        self.shape.send_replace(Some(TcpShape {
            rate: bits_per_sec as f64 / 8.0,
            one_way,
        }));
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn blackhole(&self, on: bool) {
        self.blackhole.send_replace(on);
    }

    /// Resets every connection open now.
    pub fn reset(&self) {
        self.resets.send_modify(|g| *g += 1);
    }
}

async fn tcp_relay(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    blackhole: tokio::sync::watch::Receiver<bool>,
    mut resets: tokio::sync::watch::Receiver<u64>,
    shape: Option<TcpShape>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Linger 0 makes a drop send RST: exactly the reset we want. (The
    // deprecation is about a non-zero linger blocking on drop; zero cannot.)
    #[allow(deprecated)]
    {
        let _ = client.set_linger(Some(std::time::Duration::ZERO));
        let _ = server.set_linger(Some(std::time::Duration::ZERO));
    }
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let pump = |mut r: tokio::net::tcp::OwnedReadHalf,
                mut w: tokio::net::tcp::OwnedWriteHalf,
                mut bh: tokio::sync::watch::Receiver<bool>| async move {
        let Some(shape) = shape else {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // Hold the bytes while the path is black-holed.
                if bh.wait_for(|b| !*b).await.is_err() {
                    break;
                }
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = w.shutdown().await;
            return;
        };
        // The link: pieces leave the bottleneck one after the other at the
        // rate, then arrive `one_way` later; the reader stops taking bytes
        // while the queue holds more than 100 ms of them.
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let deliver = async move {
            while let Some((due, piece)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                if bh.wait_for(|b| !*b).await.is_err() || w.write_all(&piece).await.is_err() {
                    break;
                }
            }
            let _ = w.shutdown().await;
        };
        let take = async move {
            let queue = Duration::from_millis(100);
            let mut free = tokio::time::Instant::now();
            let mut buf = vec![0u8; TCP_SHAPED_PIECE];
            loop {
                let now = tokio::time::Instant::now();
                if free > now + queue {
                    tokio::time::sleep_until(free - queue).await;
                }
                let n = match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                free = free.max(tokio::time::Instant::now())
                    + Duration::from_secs_f64(n as f64 / shape.rate);
                if tx.send((free + shape.one_way, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        };
        tokio::join!(take, deliver);
    };
    let up = pump(cr, sw, blackhole.clone());
    let down = pump(sr, cw, blackhole);
    resets.borrow_and_update();
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        // Dropping both sockets with linger 0 sends RST both ways.
        _ = resets.changed() => {}
    }
}
