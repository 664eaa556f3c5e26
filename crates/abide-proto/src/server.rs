//! The server's side of one attached client, as a state machine: what to send
//! next (log bytes, a snapshot, the terminal's state, the exit) from the
//! client's offset, its acks and the output log's state.
//!
//! Why a core of its own: the decisions here (how much may be in flight, when
//! a client has fallen so far behind that replaying the byte stream would keep
//! its keystrokes' echo waiting for seconds, when the program's exit may be
//! told) used to live inside a `tokio::select!` with no tests. Here they take
//! time as `Instant` arguments, so the tests below run a simulated link and
//! assert timings exactly.
//!
//! Delivery is adaptive. While the client keeps up, it gets the byte stream,
//! at most one window ahead of what it acknowledged. The window follows the
//! link's measured bandwidth-delay product (delivery rate from acks, as BBR
//! measures it, times the minimum round trip), so that whatever is queued on
//! the path drains in about a round trip and a keystroke's echo never waits
//! behind a megabyte. The channel asks for the terminal's state instead
//! ([`Action::State`]: the rows that scrolled off since the client's offset,
//! the newest of them that fit the link's budget, and the screen), then goes
//! on with the raw stream from the offset that state stands for, when
//! - the program prints faster than the link (or the client's terminal)
//!   carries: screens are then paced at the link's rate, each sent when the
//!   one before has left the bottleneck, so a key's echo waits behind at most
//!   one screen, never behind a queue; or
//! - what the client still needs would take more than [`BACKLOG_LIMIT`] on
//!   its link (a burst larger than the link carries at once).
//!
//! The link's rate and round trip come from [`LinkMeter`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::link_meter::{LinkMeter, SendSample, PROBE_WINDOW};

/// The most output in flight (sent, not acknowledged), whatever the link.
pub const MAX_WINDOW: u64 = 1024 * 1024;
/// The least: one round trip of a slow link still carries this much.
pub const MIN_WINDOW: u64 = 16 * 1024;
/// However short the round trip, the window holds this long at the link's
/// rate. On a local or LAN link 1.5 bandwidth-delay products are a few KiB:
/// every time the client or the daemon waits for a CPU (a scheduler tick on a
/// busy machine) the pipe ran dry, and output went in 4 KiB pieces, each with
/// its own wake-ups. Keys wait behind at most this much more output.
pub const MIN_WINDOW_TIME: Duration = Duration::from_millis(10);
/// In flight before the link has been measured.
pub const INITIAL_WINDOW: u64 = 64 * 1024;
/// A client further behind than this (at its link's rate) gets the state, not the stream.
pub const BACKLOG_LIMIT: Duration = Duration::from_millis(200);
/// Below this much backlog the stream always goes on, whatever the rate.
const MIN_BACKLOG: u64 = 16 * 1024;
/// How much of the link's time one state may spend on history rows.
const HISTORY_TIME: Duration = Duration::from_millis(50);
const MIN_HISTORY_BUDGET: usize = 8 * 1024;
/// Screens are paced at the estimated rate times these, in turn: one a
/// little early finds out whether the link has become faster (a paced
/// channel otherwise only ever measures its own pace), the next one late
/// drains the queue the early one may have made.
const PACING_GAINS: [f64; 8] = [1.25, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// The longest the next screen is held back, whatever the estimate says
/// (a screen of 14 KB takes 1.1 s at 100 kbit/s).
const MAX_PACE: Duration = Duration::from_secs(2);
/// The program's output rate is measured over about this long.
const PRODUCED_WINDOW: Duration = Duration::from_millis(500);
/// ... from samples of the log's end this far apart.
const PRODUCED_SAMPLE: Duration = Duration::from_millis(50);
/// The rate is not judged on less than this.
const PRODUCED_MIN_SPAN: Duration = Duration::from_millis(100);
/// A program outpaces the link when it prints faster than this share of
/// the link's rate (a margin for the estimate's noise).
const OUTPACE_FACTOR: f64 = 1.0;

/// What the output log looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// Oldest offset still kept.
    pub start: u64,
    /// One past the newest byte.
    pub end: u64,
    /// The program's exit code, once it exited and all its output is logged.
    pub exited: Option<i32>,
    /// How far the terminal model has processed the log: a state stands for
    /// the output before this (it is not worth waiting for the model to catch
    /// up with a program that prints faster than it parses).
    pub modelled: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the log's bytes `offset..offset + len` as output frames.
    Output { offset: u64, len: usize },
    /// The client's offset has left the log: send a full snapshot (screen and
    /// all history kept), then call [`ServerChannel::state_sent`].
    Snapshot,
    /// The client is too far behind for the stream: send the rows that
    /// scrolled off since `from` (the newest of them, at most
    /// `history_budget` bytes, with a marker counting the others) and the
    /// screen, then call [`ServerChannel::state_sent`].
    State { from: u64, history_budget: usize },
    /// All output is sent: tell the client the program exited.
    Exit { code: i32 },
}

/// How the next piece of a client's backlog goes (see [`ServerChannel::delivery`]).
enum Delivery {
    Stream,
    /// The state, with this budget for history rows.
    State(usize),
    /// Nothing until the next paced screen is due.
    Hold,
}

/// One piece of output sent and not yet acknowledged.
#[derive(Debug)]
struct Sent {
    /// The client's offset once it has this piece.
    end: u64,
    /// Bytes on the wire.
    wire: u64,
    sample: SendSample,
}

#[derive(Debug)]
pub struct ServerChannel {
    /// Next offset to send.
    pos: u64,
    /// The client has everything before this.
    acked: u64,
    sent: VecDeque<Sent>,
    inflight: u64,
    link: LinkMeter,
    /// Samples of the log's end (when, offset), oldest first: the program's
    /// output rate.
    produced: VecDeque<(Instant, u64)>,
    /// The program outpaces the link (see [`Self::delivery`]): when that
    /// was last judged so, and whether it is now.
    outpaced_at: Option<Instant>,
    outpaced: bool,
    /// While outpaced, the next screen goes no sooner than this.
    paced_until: Instant,
    /// The last poll held a screen back until `paced_until`.
    holding: bool,
    /// Wire bytes of the last state sent: what another one would cost.
    last_state_wire: u64,
    exit_sent: bool,
    adaptive: bool,
    states_sent: u64,
}

impl ServerChannel {
    /// A client that has everything before `start`.
    pub fn new(start: u64, now: Instant) -> Self {
        ServerChannel {
            pos: start,
            acked: start,
            sent: VecDeque::new(),
            inflight: 0,
            link: LinkMeter::new(now),
            outpaced_at: None,
            outpaced: false,
            paced_until: now,
            holding: false,
            produced: VecDeque::new(),
            last_state_wire: 0,
            exit_sent: false,
            adaptive: true,
            states_sent: 0,
        }
    }

    /// Off: the byte stream only, whatever the backlog (benchmarks, tests).
    pub fn set_adaptive(&mut self, on: bool) {
        self.adaptive = on;
    }

    /// Next offset to send.
    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Wire bytes sent and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.inflight
    }

    pub fn states_sent(&self) -> u64 {
        self.states_sent
    }

    /// The link's delivery rate in bytes/s, once measured.
    pub fn bandwidth(&self) -> Option<f64> {
        self.link.bandwidth()
    }

    pub fn min_rtt(&self) -> Option<Duration> {
        self.link.min_rtt()
    }

    /// How much may be in flight: one and a half bandwidth-delay products,
    /// or [`MIN_WINDOW_TIME`] at the link's rate if more (a little while the
    /// round trip is measured again).
    pub fn window(&self) -> u64 {
        if self.link.probing() {
            return PROBE_WINDOW;
        }
        match (self.link.bdp(), self.link.bandwidth()) {
            (Some(bdp), Some(bw)) => {
                let floor = (bw * MIN_WINDOW_TIME.as_secs_f64()) as u64;
                (bdp * 3 / 2).max(floor).clamp(MIN_WINDOW, MAX_WINDOW)
            }
            _ => INITIAL_WINDOW,
        }
    }

    /// The largest output piece to send at once: a quarter window, so that
    /// acks (and the rate and round-trip samples they carry) come often.
    fn chunk(&self, max_chunk: usize) -> usize {
        ((self.window() / 4) as usize).clamp(1024, max_chunk)
    }

    /// The client says it has (written to its terminal) everything before
    /// `offset`. Offsets behind an earlier ack or beyond what was sent are
    /// ignored: they come from an older link or a lying peer.
    pub fn on_ack(&mut self, offset: u64, now: Instant) {
        if offset <= self.acked || offset > self.pos {
            return;
        }
        self.acked = offset;
        while self.sent.front().is_some_and(|s| s.end <= offset) {
            let s = self.sent.pop_front().expect("checked");
            self.inflight -= s.wire;
            self.link.on_delivered(s.sample, s.wire, now);
        }
        self.link.acked(now);
    }

    /// What to send next, or `None` until an ack, new output or the exit.
    /// An [`Action::Output`] counts as sent when returned.
    pub fn poll(&mut self, log: LogState, max_chunk: usize, now: Instant) -> Option<Action> {
        self.holding = false;
        if self.exit_sent {
            return None;
        }
        self.sample_produced(log.end, now);
        self.link.poll(now);
        if self.pos < log.end {
            if self.inflight >= self.window() {
                return None;
            }
            if self.pos < log.start {
                return Some(Action::Snapshot);
            }
            match self.delivery(log, now) {
                Delivery::Stream => {}
                Delivery::State(budget) => {
                    return Some(Action::State {
                        from: self.pos,
                        history_budget: budget,
                    })
                }
                Delivery::Hold => {
                    self.holding = true;
                    return None;
                }
            }
            let len = (log.end - self.pos).min(self.chunk(max_chunk) as u64) as usize;
            let offset = self.pos;
            self.record(
                offset + len as u64,
                len as u64,
                now,
                offset + len as u64 == log.end,
            );
            return Some(Action::Output { offset, len });
        }
        if let Some(code) = log.exited {
            self.exit_sent = true;
            return Some(Action::Exit { code });
        }
        None
    }

    /// When to poll again without news (no ack, no output): the next paced
    /// screen is due then. `None`: only news can change what to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.holding.then_some(self.paced_until)
    }

    /// Keeps samples of the log's end, one per [`PRODUCED_SAMPLE`], the
    /// oldest the newest that is at least [`PRODUCED_WINDOW`] old.
    fn sample_produced(&mut self, end: u64, now: Instant) {
        if self
            .produced
            .back()
            .is_none_or(|s| now.saturating_duration_since(s.0) >= PRODUCED_SAMPLE)
        {
            self.produced.push_back((now, end));
        }
        while self
            .produced
            .get(1)
            .is_some_and(|s| now.saturating_duration_since(s.0) >= PRODUCED_WINDOW)
        {
            self.produced.pop_front();
        }
    }

    /// How fast the program has been printing lately (bytes/s), once there
    /// is enough to judge.
    fn output_rate(&self, end: u64, now: Instant) -> Option<f64> {
        let &(at, then) = self.produced.front()?;
        let span = now.saturating_duration_since(at);
        (span >= PRODUCED_MIN_SPAN).then(|| (end - then) as f64 / span.as_secs_f64())
    }

    /// How what the client still needs goes: as the stream, or as the
    /// state (with a budget for history rows), or not yet. The state goes
    /// in either of two cases:
    /// - the program prints faster than the link carries, so that any byte
    ///   streamed now is older than the screen by the time it arrives: when
    ///   the screen before has left the bottleneck (paced at the link's
    ///   rate), the newest screen goes (unless what waits is cheaper than a
    ///   screen: a key's echo), and until then nothing does;
    /// - what the client still needs would take more than [`BACKLOG_LIMIT`]
    ///   on its link (a burst larger than the link carries at once).
    ///
    /// Judging by the rate, not only by the backlog's size, keeps the queue
    /// ahead of an echo short while a full-screen program redraws faster
    /// than the link carries; judging by size alone, the backlog grew to
    /// [`BACKLOG_LIMIT`] before every state, on top of a full window.
    fn delivery(&mut self, log: LogState, now: Instant) -> Delivery {
        self.outpaced = false;
        if !self.adaptive || log.modelled <= self.pos {
            return Delivery::Stream;
        }
        let Some(bw) = self.bandwidth() else {
            return Delivery::Stream;
        };
        let unsent = log.end - self.pos;
        let budget = ((bw * HISTORY_TIME.as_secs_f64()) as usize).max(MIN_HISTORY_BUDGET);
        // Paced screens measure the pace, not the link: the rate measured
        // before pacing began stands meanwhile.
        let outpaced = self.link.rate_is_the_links(self.outpaced_at, now)
            && self
                .output_rate(log.end, now)
                .is_some_and(|rate| rate > bw * OUTPACE_FACTOR);
        if outpaced {
            self.outpaced = true;
            self.outpaced_at = Some(now);
            if unsent < self.last_state_wire {
                return Delivery::Stream;
            }
            // Screens are paced at the link's rate: each goes when the
            // one before has left the bottleneck, so none waits in its
            // queue, and the link carries one after the other.
            return if now >= self.paced_until {
                Delivery::State(budget)
            } else {
                Delivery::Hold
            };
        }
        let limit = ((bw * BACKLOG_LIMIT.as_secs_f64()) as u64).max(MIN_BACKLOG);
        if unsent + self.inflight > limit {
            Delivery::State(budget)
        } else {
            Delivery::Stream
        }
    }

    /// A snapshot or state went out: `raw` log bytes from the current
    /// position first (the driver may finish the current line before the
    /// state), then `wire` bytes standing for everything before `at`
    /// (for a state, the model's offset when it was rendered).
    pub fn state_sent(&mut self, raw: u64, at: u64, wire: u64, now: Instant) {
        if raw > 0 {
            let end = self.pos + raw;
            self.record(end, raw, now, false);
        }
        let at = at.max(self.pos);
        self.record(at, wire, now, false);
        self.last_state_wire = wire;
        self.states_sent += 1;
        if let Some(bw) = self.bandwidth().filter(|_| self.outpaced) {
            let gain = PACING_GAINS[(self.states_sent % PACING_GAINS.len() as u64) as usize];
            let pace = Duration::from_secs_f64((raw + wire) as f64 / (bw * gain));
            self.paced_until = (self.paced_until.max(now) + pace).min(now + MAX_PACE);
        }
    }

    /// The [`Action::Output`] at `offset` could not be sent after all (the
    /// log evicted it meanwhile): the next poll decides again from there.
    pub fn output_unsent(&mut self, offset: u64) {
        if offset >= self.pos || offset < self.acked {
            return;
        }
        while self.sent.back().is_some_and(|s| s.end > offset) {
            let s = self.sent.pop_back().expect("checked");
            self.inflight -= s.wire;
        }
        self.pos = offset;
    }

    fn record(&mut self, end: u64, wire: u64, now: Instant, app_limited: bool) {
        // Screens paced to the path are the channel's choice, not the link's limit.
        let sample = self.link.on_send(now, app_limited, self.outpaced);
        self.sent.push_back(Sent { end, wire, sample });
        self.inflight += wire;
        self.pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 32 * 1024;

    /// Output the program writes: `rate` bytes/s from `from` until `until`.
    struct Program {
        rate: f64,
        until: Duration,
    }

    /// What a client on the other end of a simulated link sees: one
    /// bottleneck of `bw` bytes/s (a queue), `delay` each way.
    struct Sim {
        t0: Instant,
        now: Instant,
        bw: f64,
        delay: Duration,
        link_free: Instant,
        /// (arrival time, client offset after it, what it was)
        arriving: VecDeque<(Instant, u64, Action)>,
        acks: VecDeque<(Instant, u64)>,
        ch: ServerChannel,
        log: LogState,
        /// Offset the client's terminal reached, and when.
        client: u64,
        got: Vec<(Instant, u64, Action)>,
    }

    impl Sim {
        fn new(bw: f64, rtt_ms: u64) -> Sim {
            let t0 = Instant::now();
            Sim {
                t0,
                now: t0,
                bw,
                delay: Duration::from_millis(rtt_ms / 2),
                link_free: t0,
                arriving: VecDeque::new(),
                acks: VecDeque::new(),
                ch: ServerChannel::new(0, t0),
                log: LogState {
                    start: 0,
                    end: 0,
                    exited: None,
                    modelled: u64::MAX,
                },
                client: 0,
                got: Vec::new(),
            }
        }

        fn transmit(&mut self, wire: u64, end: u64, what: Action) {
            let start = self.link_free.max(self.now);
            self.link_free = start + Duration::from_secs_f64(wire as f64 / self.bw);
            self.arriving
                .push_back((self.link_free + self.delay, end, what));
        }

        /// Advances 1 ms: the program writes, the channel sends what it may,
        /// frames and acks arrive.
        fn step(&mut self, program: &Program, ring: u64, state_wire: u64) {
            self.now += Duration::from_millis(1);
            if self.now - self.t0 <= program.until {
                self.log.end += (program.rate / 1000.0) as u64;
                self.log.start = self.log.end.saturating_sub(ring);
            }
            self.log.modelled = self.log.end;
            while self.acks.front().is_some_and(|a| a.0 <= self.now) {
                let (_, off) = self.acks.pop_front().unwrap();
                self.ch.on_ack(off, self.now);
            }
            while let Some(a) = self.ch.poll(self.log, CHUNK, self.now) {
                match a {
                    Action::Output { offset, len } => {
                        self.transmit(len as u64 + 8, offset + len as u64, a)
                    }
                    Action::Snapshot | Action::State { .. } => {
                        let at = self.log.end;
                        self.ch.state_sent(0, at, state_wire, self.now);
                        self.transmit(state_wire, at, a);
                    }
                    Action::Exit { .. } => self.transmit(8, self.log.end, a),
                }
            }
            while self.arriving.front().is_some_and(|a| a.0 <= self.now) {
                let (t, end, what) = self.arriving.pop_front().unwrap();
                if let Action::Output { offset, .. } = what {
                    assert_eq!(offset, self.client, "stream continues where the client is");
                }
                self.client = self.client.max(end);
                self.acks.push_back((t + self.delay, self.client));
                self.got.push((t, end, what));
            }
        }

        fn run(&mut self, program: &Program, ms: u64) {
            for _ in 0..ms {
                self.step(program, u64::MAX, 4096);
            }
        }
    }

    /// Whatever a peer acknowledges and however time and output move, the
    /// channel neither panics nor loses count: what is in flight is what
    /// was sent and not acknowledged, the position never goes back past an
    /// ack, and a held-back screen is due within [`MAX_PACE`].
    #[test]
    fn hostile_acks_and_odd_timing_keep_the_books_straight() {
        let mut polls = 0;
        for seed in 0..200 {
            let mut rng = crate::sim::Rng(seed);
            let t0 = Instant::now();
            let mut now = t0;
            let mut ch = ServerChannel::new(0, now);
            let mut log = LogState {
                start: 0,
                end: 0,
                exited: None,
                modelled: 0,
            };
            let mut sent: Vec<(u64, u64)> = Vec::new(); // (end, wire)
            for _ in 0..2000 {
                let step = if rng.chance(0.01) { 30_000_000 } else { 50_000 };
                now += Duration::from_micros(rng.below(step));
                if rng.chance(0.5) {
                    log.end += rng.below(40_000);
                    log.start = log.end.saturating_sub(1 << 20).max(log.start);
                }
                log.modelled =
                    log.end - rng.below(log.end - log.start + 1).min(log.end - log.start);
                if rng.chance(0.4) {
                    // An ack: often honest, sometimes anything at all.
                    let offset = if rng.chance(0.8) {
                        let k = rng.below(sent.len() as u64 + 1) as usize;
                        sent.get(k).map_or(0, |s| s.0)
                    } else {
                        rng.next()
                    };
                    ch.on_ack(offset, now);
                    sent.retain(|s| s.0 > ch.acked());
                }
                match ch.poll(log, CHUNK, now) {
                    Some(Action::Output { offset, len }) => {
                        assert!(offset >= ch.acked() && len > 0);
                        sent.push((offset + len as u64, len as u64));
                    }
                    Some(Action::Snapshot | Action::State { .. }) => {
                        let wire = 16 + rng.below(100_000);
                        ch.state_sent(0, log.modelled.max(log.start), wire, now);
                        sent.push((ch.position(), wire));
                    }
                    Some(Action::Exit { .. }) | None => {}
                }
                assert!(ch.position() >= ch.acked());
                assert_eq!(ch.in_flight(), sent.iter().map(|s| s.1).sum::<u64>());
                polls += 1;
                if let Some(due) = ch.poll_timeout() {
                    assert!(
                        due <= now + MAX_PACE,
                        "seed {seed}: held for {:?}",
                        due - now
                    );
                }
            }
            assert!(
                ch.states_sent() > 0 || ch.acked() > 0,
                "seed {seed} went somewhere"
            );
        }
        assert_eq!(polls, 200 * 2000);
    }

    #[test]
    fn a_client_that_keeps_up_gets_the_stream_and_then_the_exit() {
        let mut sim = Sim::new(10e6, 20);
        let p = Program {
            rate: 1e6,
            until: Duration::from_millis(500),
        };
        sim.run(&p, 600);
        sim.log.exited = Some(3);
        sim.run(&p, 100);
        assert_eq!(sim.client, sim.log.end);
        assert_eq!(sim.ch.states_sent(), 0);
        let exits: Vec<_> = sim
            .got
            .iter()
            .filter(|g| matches!(g.2, Action::Exit { .. }))
            .collect();
        assert_eq!(exits.len(), 1);
        assert_eq!(exits[0].2, Action::Exit { code: 3 });
        assert!(matches!(sim.got.last().unwrap().2, Action::Exit { .. }));
        // The link was measured: 10 MB/s (the program's 1 MB/s is app-limited
        // and does not pull the estimate down), 20 ms.
        let bw = sim.ch.bandwidth().unwrap();
        assert!((0.9e6..=10.5e6).contains(&bw), "{bw}");
        let rtt = sim.ch.min_rtt().unwrap();
        assert!(
            rtt >= Duration::from_millis(20) && rtt < Duration::from_millis(25),
            "{rtt:?}"
        );
    }

    #[test]
    fn exit_waits_until_all_output_is_sent() {
        let t = Instant::now();
        let mut ch = ServerChannel::new(0, t);
        let log = LogState {
            start: 0,
            end: 200_000,
            exited: Some(0),
            modelled: u64::MAX,
        };
        let mut sent = 0;
        loop {
            match ch.poll(log, CHUNK, t) {
                Some(Action::Output { offset, len }) => {
                    assert_eq!(offset, sent);
                    sent += len as u64;
                }
                None => ch.on_ack(sent, t + Duration::from_millis(1)),
                Some(Action::Exit { code }) => {
                    assert_eq!(code, 0);
                    assert_eq!(sent, 200_000);
                    break;
                }
                Some(a) => panic!("{a:?}"),
            }
        }
        assert_eq!(ch.poll(log, CHUNK, t), None, "the exit is told once");
    }

    #[test]
    fn in_flight_never_exceeds_the_window() {
        let t = Instant::now();
        let mut ch = ServerChannel::new(0, t);
        let log = LogState {
            start: 0,
            end: 10 << 20,
            exited: None,
            modelled: u64::MAX,
        };
        let mut n = 0;
        while let Some(Action::Output { len, .. }) = ch.poll(log, CHUNK, t) {
            n += len as u64;
        }
        assert_eq!(n, INITIAL_WINDOW);
        assert_eq!(ch.in_flight(), INITIAL_WINDOW);
        // An ack frees exactly what it covers.
        ch.on_ack(16 * 1024, t + Duration::from_millis(50));
        assert_eq!(ch.in_flight(), INITIAL_WINDOW - 16 * 1024);
    }

    #[test]
    fn output_evicted_before_it_was_read_becomes_a_snapshot() {
        let t = Instant::now();
        let mut ch = ServerChannel::new(0, t);
        let log = LogState {
            start: 0,
            end: 100,
            exited: None,
            modelled: u64::MAX,
        };
        assert_eq!(
            ch.poll(log, CHUNK, t),
            Some(Action::Output {
                offset: 0,
                len: 100
            })
        );
        ch.output_unsent(0);
        assert_eq!(ch.in_flight(), 0);
        let log = LogState {
            start: 50,
            end: 150,
            exited: None,
            modelled: u64::MAX,
        };
        assert_eq!(ch.poll(log, CHUNK, t), Some(Action::Snapshot));
    }

    #[test]
    fn hostile_acks_are_ignored() {
        let t = Instant::now();
        let mut ch = ServerChannel::new(100, t);
        let log = LogState {
            start: 0,
            end: 1000,
            exited: None,
            modelled: u64::MAX,
        };
        assert!(matches!(
            ch.poll(log, CHUNK, t),
            Some(Action::Output { offset: 100, .. })
        ));
        ch.on_ack(u64::MAX, t);
        ch.on_ack(5, t);
        assert_eq!(ch.acked(), 100);
        ch.on_ack(1000, t);
        assert_eq!(ch.acked(), 1000);
        assert_eq!(ch.in_flight(), 0);
    }

    #[test]
    fn an_offset_that_left_the_log_gets_a_snapshot_then_the_stream() {
        let t = Instant::now();
        let mut ch = ServerChannel::new(10, t);
        let log = LogState {
            start: 500,
            end: 900,
            exited: None,
            modelled: u64::MAX,
        };
        assert_eq!(ch.poll(log, CHUNK, t), Some(Action::Snapshot));
        ch.state_sent(0, 900, 3000, t);
        assert_eq!(ch.position(), 900);
        let log = LogState { end: 950, ..log };
        assert_eq!(
            ch.poll(log, CHUNK, t),
            Some(Action::Output {
                offset: 900,
                len: 50
            })
        );
    }

    #[test]
    fn a_fast_link_never_gets_state_even_for_a_flood() {
        // 100 MB/s link, program at 50 MB/s: the stream keeps up.
        let mut sim = Sim::new(100e6, 2);
        let p = Program {
            rate: 50e6,
            until: Duration::from_millis(1000),
        };
        sim.run(&p, 1100);
        assert_eq!(sim.ch.states_sent(), 0);
        assert_eq!(sim.client, sim.log.end);
    }

    /// The case: `seq` floods a 2 Mbit/s, 100 ms link; Ctrl-C at 1 s
    /// stops it; the output of a command 0.25 s later (0.2 s + half a round
    /// trip for the keys to arrive) must show within 0.4 s of the Ctrl-C.
    #[test]
    fn after_a_flood_on_a_slow_link_new_output_shows_within_a_round_trip() {
        let mut sim = Sim::new(250e3, 100);
        let flood = Program {
            rate: 20e6,
            until: Duration::from_millis(1050),
        };
        for _ in 0..1250 {
            sim.step(&flood, u64::MAX, 4096);
        }
        assert!(sim.ch.states_sent() > 0, "the flood went over as state");
        // The command's output.
        sim.log.end += 30;
        let echo_end = sim.log.end;
        let mut shown = None;
        for _ in 0..2000 {
            sim.step(&flood, u64::MAX, 4096);
            if shown.is_none() && sim.client >= echo_end {
                shown = Some(sim.now - sim.t0);
            }
        }
        let shown = shown.expect("the echo arrived");
        let after_ctrl_c = shown - Duration::from_millis(1000);
        println!(
            "echo shown {after_ctrl_c:?} after Ctrl-C; window {} B, bw {:.0} B/s, rtt {:?}, {} states",
            sim.ch.window(),
            sim.ch.bandwidth().unwrap(),
            sim.ch.min_rtt().unwrap(),
            sim.ch.states_sent()
        );
        assert!(
            after_ctrl_c <= Duration::from_millis(400),
            "{after_ctrl_c:?}"
        );
        // The estimate found the link: 250 kB/s, 100 ms.
        let bw = sim.ch.bandwidth().unwrap();
        assert!((200e3..=260e3).contains(&bw), "{bw}");
        let rtt = sim.ch.min_rtt().unwrap();
        assert!(
            rtt >= Duration::from_millis(100) && rtt < Duration::from_millis(130),
            "{rtt:?}"
        );
        assert!(sim.ch.window() < 64 * 1024, "{}", sim.ch.window());
    }

    #[test]
    fn without_adaptive_delivery_the_slow_link_plays_the_backlog() {
        // The same flood with the stream only: the echo waits behind it
        // (this is what the test above guards against).
        let mut sim = Sim::new(250e3, 100);
        sim.ch.set_adaptive(false);
        let flood = Program {
            rate: 20e6,
            until: Duration::from_millis(1050),
        };
        sim.run(&flood, 1250);
        sim.log.end += 30;
        let echo_end = sim.log.end;
        sim.run(&flood, 1000);
        assert!(
            sim.client < echo_end,
            "still playing the backlog a second later"
        );
        assert_eq!(sim.ch.states_sent(), 0);
    }

    #[test]
    fn a_short_burst_on_a_slow_link_is_streamed() {
        // 10 kB at once on a 250 kB/s link: 40 ms of backlog, streamed as is.
        let mut sim = Sim::new(250e3, 100);
        let p = Program {
            rate: 0.0,
            until: Duration::ZERO,
        };
        sim.run(&p, 500);
        for _ in 0..5 {
            sim.log.end += 10_000;
            sim.run(&p, 500);
        }
        assert_eq!(sim.ch.states_sent(), 0);
        assert_eq!(sim.client, 50_000);
    }

    #[test]
    fn the_window_follows_the_bandwidth_delay_product() {
        for (bw, rtt, lo, hi) in [
            (250e3, 100, MIN_WINDOW, 64 * 1024),
            (100e6, 20, MAX_WINDOW, MAX_WINDOW),
            // A local link: the product is 15 kB, the window 10 ms of its rate.
            (30e6, 1, 250 * 1000, 350 * 1000),
        ] {
            let mut sim = Sim::new(bw, rtt);
            sim.ch.set_adaptive(false);
            let p = Program {
                rate: 200e6,
                until: Duration::from_millis(3000),
            };
            sim.run(&p, 3000);
            let w = sim.ch.window();
            assert!((lo..=hi).contains(&w), "bw {bw} rtt {rtt}: window {w}");
        }
    }

    #[test]
    fn the_ring_overflowing_under_a_slow_client_gives_a_snapshot() {
        let mut sim = Sim::new(250e3, 100);
        sim.ch.set_adaptive(false);
        let p = Program {
            rate: 5e6,
            until: Duration::from_millis(500),
        };
        for _ in 0..6000 {
            sim.step(&p, 1 << 20, 4096);
        }
        assert!(sim.got.iter().any(|g| g.2 == Action::Snapshot));
        assert_eq!(sim.client, sim.log.end);
    }

    /// Types a key every 170 ms, from 2 s on (the link has been measured),
    /// into a program that redraws `frame` bytes every 50 ms (and echoes
    /// each key at once, as it arrives half a round trip after it was
    /// typed), for `ms`; a state costs `state_wire` bytes. Returns each
    /// key's time from typed to shown, in order.
    fn type_into_redraw(sim: &mut Sim, frame: u64, state_wire: u64, ms: u64) -> Vec<Duration> {
        let idle = Program {
            rate: 0.0,
            until: Duration::ZERO,
        };
        let mut took = Vec::new();
        let mut pending: Vec<(Duration, u64)> = Vec::new();
        for ms in 1..=ms {
            if ms % 50 == 0 {
                sim.log.end += frame;
            }
            if ms >= 2000 && ms % 170 == 0 {
                pending.push((Duration::from_millis(ms), 0));
            }
            for p in pending.iter_mut() {
                if p.1 == 0 && Duration::from_millis(ms) >= p.0 + sim.delay {
                    sim.log.end += 1;
                    p.1 = sim.log.end;
                }
            }
            sim.step(&idle, u64::MAX, state_wire);
            let now = sim.now - sim.t0;
            pending.retain(|&(typed, echo)| {
                if echo != 0 && sim.client >= echo {
                    took.push(now - typed);
                    false
                } else {
                    true
                }
            });
        }
        took
    }

    /// The case: a full-screen program redraws 24x80 screens with
    /// colours (14-17 kB) 20 times a second (280-340 kB/s) into a 2 Mbit/s
    /// (250 kB/s), 100 ms link, for long enough that the round trip is
    /// measured again. Every key shows within 2 RTT + 50 ms: the channel
    /// paces screens to the link instead of queueing a backlog, and does not
    /// mistake its own queue for the path's round trip.
    #[test]
    fn keys_echo_within_two_round_trips_when_the_redraw_outpaces_the_link() {
        for frame in [14_000, 17_000] {
            let mut sim = Sim::new(250e3, 100);
            let took = type_into_redraw(&mut sim, frame, frame, 25_000);
            let worst = took.iter().max().copied().unwrap();
            let mut sorted = took.clone();
            sorted.sort();
            println!(
                "{} keys into a {} kB/s redraw at 250 kB/s, 100 ms: p50 {:?}, worst {worst:?}; \
                 min_rtt {:?}, window {} B, {} states",
                took.len(),
                frame / 50,
                sorted[sorted.len() / 2],
                sim.ch.min_rtt().unwrap(),
                sim.ch.window(),
                sim.ch.states_sent()
            );
            assert!(sim.ch.states_sent() > 0, "the redraw went over as screens");
            assert!(worst <= Duration::from_millis(250), "{frame}: {worst:?}");
            let rtt = sim.ch.min_rtt().unwrap();
            assert!(rtt < Duration::from_millis(110), "{frame}: {rtt:?}");
        }
    }

    /// Typing into a program that redraws a 24x80 screen (~4 kB with
    /// attributes) 20 times a second on the slow link: each key's echo
    /// (written half a round trip after the key is typed) shows within
    /// 2 RTT + 50 ms of the key.
    #[test]
    fn keys_echo_within_two_round_trips_during_a_redraw_loop() {
        let mut sim = Sim::new(250e3, 100);
        let idle = Program {
            rate: 0.0,
            until: Duration::ZERO,
        };
        let mut worst = Duration::ZERO;
        let mut pending: Vec<(Duration, u64)> = Vec::new();
        for ms in 1..=5000u64 {
            if ms % 50 == 0 {
                sim.log.end += 4000;
            }
            // A key every 170 ms, echoed when it reaches the program.
            if ms % 170 == 0 {
                pending.push((Duration::from_millis(ms), 0));
            }
            for p in pending.iter_mut() {
                if p.1 == 0 && Duration::from_millis(ms) >= p.0 + Duration::from_millis(50) {
                    sim.log.end += 1;
                    p.1 = sim.log.end;
                }
            }
            sim.step(&idle, u64::MAX, 4096);
            let now = sim.now - sim.t0;
            pending.retain(|&(typed, echo)| {
                if echo != 0 && sim.client >= echo {
                    worst = worst.max(now - typed);
                    false
                } else {
                    true
                }
            });
        }
        println!("slowest echo during a 20 fps redraw at 250 kB/s, 100 ms: {worst:?}");
        assert!(worst <= Duration::from_millis(250), "{worst:?}");
        assert_eq!(
            sim.ch.states_sent(),
            0,
            "the link keeps up: the stream as is"
        );
    }
}
