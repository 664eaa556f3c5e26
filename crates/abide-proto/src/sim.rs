//! A deterministic simulated network for the client's resume core and link
//! policy: seeded loss and delay, blackholes, NAT rebinds, roams, UDP blocked
//! and unblocked mid-session, suspend (the monotonic clock stops, the world
//! does not), and combinations. No sockets, no sleeping: time is a number, so
//! every run of a seed is the same and the recovery bounds are exact.
//!
//! Modelled, per link: a reliable ordered stream (QUIC stream or TCP) whose
//! frames are retransmitted with a doubling timeout until the path lets one
//! through, delivered in order (head-of-line blocking). A QUIC handshake
//! retransmits its first flight like quinn does; an ssh attempt retries its
//! SYN like TCP, then spends a few round trips logging in. A rebind or roam
//! kills TCP flows; QUIC migrates (or, for some seeds, dies too). The server
//! side is the core's own `ServerChannel` (what to send, from offsets and
//! acks), `OutLog` and `InputDedup`, wired like `server/channel.rs` wires them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::frame::{Attached, Down, Hello, Request, Target, Up, WinSize};
use crate::input::InputDedup;
use crate::outlog::OutLog;
use crate::policy::{
    Action, AttemptId, Choice, Config, ConnectError, LinkPolicy, Notice, Transport,
};
use crate::resume::{ClientCore, Event, Timing};
use crate::server::{Action as Send, LogState, ServerChannel};

/// splitmix64: small, seeded, good enough for coin flips.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A change of the network at a moment of a scenario.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    Blackhole(bool),
    BlockUdp(bool),
    Loss(f64),
    /// The NAT forgets its mappings: TCP flows die, QUIC migrates.
    Rebind,
    /// The client's address changes: TCP flows die, QUIC migrates.
    Roam,
    /// The client sleeps this long: its monotonic clock stops, links idle out.
    Suspend(Duration),
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub choice: Choice,
    pub hint: Option<Transport>,
    pub one_way: Duration,
    pub faults: Vec<(Duration, Change)>,
    /// (moment, bound): from this moment, the client must hold every output
    /// byte produced up to it within the bound.
    pub recoveries: Vec<(Duration, Duration)>,
    pub duration: Duration,
    /// QUIC connections die on a rebind or roam instead of migrating.
    pub quic_dies_on_move: bool,
    /// The session starts on the bootstrap's own ssh connection, handed
    /// over as the first link (`LinkPolicy::handed_over`).
    pub handover: bool,
}

#[derive(Debug)]
pub struct Report {
    pub recovery: Vec<Duration>,
    pub final_transport: Option<Transport>,
    pub remembered: Vec<Transport>,
    pub starts: usize,
    /// ssh attempts started (each one an ssh login).
    pub ssh_starts: usize,
    /// Status-line notices, when (from the start of the run).
    pub notices: Vec<(Duration, Notice)>,
    pub max_in_flight: usize,
    pub max_ssh_in_flight: usize,
    /// When each link was adopted (from the start of the run), and its transport.
    pub adopted: Vec<(Duration, Transport)>,
}

struct Frame<T> {
    msg: T,
    next_try: Instant,
    rto: Duration,
    arrived: Option<Instant>,
}

struct Dir<T> {
    q: VecDeque<Frame<T>>,
}

impl<T> Dir<T> {
    fn new() -> Self {
        Dir { q: VecDeque::new() }
    }
    fn push(&mut self, msg: T, now: Instant, rto: Duration) {
        self.q.push_back(Frame {
            msg,
            next_try: now,
            rto,
            arrived: None,
        });
    }
}

enum UpMsg {
    Hello(Box<Hello>),
    Up(Up),
}

struct Link {
    id: AttemptId,
    transport: Transport,
    dead: bool,
    up: Dir<UpMsg>,
    down: Dir<Down>,
    chan: Option<ServerChannel>,
    last_delivery: Instant,
}

struct AttemptSim {
    id: AttemptId,
    transport: Transport,
    next_try: Instant,
    tries: u32,
    done_at: Option<Instant>,
    give_up_at: Instant,
}

const CLIENT: u64 = 77;
const SESSION: u64 = 5;
const CHUNK: usize = 4096;
const LINE_EVERY: Duration = Duration::from_millis(50);
const TYPE_EVERY: Duration = Duration::from_millis(137);
/// Links that deliver nothing for this long are gone (QUIC's idle timeout).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

struct World {
    rng: Rng,
    sc: Scenario,
    t0: Instant,
    now: Instant,
    /// Client clock = world clock - frozen (the monotonic clock stops in suspend).
    frozen: Duration,
    asleep_until: Option<Instant>,
    sleep_len: Duration,
    blackhole: bool,
    udp_blocked: bool,
    loss: f64,
    links: Vec<Link>,
    attempts: Vec<AttemptSim>,
    current: Option<AttemptId>,
    core: ClientCore,
    policy: LinkPolicy,
    log: OutLog,
    produced: Vec<(Instant, u64)>,
    dedup: InputDedup,
    applied: Vec<u8>,
    typed: Vec<u8>,
    shown: Vec<u8>,
    shown_at: Vec<(Instant, u64)>,
    next_line: Instant,
    line_no: u64,
    next_key: Instant,
    fault_i: usize,
    remembered: Vec<Transport>,
    starts: usize,
    ssh_starts: usize,
    notices: Vec<(Duration, Notice)>,
    max_in_flight: usize,
    max_ssh_in_flight: usize,
    adopted: Vec<(Duration, Transport)>,
}

impl World {
    fn cnow(&self) -> Instant {
        self.now - self.frozen
    }

    fn rtt(&self) -> Duration {
        self.sc.one_way * 2
    }

    fn path_ok(&self, transport: Transport) -> bool {
        !(self.blackhole || transport == Transport::Quic && self.udp_blocked)
    }

    fn through(&mut self, transport: Transport) -> bool {
        self.path_ok(transport) && !self.rng.chance(self.loss)
    }

    fn rto_for(&self, t: Transport) -> Duration {
        match t {
            Transport::Ssh => ms(200).max(self.rtt() * 2),
            _ => ms(30).max(self.rtt() * 3),
        }
    }

    /// Runs the client's reactions until nothing more happens at this instant.
    fn client_settle(&mut self) {
        if self.asleep_until.is_some() {
            return;
        }
        loop {
            let mut busy = false;
            let now = self.cnow();
            while let Some(a) = self.policy.poll_action() {
                busy = true;
                self.execute(a);
            }
            while let Some(e) = self.core.poll_event() {
                busy = true;
                match e {
                    Event::Write(b) => {
                        self.shown.extend_from_slice(&b);
                        self.shown_at.push((self.now, self.core.offset()));
                    }
                    Event::LinkQuiet => self.policy.link_quiet(now),
                    Event::LinkLost => self.policy.link_lost(now),
                    Event::LinkBack
                    | Event::Attached { .. }
                    | Event::Away(_)
                    | Event::SnapshotFollows => {}
                    Event::Exited { .. }
                    | Event::Detached
                    | Event::Error { .. }
                    | Event::GrantRefused => {
                        panic!("session ended in the simulation: {e:?}")
                    }
                }
            }
            if let Some(i) = self.link_index(self.current) {
                let rto = self.rto_for(self.links[i].transport);
                while let Some(f) = self.core.poll_transmit() {
                    busy = true;
                    self.links[i].up.push(UpMsg::Up(f), self.now, rto);
                }
            }
            if !busy {
                break;
            }
        }
    }

    fn link_index(&self, id: Option<AttemptId>) -> Option<usize> {
        let id = id?;
        self.links.iter().position(|l| l.id == id)
    }

    fn execute(&mut self, a: Action) {
        if std::env::var("SIMDBG").is_ok() {
            eprintln!("{:?} {a:?}", self.now - self.t0);
        }
        let now = self.cnow();
        match a {
            Action::Start { id, transport, .. } => {
                self.starts += 1;
                if transport == Transport::Ssh {
                    self.ssh_starts += 1;
                }
                let timeout = match transport {
                    Transport::Ssh => Duration::from_secs(5), // ssh's ConnectTimeout
                    _ => Duration::from_secs(3600),
                };
                self.attempts.push(AttemptSim {
                    id,
                    transport,
                    next_try: self.now,
                    tries: 0,
                    done_at: None,
                    give_up_at: self.now + timeout,
                });
                self.max_in_flight = self.max_in_flight.max(self.attempts.len());
                let ssh = self
                    .attempts
                    .iter()
                    .filter(|a| a.transport == Transport::Ssh)
                    .count();
                self.max_ssh_in_flight = self.max_ssh_in_flight.max(ssh);
            }
            Action::Cancel { id } => {
                self.attempts.retain(|a| a.id != id);
                self.links.retain(|l| l.id != id);
            }
            Action::Adopt { id, transport } => {
                self.adopted.push((self.now - self.t0, transport));
                // The previous link is dropped; the new one gets the hello.
                let old = self.current.replace(id);
                self.links.retain(|l| Some(l.id) != old || l.id == id);
                let i = self
                    .link_index(Some(id))
                    .expect("adopted a link that exists");
                let timing = match transport {
                    Transport::Ssh => Timing::SSH,
                    Transport::Quic => Timing::QUIC,
                    Transport::Local => Timing::LOCAL,
                };
                self.core.set_timing(timing);
                let hello = self.core.hello(now);
                self.core.link_up(now);
                let rto = self.rto_for(transport);
                self.links[i]
                    .up
                    .push(UpMsg::Hello(Box::new(hello)), self.now, rto);
            }
            Action::Notice(n) => self.notices.push((self.now - self.t0, n)),
            Action::Remember(t) => self.remembered.push(t),
            Action::GiveUp(e) => panic!("gave up: {e}"),
            Action::Rebootstrap => panic!("no grant expires in the simulation"),
        }
    }

    fn attempts_step(&mut self) {
        let now = self.now;
        let mut finished = Vec::new();
        let mut failed = Vec::new();
        for i in 0..self.attempts.len() {
            let (transport, next_try, done_at, give_up_at) = {
                let a = &self.attempts[i];
                (a.transport, a.next_try, a.done_at, a.give_up_at)
            };
            if let Some(d) = done_at {
                if now >= d {
                    finished.push(i);
                }
                continue;
            }
            if now >= give_up_at {
                failed.push(i);
                continue;
            }
            if now < next_try {
                continue;
            }
            let ok = self.through(transport) && self.through(transport);
            let a = &mut self.attempts[i];
            a.tries += 1;
            if ok {
                let rtt = self.sc.one_way * 2;
                let mut took = rtt * 2;
                if transport == Transport::Ssh {
                    // TCP handshake, key exchange, auth, the remote abide starting.
                    took = rtt * 6 + ms(150);
                }
                a.done_at = Some(now + took);
            } else {
                a.next_try = match transport {
                    // quinn: the first flight again after 0.3, 0.6, 1.2 s...
                    Transport::Quic => now + ms(300) * (1 << (a.tries - 1).min(4)),
                    // TCP SYN: 1, 2, 4 s.
                    _ => now + Duration::from_secs(1 << (a.tries - 1).min(3)),
                };
            }
        }
        let cnow = self.cnow();
        for &i in finished.iter().rev() {
            let a = self.attempts.remove(i);
            self.links.push(Link {
                id: a.id,
                transport: a.transport,
                dead: false,
                up: Dir::new(),
                down: Dir::new(),
                chan: None,
                last_delivery: now,
            });
            self.policy.attempt_succeeded(a.id, cnow);
        }
        for &i in failed.iter().rev() {
            let a = self.attempts.remove(i);
            self.policy
                .attempt_failed(a.id, ConnectError::Timeout, cnow);
        }
    }

    /// Moves frames: retransmits, arrivals in order, the server's answers.
    fn links_step(&mut self) {
        let now = self.now;
        let mut to_client: Vec<(AttemptId, Down)> = Vec::new();
        for i in 0..self.links.len() {
            let t = self.links[i].transport;
            let ok_path = !self.links[i].dead && self.path_ok(t);
            let net = NetNow {
                now,
                ok_path,
                loss: self.loss,
                one_way: self.sc.one_way,
                base_rto: self.rto_for(t),
                max_rto: if t == Transport::Ssh {
                    Duration::from_secs(60)
                } else {
                    Duration::from_secs(2)
                },
            };
            let ups = tick_dir(&mut self.links[i].up, &net, &mut self.rng);
            // A sleeping client reads nothing: its frames wait (or the link dies).
            let downs = if self.asleep_until.is_none() {
                tick_dir(&mut self.links[i].down, &net, &mut self.rng)
            } else {
                Vec::new()
            };
            if !ups.is_empty() || !downs.is_empty() {
                self.links[i].last_delivery = now;
            }
            if now.saturating_duration_since(self.links[i].last_delivery) > IDLE_TIMEOUT {
                self.links[i].dead = true;
            }
            for m in ups {
                self.server_receive(i, m);
            }
            let id = self.links[i].id;
            to_client.extend(downs.into_iter().map(|d| (id, d)));
        }
        for i in 0..self.links.len() {
            self.server_pump(i);
        }
        let cnow = self.cnow();
        for (id, d) in to_client {
            if Some(id) != self.current {
                continue; // an old link: the client dropped it
            }
            if let Err(e) = self.core.on_frame(d, cnow) {
                panic!("protocol error in the simulation: {e}");
            }
            self.policy.heard(cnow);
            self.client_settle();
        }
    }

    fn server_receive(&mut self, i: usize, m: UpMsg) {
        let rto = self.rto_for(self.links[i].transport);
        let now = self.now;
        match m {
            UpMsg::Hello(h) => {
                let Request::Attach(a) = h.request else {
                    panic!("not an attach")
                };
                assert_eq!(a.client_id, CLIENT);
                let start = match a.resume {
                    Some(r) if r.session_id == SESSION => {
                        assert!(r.offset <= self.log.end());
                        r.offset
                    }
                    _ => 0,
                };
                // A new channel for this client retires the others.
                for l in self.links.iter_mut() {
                    l.chan = None;
                }
                let l = &mut self.links[i];
                let mut chan = ServerChannel::new(start, now);
                // No terminal model here: the byte stream only.
                chan.set_adaptive(false);
                l.chan = Some(chan);
                l.down.push(
                    Down::Attached(Attached {
                        session_id: SESSION,
                        name: "sim".into(),
                        input_acked: self.dedup.applied(CLIENT),
                        start_offset: start,
                    }),
                    now,
                    rto,
                );
            }
            UpMsg::Up(u) => {
                if self.links[i].chan.is_none() {
                    return; // retired channel
                }
                match u {
                    Up::Input { seq, data } => {
                        if self.dedup.accept(CLIENT, seq) {
                            self.applied.extend_from_slice(&data);
                        }
                        self.links[i].down.push(Down::InputAck { seq }, now, rto);
                    }
                    Up::Ack { offset } => {
                        self.links[i].chan.as_mut().unwrap().on_ack(offset, now);
                    }
                    Up::Ping { nonce } => self.links[i].down.push(Down::Pong { nonce }, now, rto),
                    Up::Resize(_) => {}
                    Up::Detach => panic!("detach in the simulation"),
                    Up::ExitSeen => {}
                }
            }
        }
    }

    /// The server channel core decides what to send; this sends it.
    fn server_pump(&mut self, i: usize) {
        let rto = self.rto_for(self.links[i].transport);
        let now = self.now;
        let log = LogState {
            start: self.log.start(),
            end: self.log.end(),
            exited: None,
            modelled: 0,
        };
        let l = &mut self.links[i];
        let Some(c) = l.chan.as_mut() else { return };
        while let Some(action) = c.poll(log, CHUNK, now) {
            match action {
                Send::Output { offset, len } => {
                    let data = self
                        .log
                        .read_vec(offset, len)
                        .expect("the simulation's log keeps everything");
                    l.down.push(Down::Output { offset, data }, now, rto);
                }
                other => panic!("unexpected server action in the simulation: {other:?}"),
            }
        }
    }

    fn apply(&mut self, c: Change) {
        match c {
            Change::Blackhole(b) => self.blackhole = b,
            Change::BlockUdp(b) => self.udp_blocked = b,
            Change::Loss(p) => self.loss = p,
            Change::Rebind | Change::Roam => {
                let quic_dies = self.sc.quic_dies_on_move;
                for l in self.links.iter_mut() {
                    if l.transport == Transport::Ssh || quic_dies {
                        l.dead = true;
                    }
                }
            }
            Change::Suspend(d) => {
                self.asleep_until = Some(self.now + d);
                self.sleep_len = d;
                for l in self.links.iter_mut() {
                    if d >= IDLE_TIMEOUT {
                        l.dead = true;
                    }
                }
            }
        }
    }

    /// The next instant anything is due.
    fn next_event(&self) -> Instant {
        let mut t = self.t0 + self.sc.duration;
        let mut at = |x: Instant| {
            if x < t {
                t = x
            }
        };
        if let Some(w) = self.asleep_until {
            at(w);
        } else {
            if let Some(p) = self.policy.poll_timeout() {
                at(p + self.frozen);
            }
            at(self.core.poll_timeout() + self.frozen);
            at(self.next_key);
        }
        at(self.next_line);
        if let Some((d, _)) = self.sc.faults.get(self.fault_i) {
            at(self.t0 + *d);
        }
        for a in self.attempts.iter().filter(|_| self.asleep_until.is_none()) {
            at(a.done_at.unwrap_or(a.next_try.min(a.give_up_at)));
        }
        // Arrived frames behind a missing one wait for it (head-of-line).
        let now = self.now;
        fn due<T>(f: &Frame<T>, now: Instant) -> Option<Instant> {
            match f.arrived {
                Some(a) if a > now => Some(a),
                Some(_) => None,
                None => Some(f.next_try),
            }
        }
        for l in &self.links {
            for f in l.up.q.iter().take(64) {
                if let Some(x) = due(f, now) {
                    at(x);
                }
            }
            if self.asleep_until.is_none() {
                for f in l.down.q.iter().take(64) {
                    if let Some(x) = due(f, now) {
                        at(x);
                    }
                }
            }
        }
        t.max(self.now)
    }

    fn run(mut self) -> Report {
        let end = self.t0 + self.sc.duration;
        // Production and typing stop early enough for the last bytes to arrive.
        let quiet_from = end - Duration::from_secs(8);
        if self.sc.handover {
            // The bootstrap's ssh, logged in already, goes on as a link.
            let id = self.policy.handed_over(Transport::Ssh, self.cnow());
            self.links.push(Link {
                id,
                transport: Transport::Ssh,
                dead: false,
                up: Dir::new(),
                down: Dir::new(),
                chan: None,
                last_delivery: self.now,
            });
        } else {
            self.policy.connect(self.cnow());
        }
        self.client_settle();
        let mut steps = 0u64;
        while self.now < end {
            steps += 1;
            assert!(steps < 5_000_000, "simulation does not advance");
            let next = self.next_event();
            // Equal instants still make progress: every step handles what is due.
            self.now = next.max(self.now);
            while let Some((d, c)) = self.sc.faults.get(self.fault_i).copied() {
                if self.t0 + d > self.now {
                    break;
                }
                self.fault_i += 1;
                self.apply(c);
            }
            if let Some(w) = self.asleep_until {
                if self.now >= w {
                    // The wall clock jumped; the monotonic one did not move.
                    self.frozen += self.sleep_len;
                    self.asleep_until = None;
                    let cnow = self.cnow();
                    self.policy.network_changed(None, cnow);
                    self.client_settle();
                }
            }
            if self.now >= self.next_line {
                if self.now < quiet_from {
                    self.line_no += 1;
                    self.log
                        .append(format!("LINE {}\n", self.line_no).as_bytes());
                    self.produced.push((self.now, self.log.end()));
                }
                self.next_line += LINE_EVERY;
            }
            if self.asleep_until.is_none() {
                if self.now >= self.next_key {
                    if self.now < quiet_from {
                        let k = format!("k{}\r", self.rng.below(1000));
                        self.typed.extend_from_slice(k.as_bytes());
                        self.core.user_input(k.as_bytes());
                    }
                    self.next_key += TYPE_EVERY;
                }
                let cnow = self.cnow();
                if self.policy.poll_timeout().is_some_and(|p| p <= cnow) {
                    self.policy.handle_timeout(cnow);
                }
                if self.core.poll_timeout() <= cnow {
                    self.core.handle_timeout(cnow);
                }
                self.client_settle();
            }
            if self.asleep_until.is_none() {
                self.attempts_step();
                self.client_settle();
            }
            self.links_step();
            self.client_settle();
            self.max_in_flight = self.max_in_flight.max(self.policy.attempts_in_flight());
        }
        self.check()
    }

    fn check(self) -> Report {
        if std::env::var("SIMDBG").is_ok() {
            eprintln!("faults {:?}\nadopted {:?}", self.sc.faults, self.adopted);
            for (t, o) in &self.shown_at {
                eprintln!("shown {:?} {o}", *t - self.t0);
            }
            for (t, o) in &self.produced {
                eprintln!("produced {:?} {o}", *t - self.t0);
            }
        }
        let sent = self.log.read_vec(0, usize::MAX).unwrap();
        assert_eq!(
            self.shown.len(),
            sent.len(),
            "the client shows {} of {} bytes written",
            self.shown.len(),
            sent.len()
        );
        assert!(
            self.shown == sent,
            "the bytes shown differ from the bytes written"
        );
        assert!(
            self.applied == self.typed,
            "input applied ({} bytes) is not the input typed ({} bytes), exactly once",
            self.applied.len(),
            self.typed.len()
        );
        let mut recovery = Vec::new();
        for (from, bound) in &self.sc.recoveries {
            let r = self.t0 + *from;
            let need = self
                .produced
                .iter()
                .take_while(|(t, _)| *t <= r)
                .last()
                .map_or(0, |p| p.1);
            let got = self
                .shown_at
                .iter()
                .find(|(t, off)| *t >= r && *off >= need)
                .or_else(|| self.shown_at.iter().find(|(_, off)| *off >= need))
                .map(|(t, _)| t.saturating_duration_since(r))
                .expect("the output before the fault never arrived");
            assert!(
                got <= *bound,
                "recovery from {from:?} took {got:?}, over the bound {bound:?}; links adopted: {:?}",
                self.adopted
            );
            recovery.push(got);
        }
        Report {
            recovery,
            final_transport: self.policy.current(),
            remembered: self.remembered,
            starts: self.starts,
            max_in_flight: self.max_in_flight,
            max_ssh_in_flight: self.max_ssh_in_flight,
            adopted: self.adopted,
            ssh_starts: self.ssh_starts,
            notices: self.notices,
        }
    }
}

struct NetNow {
    now: Instant,
    ok_path: bool,
    loss: f64,
    one_way: Duration,
    base_rto: Duration,
    max_rto: Duration,
}

/// Retransmits what is due and hands out, in order, what has arrived.
fn tick_dir<T>(d: &mut Dir<T>, n: &NetNow, rng: &mut Rng) -> Vec<T> {
    for f in d.q.iter_mut().take(64) {
        if f.arrived.is_none() && n.now >= f.next_try {
            if n.ok_path && !rng.chance(n.loss) {
                f.arrived = Some(n.now + n.one_way);
            } else {
                f.next_try = n.now + f.rto;
                f.rto = (f.rto * 2).min(n.max_rto);
            }
        }
    }
    // Something got through: the sender's timer resets and what waits goes
    // now (ack clocking), instead of each frame sitting out its own backoff.
    if d.q
        .iter()
        .take(64)
        .any(|f| f.arrived == Some(n.now + n.one_way))
    {
        for f in d.q.iter_mut().take(64).filter(|f| f.arrived.is_none()) {
            f.next_try = f.next_try.min(n.now + n.one_way);
            f.rto = n.base_rto;
        }
    }
    let mut out = Vec::new();
    while d
        .q
        .front()
        .is_some_and(|f| f.arrived.is_some_and(|a| a <= n.now))
    {
        out.push(d.q.pop_front().unwrap().msg);
    }
    out
}

/// Runs one scenario with one seed.
pub fn run(sc: &Scenario, seed: u64) -> Report {
    let t0 = Instant::now();
    let cfg = Config::remote(sc.choice, sc.hint);
    let timing = match sc.choice {
        Choice::Only(Transport::Ssh) => Timing::SSH,
        _ => Timing::QUIC,
    };
    let mut rng = Rng(seed);
    // Start the clocks at a seeded phase so faults hit every part of a cycle.
    let phase = ms(rng.below(250));
    let w = World {
        rng,
        sc: sc.clone(),
        t0,
        now: t0,
        frozen: Duration::ZERO,
        asleep_until: None,
        sleep_len: Duration::ZERO,
        blackhole: false,
        udp_blocked: false,
        loss: 0.0,
        links: Vec::new(),
        attempts: Vec::new(),
        current: None,
        core: ClientCore::new(
            CLIENT,
            Target::Existing(None),
            WinSize::default(),
            timing,
            t0,
        ),
        policy: LinkPolicy::new(cfg, t0),
        log: OutLog::new(64 << 20),
        produced: Vec::new(),
        dedup: InputDedup::default(),
        applied: Vec::new(),
        typed: Vec::new(),
        shown: Vec::new(),
        shown_at: Vec::new(),
        next_line: t0 + phase,
        line_no: 0,
        next_key: t0 + ms(500) + phase,
        fault_i: 0,
        remembered: Vec::new(),
        starts: 0,
        max_in_flight: 0,
        max_ssh_in_flight: 0,
        adopted: Vec::new(),
        ssh_starts: 0,
        notices: Vec::new(),
    };
    w.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn base(choice: Choice) -> Scenario {
        Scenario {
            choice,
            hint: None,
            one_way: ms(5),
            faults: Vec::new(),
            recoveries: Vec::new(),
            duration: s(30),
            quic_dies_on_move: false,
            handover: false,
        }
    }

    /// The policy's own bound for QUIC: one retry interval, a handshake (two
    /// round trips) and the resume (one more), plus one line period for the
    /// output to exist.
    fn quic_bound(one_way: Duration) -> Duration {
        let cfg = Config::remote(Choice::Race, None);
        cfg.quic_retry + one_way * 6 + LINE_EVERY
    }

    fn seeds(n: u64, f: impl Fn(u64)) {
        for seed in 0..n {
            let seed = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ seed;
            if std::env::var("SIMSEED").is_ok_and(|s| s != seed.to_string()) {
                continue;
            }
            if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed))) {
                eprintln!("failing seed: {seed}");
                std::panic::resume_unwind(e);
            }
        }
    }

    fn never_blocked(r: &Report) {
        assert!(
            !r.remembered.contains(&Transport::Ssh),
            "recorded UDP as blocked: {:?}",
            r.remembered
        );
    }

    #[test]
    fn a_quiet_network_delivers_everything_over_quic() {
        seeds(20, |seed| {
            let r = run(&base(Choice::Race), seed);
            assert_eq!(r.final_transport, Some(Transport::Quic));
            assert_eq!(r.adopted.len(), 1, "{:?}", r.adopted);
        });
    }

    #[test]
    fn blackhole_recovers_within_the_probe_bound_whatever_its_length() {
        for len in [3, 30, 120] {
            seeds(40, |seed| {
                let mut sc = base(Choice::Race);
                sc.duration = s(len + 20);
                sc.faults = vec![
                    (s(5), Change::Blackhole(true)),
                    (s(5 + len), Change::Blackhole(false)),
                ];
                sc.recoveries = vec![(s(5 + len), quic_bound(sc.one_way))];
                let r = run(&sc, seed);
                assert!(r.recovery[0] <= ms(300), "{:?}", r.recovery);
                assert_eq!(r.final_transport, Some(Transport::Quic));
                never_blocked(&r);
                // Bounded traffic while disconnected: attempts capped, paced.
                let cfg = Config::remote(Choice::Race, None);
                assert!(r.max_in_flight <= cfg.max_quic_in_flight + cfg.max_ssh_in_flight);
                let per_s = 1.0 / cfg.quic_retry.as_secs_f64()
                    + 1.0 / cfg.ssh_retry_as_fallback.as_secs_f64();
                assert!(
                    (r.starts as f64) <= per_s * len as f64 + 10.0,
                    "{} starts",
                    r.starts
                );
            });
        }
    }

    #[test]
    fn rebind_and_roam_recover_fast_with_or_without_quic_migration() {
        for change in [Change::Rebind, Change::Roam] {
            for dies in [false, true] {
                seeds(40, |seed| {
                    let mut sc = base(Choice::Race);
                    sc.quic_dies_on_move = dies;
                    sc.faults = vec![(s(8), change)];
                    let timing = Timing::QUIC;
                    let bound = if dies {
                        timing.quiet_after + quic_bound(sc.one_way)
                    } else {
                        quic_bound(sc.one_way)
                    };
                    sc.recoveries = vec![(s(8), bound)];
                    let r = run(&sc, seed);
                    if !dies {
                        assert!(r.recovery[0] <= ms(300), "{:?}", r.recovery);
                    }
                    assert_eq!(r.final_transport, Some(Transport::Quic));
                    never_blocked(&r);
                });
            }
        }
    }

    #[test]
    fn udp_blocked_from_the_start_runs_over_ssh_and_recovers_within_a_second() {
        for change in [None, Some(Change::Rebind), Some(Change::Roam)] {
            seeds(30, |seed| {
                let mut sc = base(Choice::Race);
                sc.duration = s(60);
                sc.faults = vec![(ms(0), Change::BlockUdp(true))];
                match change {
                    // One login gate (no crowd of ssh logins) plus one login.
                    None => {
                        let cfg = Config::remote(Choice::Race, None);
                        let login = sc.one_way * 12 + ms(150);
                        sc.faults.push((s(10), Change::Blackhole(true)));
                        sc.faults.push((s(40), Change::Blackhole(false)));
                        sc.recoveries = vec![(s(40), cfg.ssh_login + login + LINE_EVERY)];
                    }
                    Some(c) => {
                        sc.faults.push((s(10), c));
                        sc.recoveries = vec![(s(10), s(1))];
                    }
                }
                let r = run(&sc, seed);
                assert_eq!(r.final_transport, Some(Transport::Ssh));
                // The first link: one ssh login, no QUIC timeout waited for.
                let (at, t) = r.adopted[0];
                assert_eq!(t, Transport::Ssh);
                assert!(
                    at <= ms(250) + sc.one_way * 12 + ms(150),
                    "first link at {at:?}"
                );
            });
        }
    }

    #[test]
    fn udp_unblocked_mid_session_moves_to_quic_within_seconds() {
        seeds(50, |seed| {
            let mut sc = base(Choice::Race);
            sc.faults = vec![
                (ms(0), Change::BlockUdp(true)),
                (s(10), Change::BlockUdp(false)),
            ];
            let r = run(&sc, seed);
            assert_eq!(r.final_transport, Some(Transport::Quic));
            let moved = r
                .adopted
                .iter()
                .find(|(t, tr)| *t >= s(10) && *tr == Transport::Quic)
                .expect("moved to QUIC")
                .0;
            let cfg = Config::remote(Choice::Race, None);
            assert!(
                moved - s(10) <= cfg.upgrade_every + ms(700),
                "moved after {:?}",
                moved - s(10)
            );
        });
    }

    #[test]
    fn udp_blocked_mid_session_falls_back_then_records_it() {
        seeds(50, |seed| {
            let mut sc = base(Choice::Race);
            sc.faults = vec![(s(8), Change::BlockUdp(true))];
            let cfg = Config::remote(Choice::Race, None);
            let bound =
                Timing::QUIC.quiet_after + cfg.ssh_after + sc.one_way * 16 + ms(150) + LINE_EVERY;
            sc.recoveries = vec![(s(8), bound)];
            let r = run(&sc, seed);
            assert_eq!(r.final_transport, Some(Transport::Ssh));
            // Whole handshakes timing out while TCP works: that is a blocked network.
            assert_eq!(r.remembered.last(), Some(&Transport::Ssh));
        });
    }

    #[test]
    fn a_stale_ssh_hint_costs_nothing_when_udp_works() {
        seeds(50, |seed| {
            let mut sc = base(Choice::Race);
            sc.hint = Some(Transport::Ssh);
            let r = run(&sc, seed);
            assert_eq!(r.adopted[0].1, Transport::Quic, "{:?}", r.adopted);
            assert_eq!(r.final_transport, Some(Transport::Quic));
            assert_eq!(r.remembered, vec![Transport::Quic]);
        });
    }

    /// A slow machine: ssh logins take 1.5 s. With a stale "ssh" hint the
    /// connect must not start a crowd of logins (each would slow the others).
    #[test]
    fn slow_logins_are_not_crowded() {
        seeds(30, |seed| {
            let mut sc = base(Choice::Race);
            sc.hint = Some(Transport::Ssh);
            sc.one_way = ms(100);
            sc.faults = vec![(ms(0), Change::BlockUdp(true))];
            let r = run(&sc, seed);
            assert_eq!(r.adopted[0].1, Transport::Ssh);
            assert!(
                r.max_ssh_in_flight <= 2,
                "{} ssh logins at once",
                r.max_ssh_in_flight
            );
        });
    }

    #[test]
    fn suspend_tries_at_once_on_wake() {
        seeds(40, |seed| {
            let mut sc = base(Choice::Race);
            sc.duration = s(90);
            sc.faults = vec![(s(5), Change::Suspend(s(60)))];
            sc.recoveries = vec![(s(65), quic_bound(sc.one_way))];
            let r = run(&sc, seed);
            assert!(r.recovery[0] <= ms(300), "{r:?}");
            assert_eq!(r.final_transport, Some(Transport::Quic));
        });
    }

    #[test]
    fn loss_is_not_a_blocked_network() {
        seeds(40, |seed| {
            let mut sc = base(Choice::Race);
            sc.duration = s(40);
            sc.faults = vec![(s(5), Change::Loss(0.2)), (s(30), Change::Loss(0.0))];
            let r = run(&sc, seed);
            assert_eq!(r.final_transport, Some(Transport::Quic));
            never_blocked(&r);
        });
    }

    #[test]
    fn loss_roam_and_rebind_together() {
        seeds(60, |seed| {
            let mut sc = base(Choice::Race);
            sc.duration = s(40);
            sc.quic_dies_on_move = seed % 2 == 0;
            sc.faults = vec![
                (s(5), Change::Loss(0.2)),
                (s(8), Change::Roam),
                (s(8), Change::Rebind),
                (s(15), Change::Rebind),
                (s(25), Change::Loss(0.0)),
            ];
            // Under loss only a loose bound: every byte, in order, and soon.
            sc.recoveries = vec![(s(8), s(3)), (s(15), s(3)), (s(25), s(2))];
            let r = run(&sc, seed);
            assert_eq!(r.final_transport, Some(Transport::Quic));
            never_blocked(&r);
        });
    }

    /// `abide HOST` with UDP open: the bootstrap's ssh carries the session
    /// from the first instant, QUIC takes over within its head start, and
    /// nobody is told about either.
    #[test]
    fn the_bootstrap_ssh_is_the_first_link_and_quic_takes_over_unannounced() {
        seeds(40, |seed| {
            let mut sc = base(Choice::Race);
            sc.handover = true;
            sc.recoveries = vec![(ms(300), sc.one_way * 2 + LINE_EVERY)];
            let r = run(&sc, seed);
            assert_eq!(r.adopted[0], (ms(0), Transport::Ssh), "{:?}", r.adopted);
            assert_eq!(r.adopted[1].1, Transport::Quic, "{:?}", r.adopted);
            let cfg = Config::remote(Choice::Race, None);
            assert!(r.adopted[1].0 <= cfg.head_start, "{:?}", r.adopted);
            assert_eq!(r.adopted.len(), 2, "{:?}", r.adopted);
            assert_eq!(r.final_transport, Some(Transport::Quic));
            assert_eq!(r.ssh_starts, 0, "a second ssh login");
            assert!(r.notices.is_empty(), "{:?}", r.notices);
            assert_eq!(r.remembered, vec![Transport::Quic]);
        });
    }

    /// `abide HOST` where UDP is blocked: one ssh login in all (the
    /// bootstrap's), output from the first round trip, "over ssh" said once
    /// QUIC's head start is over; a later fault is recovered over ssh, and
    /// UDP coming back moves the session to QUIC.
    #[test]
    fn with_udp_blocked_the_bootstrap_ssh_carries_the_session_alone() {
        for later in [None, Some(Change::Rebind), Some(Change::BlockUdp(false))] {
            seeds(30, |seed| {
                let mut sc = base(Choice::Race);
                sc.handover = true;
                sc.faults = vec![(ms(0), Change::BlockUdp(true))];
                // Output flows from the start (the first line exists by 250 ms).
                sc.recoveries = vec![(ms(300), sc.one_way * 2 + LINE_EVERY)];
                if let Some(c) = later {
                    sc.faults.push((s(10), c));
                }
                if let Some(Change::Rebind) = later {
                    sc.recoveries.push((s(10), s(1)));
                }
                let r = run(&sc, seed);
                assert_eq!(r.adopted[0], (ms(0), Transport::Ssh), "{:?}", r.adopted);
                let cfg = Config::remote(Choice::Race, None);
                assert_eq!(r.notices[0], (cfg.head_start, Notice::OverSsh));
                match later {
                    None => {
                        assert_eq!(r.ssh_starts, 0, "a second ssh login");
                        assert_eq!(r.adopted.len(), 1, "{:?}", r.adopted);
                        assert_eq!(r.final_transport, Some(Transport::Ssh));
                    }
                    Some(Change::Rebind) => {
                        assert_eq!(r.final_transport, Some(Transport::Ssh));
                    }
                    _ => {
                        assert_eq!(r.final_transport, Some(Transport::Quic));
                        assert_eq!(r.notices.last().unwrap().1, Notice::BackOnQuic);
                    }
                }
            });
        }
    }

    #[test]
    fn random_fault_schedules() {
        seeds(200, |seed| {
            let mut rng = Rng(seed ^ 0xABCD);
            let mut sc = base(Choice::Race);
            sc.duration = s(60);
            sc.quic_dies_on_move = rng.chance(0.5);
            let mut t = 2000;
            let mut udp_blocked = false;
            let mut awake_at = 0;
            while t < 38_000 {
                let c = match rng.below(7) {
                    0 => Change::Blackhole(true),
                    1 => Change::Blackhole(false),
                    2 => {
                        udp_blocked = !udp_blocked;
                        Change::BlockUdp(udp_blocked)
                    }
                    3 => Change::Loss([0.0, 0.05, 0.2][rng.below(3) as usize]),
                    4 => Change::Rebind,
                    5 => Change::Roam,
                    _ => {
                        let d = [1000, 31_000][rng.below(2) as usize];
                        if t >= awake_at && t + d <= 39_000 {
                            awake_at = t + d;
                            Change::Suspend(ms(d))
                        } else {
                            Change::Rebind
                        }
                    }
                };
                sc.faults.push((ms(t), c));
                t += 300 + rng.below(6000);
            }
            // Then a clean network: everything arrives within a bound.
            sc.faults.push((s(40), Change::Blackhole(false)));
            sc.faults.push((s(40), Change::Loss(0.0)));
            sc.recoveries = vec![(s(40), s(3))];
            run(&sc, seed);
        });
    }
}
