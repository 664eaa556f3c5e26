//! A UDP relay on loopback that breaks the path on command: blackhole, random
//! loss in each direction, NAT rebinding (the server sees a new source port)
//! and roaming (the client's old address stops working altogether). Used by the
//! tests and by `abide demo`; it only ever binds and sends on loopback.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    server: SocketAddr,
    listen: Arc<UdpSocket>,
    faults: Mutex<Faults>,
    flows: Mutex<HashMap<SocketAddr, Flow>>,
    counters: Counters,
}

pub struct FaultProxy {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
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
        let shared = Arc::new(Shared {
            server,
            listen,
            faults: Mutex::new(Faults {
                rng: seed,
                ..Default::default()
            }),
            flows: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        });
        let task = tokio::spawn(relay_up(shared.clone()));
        Ok(FaultProxy { shared, task })
    }

    /// Where clients should send.
    pub fn addr(&self) -> SocketAddr {
        self.shared.listen.local_addr().expect("bound")
    }

    pub fn blackhole(&self, on: bool) {
        self.shared.faults.lock().unwrap().blackhole = on;
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

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }
}

async fn new_flow(shared: &Arc<Shared>, client: SocketAddr) -> Result<Flow> {
    let upstream = Arc::new(UdpSocket::bind((shared.server.ip(), 0)).await?);
    upstream.connect(shared.server).await?;
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
        let _ = upstream.send(&buf[..n]).await;
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
        let _ = shared.listen.send_to(&buf[..n], client).await;
    }
}
