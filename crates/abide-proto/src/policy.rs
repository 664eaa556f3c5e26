//! The link policy: which link attempts to start, which finished link to use,
//! when to give up, as one sans-IO state machine (in the spirit of
//! quinn-proto). A driver feeds it events (an attempt finished or failed with
//! a typed reason, the current link went quiet, lost, closed or spoke again,
//! the wall clock jumped, the network changed, a timer fired) and executes the
//! [`Action`]s it returns; `poll_timeout` says when to call
//! [`LinkPolicy::handle_timeout`] next.
//!
//! The rules, in one place:
//! - **Race, don't remember.** On connect, and whenever the transport is in
//!   doubt, QUIC and ssh are started together (happy eyeballs). QUIC wins if
//!   it completes within a short head start; an ssh link that came first is
//!   used at once after that, and the QUIC attempt keeps running: when it
//!   completes the session moves over (a resume, so without a gap).
//! - **Memory is a hint.** What worked before (per host and local network)
//!   only decides whether ssh waits for QUIC's head start; both are always
//!   tried. UDP counts as blocked only after several whole QUIC handshakes
//!   timed out while ssh worked, which loss alone does not produce.
//! - **Loss is not a blocked network.** New attempts never abort older ones,
//!   QUIC is preferred whenever it works, and an ssh session keeps probing UDP
//!   every few seconds.
//! - **Recovery is bounded by the probe rate.** While disconnected a new QUIC
//!   handshake starts every `quic_retry` whatever the outage length (with at
//!   most `max_quic_in_flight` running), so recovery after the path returns
//!   takes one interval plus a handshake; ssh attempts are rarer and capped.
//! - **The bootstrap's ssh is the first link.** `abide HOST` logs in over ssh
//!   anyway; that connection carries on as an ssh link
//!   ([`LinkPolicy::handed_over`]), used at once while QUIC is tried. A QUIC
//!   link that completes soon after takes over (a resume, without a gap), and
//!   within QUIC's head start without a word on the status line.
//! - **An expired grant is not the session's end.** The server forgets a
//!   grant left unused for long (a laptop asleep over a weekend); a resume it
//!   refuses for that ([`LinkPolicy::grant_refused`]) stops the attempts and
//!   asks for a new grant for the same session over ssh
//!   ([`Action::Rebootstrap`]); with it, reconnecting goes on. A second
//!   refusal soon after a new grant, or no new grant, is the end.
//! - **Some failures are verdicts.** A QUIC certificate that is not the pinned
//!   one is an attack or a misconfiguration: give up, never fall back. ssh
//!   authentication that needs a prompt nobody can answer stops ssh attempts.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A kind of link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Quic,
    Ssh,
    /// The local daemon's Unix socket.
    Local,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Quic => "QUIC",
            Transport::Ssh => "ssh",
            Transport::Local => "local",
        })
    }
}

/// Which transports the user allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Only this one (`--transport udp|ssh`, or the local socket).
    Only(Transport),
    /// QUIC preferred, ssh where UDP does not get through (`--transport auto`).
    Race,
}

/// Names one attempt at a new link, from [`Action::Start`] to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(pub u64);

/// Why an attempt failed. Decides what happens next, so it is typed: a driver
/// maps its transport errors onto these, never by matching text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// No answer in time (a dead path, a blocked port, or heavy loss).
    #[error("no answer in time")]
    Timeout,
    /// The path refused or broke (no route, reset, closed before ready).
    #[error("{0}")]
    Unreachable(String),
    /// The QUIC server's certificate is not the pinned one: never fall back.
    #[error("server certificate fingerprint mismatch: {0}")]
    FingerprintMismatch(String),
    /// ssh (or the server) refused our credentials, or needs a prompt nobody
    /// can answer: retrying the same way cannot help.
    #[error("{0}")]
    AuthRefused(String),
    /// The remote end has no abide to run.
    #[error("{0}")]
    NotInstalled(String),
    /// Anything else; retried.
    #[error("{0}")]
    Other(String),
    /// The server no longer accepts this client's grant and no new one
    /// could be had over ssh (the driver says how to reattach).
    #[error("the server no longer accepts this client's grant: {0}")]
    GrantLost(String),
}

impl ConnectError {
    /// Whether trying this transport again cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnectError::FingerprintMismatch(_)
                | ConnectError::AuthRefused(_)
                | ConnectError::NotInstalled(_)
        )
    }
}

/// A status-line message about the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// auto: the session runs over ssh (UDP did not answer in time).
    OverSsh,
    /// auto: UDP answered again; the session moved to QUIC.
    BackOnQuic,
    /// The server had dropped this client's grant; a new one came over ssh.
    Regranted,
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Notice::OverSsh => {
                "abide: no UDP reply yet; carrying on over ssh (trying UDP in the background)"
            }
            Notice::BackOnQuic => "abide: UDP gets through; moved the session to QUIC",
            Notice::Regranted => "abide: away too long for the server; signed in again over ssh",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start an attempt at a new link over `transport`.
    Start {
        id: AttemptId,
        transport: Transport,
        /// ssh may prompt (the first connect, before the terminal is raw).
        interactive: bool,
    },
    /// Stop attempt `id`, or drop its finished link (it was not needed).
    Cancel { id: AttemptId },
    /// Make the finished link of attempt `id` the current link: send it the
    /// resume hello; the previous link is dropped.
    Adopt { id: AttemptId, transport: Transport },
    /// Show a message on the status line for a few seconds.
    Notice(Notice),
    /// Record, for this host and local network, which transport worked (a hint
    /// for the next connect, never a verdict).
    Remember(Transport),
    /// Stop: no link can be made. The error says why.
    GiveUp(ConnectError),
    /// Get a new grant for the same session (the bootstrap again, over ssh,
    /// never prompting), swap it in for new attempts, and report with
    /// [`LinkPolicy::rebootstrapped`]. No attempts start meanwhile.
    Rebootstrap,
}

/// Knobs. [`Config::remote`] and [`Config::local`] are what abide uses; tests
/// may change them.
#[derive(Debug, Clone)]
pub struct Config {
    pub choice: Choice,
    /// What worked last time on this host and network (a hint).
    pub hint: Option<Transport>,
    /// While disconnected, a new QUIC handshake this often.
    pub quic_retry: Duration,
    /// A QUIC attempt that has not completed after this long is cancelled.
    pub quic_timeout: Duration,
    pub max_quic_in_flight: usize,
    /// While disconnected and ssh is in doubt, a new ssh this often (faster
    /// when ssh is the transport in use, slower when it is only a fallback).
    pub ssh_retry: Duration,
    pub ssh_retry_as_fallback: Duration,
    pub ssh_timeout: Duration,
    /// An ssh younger than this may still be logging in: no new one beside it.
    pub ssh_login: Duration,
    pub max_ssh_in_flight: usize,
    /// QUIC's head start: an ssh link that finishes earlier waits this long
    /// after the QUIC attempt began before it is used.
    pub head_start: Duration,
    /// On QUIC, lost this long: ssh joins the race (perhaps UDP is blocked here now).
    pub ssh_after: Duration,
    /// On ssh (auto): how often a QUIC handshake probes UDP (two at most run
    /// at once, so a probe's own retransmissions fill the gaps).
    pub upgrade_every: Duration,
    /// A link made this soon after the current one came back is used instead.
    pub fresh_window: Duration,
    /// QUIC timeouts in a row, while ssh worked, before UDP counts as blocked here.
    pub blocked_after: u32,
    /// First connect: failures per transport before giving up.
    pub first_tries: u32,
    /// Give up after this long without a link (`None`: keep trying until the
    /// user quits, as a network client must).
    pub give_up_after: Option<Duration>,
    /// A grant refused again this soon after a new one: give up (the
    /// server refuses for another reason, and asking again would loop).
    pub regrant_again_after: Duration,
}

impl Config {
    pub fn remote(choice: Choice, hint: Option<Transport>) -> Config {
        Config {
            choice,
            hint,
            quic_retry: Duration::from_millis(250),
            quic_timeout: Duration::from_secs(3),
            max_quic_in_flight: 12,
            ssh_retry: Duration::from_millis(500),
            ssh_retry_as_fallback: Duration::from_secs(1),
            ssh_timeout: Duration::from_secs(3),
            ssh_login: Duration::from_secs(1),
            max_ssh_in_flight: 4,
            head_start: Duration::from_millis(250),
            ssh_after: Duration::from_secs(1),
            upgrade_every: Duration::from_millis(1500),
            fresh_window: Duration::from_secs(1),
            blocked_after: 3,
            first_tries: 1,
            give_up_after: None,
            regrant_again_after: Duration::from_secs(60),
        }
    }

    /// The local daemon: one attempt at a time; a daemon that exits as we
    /// connect is tried again a few times.
    pub fn local() -> Config {
        Config {
            choice: Choice::Only(Transport::Local),
            hint: None,
            quic_retry: Duration::from_millis(200),
            quic_timeout: Duration::from_secs(5),
            max_quic_in_flight: 1,
            ssh_retry: Duration::from_millis(200),
            ssh_retry_as_fallback: Duration::from_millis(200),
            ssh_timeout: Duration::from_secs(5),
            ssh_login: Duration::ZERO,
            max_ssh_in_flight: 1,
            head_start: Duration::ZERO,
            ssh_after: Duration::MAX,
            upgrade_every: Duration::MAX,
            fresh_window: Duration::ZERO,
            blocked_after: u32::MAX,
            first_tries: 3,
            give_up_after: Some(Duration::from_secs(3)),
            regrant_again_after: Duration::from_secs(60),
        }
    }

    fn allows(&self, t: Transport) -> bool {
        match self.choice {
            Choice::Only(o) => o == t,
            Choice::Race => t != Transport::Local,
        }
    }

    fn timeout(&self, t: Transport) -> Duration {
        match t {
            Transport::Quic | Transport::Local => self.quic_timeout,
            Transport::Ssh => self.ssh_timeout,
        }
    }
}

#[derive(Debug)]
struct Attempt {
    id: AttemptId,
    transport: Transport,
    started: Instant,
    /// Cancelled as timed out at this instant (`None`: the transport has its own).
    deadline: Option<Instant>,
    /// Finished, waiting to be used (an ssh link during QUIC's head start).
    ready: bool,
    /// Started while a link was up (a probe for a better one).
    upgrade: bool,
}

/// The state of the current link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Frames arrive.
    Good,
    /// Quiet for longer than usual: a spare link is being made beside it.
    Quiet,
    /// Silent past the limit (or closed): the banner shows.
    Lost,
}

#[derive(Debug)]
pub struct LinkPolicy {
    cfg: Config,
    /// The adopted link: its attempt and transport.
    current: Option<(AttemptId, Transport)>,
    health: Health,
    /// Since when no link has been good (connect time on the first connect).
    down_since: Option<Instant>,
    /// The transport last in use (kept while it is down).
    last_transport: Option<Transport>,
    attempts: Vec<Attempt>,
    next_id: u64,
    next_quic: Instant,
    next_ssh: Instant,
    next_upgrade: Option<Instant>,
    /// ssh joins the race from now on (in doubt).
    ssh_in_doubt: bool,
    /// After a clock jump or a network change: the next link made is used
    /// even if the old one speaks (it may only be replaying buffered frames).
    want_fresh: bool,
    /// When the current link spoke again after being quiet or lost.
    back_at: Option<Instant>,
    ever_attached: bool,
    first_failures: [u32; 3],
    quic_timeouts_while_ssh_ok: u32,
    remembered: Option<Transport>,
    /// "Over ssh" goes on the status line at this instant, unless QUIC comes
    /// first (a handed-over ssh link is used within QUIC's head start).
    notice_over_ssh_at: Option<Instant>,
    /// "Over ssh" was said since the last QUIC link: moving to QUIC is news.
    said_over_ssh: bool,
    /// ssh cannot work (authentication needs a prompt, no abide there).
    ssh_disabled: bool,
    last_error: Option<ConnectError>,
    gave_up: bool,
    /// A new grant is being fetched ([`Action::Rebootstrap`]): no attempts.
    regranting: bool,
    /// When the last new grant came.
    regranted_at: Option<Instant>,
    actions: VecDeque<Action>,
}

fn slot(t: Transport) -> usize {
    match t {
        Transport::Quic => 0,
        Transport::Ssh => 1,
        Transport::Local => 2,
    }
}

impl LinkPolicy {
    /// A policy about to make its first link: call [`connect`](Self::connect).
    pub fn new(cfg: Config, now: Instant) -> Self {
        LinkPolicy {
            cfg,
            current: None,
            health: Health::Lost,
            down_since: Some(now),
            last_transport: None,
            attempts: Vec::new(),
            next_id: 1,
            next_quic: now,
            next_ssh: now,
            next_upgrade: None,
            ssh_in_doubt: true,
            want_fresh: false,
            back_at: None,
            ever_attached: false,
            first_failures: [0; 3],
            quic_timeouts_while_ssh_ok: 0,
            remembered: None,
            notice_over_ssh_at: None,
            said_over_ssh: false,
            ssh_disabled: false,
            last_error: None,
            gave_up: false,
            regranting: false,
            regranted_at: None,
            actions: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The first connect: start every allowed transport at once.
    pub fn connect(&mut self, now: Instant) {
        self.down_since = Some(now);
        self.ssh_in_doubt = true;
        self.next_quic = now;
        self.next_ssh = now;
        self.handle_timeout(now);
    }

    /// The first connect, with a link that already exists: the bootstrap's
    /// own ssh connection, which carries on as an ssh link. Returns its
    /// attempt id (the driver files the link under it); the link is adopted at
    /// once and QUIC is raced beside it: a QUIC link that completes takes
    /// over, as from any ssh link. Call instead of [`connect`](Self::connect).
    pub fn handed_over(&mut self, transport: Transport, now: Instant) -> AttemptId {
        self.down_since = Some(now);
        self.next_quic = now;
        self.next_ssh = now;
        // The QUIC attempt first, so its head start runs from now.
        if transport != Transport::Quic && self.cfg.allows(Transport::Quic) {
            self.start(Transport::Quic, now, false);
            self.next_quic = now + self.cfg.quic_retry;
        }
        let id = AttemptId(self.next_id);
        self.next_id += 1;
        self.attempts.push(Attempt {
            id,
            transport,
            started: now,
            deadline: None,
            ready: false,
            upgrade: false,
        });
        let i = self.attempts.len() - 1;
        self.adopt(i, now);
        id
    }

    /// The transport of the current link.
    pub fn current(&self) -> Option<Transport> {
        self.current.map(|c| c.1)
    }

    /// Whether the current link carries the session (not quiet, not lost).
    pub fn is_connected(&self) -> bool {
        self.current.is_some() && self.health != Health::Lost
    }

    /// The last attempt's failure, for the status line.
    pub fn last_error(&self) -> Option<&ConnectError> {
        self.last_error.as_ref()
    }

    pub fn attempts_in_flight(&self) -> usize {
        self.attempts.iter().filter(|a| !a.ready).count()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Attempt `id` made a link (handshake done, ready for the hello).
    pub fn attempt_succeeded(&mut self, id: AttemptId, now: Instant) {
        let Some(i) = self.attempts.iter().position(|a| a.id == id) else {
            // Cancelled meanwhile: the driver drops it on our Cancel.
            return;
        };
        let t = self.attempts[i].transport;
        let just_back = self
            .back_at
            .is_some_and(|b| now < b + self.cfg.fresh_window);
        let good_now =
            self.current.is_some() && self.health == Health::Good && !self.want_fresh && !just_back;
        let better = match self.current() {
            Some(Transport::Ssh) => t == Transport::Quic,
            _ => false,
        };
        if good_now && !better {
            // The link came back by itself: this one is not needed.
            self.attempts.remove(i);
            self.actions.push_back(Action::Cancel { id });
            return;
        }
        if t == Transport::Ssh && !good_now && self.should_wait_for_quic(now) {
            self.attempts[i].ready = true;
            return;
        }
        self.adopt(i, now);
    }

    /// Attempt `id` failed (the driver saw it end with this error).
    pub fn attempt_failed(&mut self, id: AttemptId, err: ConnectError, now: Instant) {
        let Some(i) = self.attempts.iter().position(|a| a.id == id) else {
            return;
        };
        let a = self.attempts.remove(i);
        self.failed(a, err, now);
    }

    /// The current link has been quiet for longer than usual (a loss burst or
    /// a dead path; not yet evidence of either): make a spare link beside it.
    pub fn link_quiet(&mut self, now: Instant) {
        if self.current.is_some() && self.health == Health::Good {
            self.health = Health::Quiet;
            self.down_since = Some(now);
            self.reset_schedule(now);
            self.handle_timeout(now);
        }
    }

    /// The current link is silent past its limit: reconnecting (the banner shows).
    pub fn link_lost(&mut self, now: Instant) {
        if self.health != Health::Lost {
            if self.health == Health::Good {
                self.down_since = Some(now);
                self.reset_schedule(now);
            }
            self.health = Health::Lost;
            self.handle_timeout(now);
        }
    }

    /// The current link failed outright (closed, reset, a write stuck).
    pub fn link_closed(&mut self, now: Instant) {
        if self.current.take().is_some() {
            if self.health == Health::Good {
                self.down_since = Some(now);
                self.reset_schedule(now);
            }
            self.health = Health::Lost;
            self.handle_timeout(now);
        }
    }

    /// A frame arrived on the current link.
    pub fn heard(&mut self, now: Instant) {
        if self.current.is_none() || self.health == Health::Good {
            return;
        }
        // Attempts in flight are not aborted: a link that speaks again after
        // being lost may be about to die (an idle timeout, a backed-off TCP),
        // and a fresh one finishing soon after is used instead. After a mere
        // quiet spell (a slow link behind bulk output) the old link stays.
        if self.health == Health::Lost {
            self.back_at = Some(now);
        }
        self.health = Health::Good;
        self.down_since = None;
        if self.want_fresh {
            return;
        }
        self.ssh_in_doubt = false;
        self.schedule_upgrade(now);
    }

    /// The server refused the current link's grant (it no longer knows it):
    /// the link is gone, the attempts in flight carry the same grant, so they
    /// stop, and a new grant for the same session is asked for.
    pub fn grant_refused(&mut self, now: Instant) {
        if self.gave_up || self.regranting {
            return;
        }
        self.current = None;
        self.health = Health::Lost;
        self.down_since.get_or_insert(now);
        self.cancel_where(|_| true);
        if self
            .regranted_at
            .is_some_and(|t| now < t + self.cfg.regrant_again_after)
        {
            self.give_up(ConnectError::GrantLost(
                "refused again right after a new one".into(),
            ));
            return;
        }
        self.regranting = true;
        self.actions.push_back(Action::Rebootstrap);
    }

    /// The [`Action::Rebootstrap`] finished: with a new grant, reconnecting
    /// goes on at once; without one, this is the end (the error says why).
    pub fn rebootstrapped(&mut self, result: Result<(), ConnectError>, now: Instant) {
        if !std::mem::take(&mut self.regranting) || self.gave_up {
            return;
        }
        match result {
            Ok(()) => {
                self.regranted_at = Some(now);
                self.actions.push_back(Action::Notice(Notice::Regranted));
                self.reset_schedule(now);
                self.handle_timeout(now);
            }
            Err(e) => self.give_up(e),
        }
    }

    /// The wall clock jumped (a resume from suspend) or the network changed
    /// (another address, another gateway): whatever link there is may be
    /// dead, and either transport may work now. Try both at once.
    pub fn network_changed(&mut self, hint: Option<Transport>, now: Instant) {
        self.cfg.hint = hint;
        self.remembered = None;
        self.quic_timeouts_while_ssh_ok = 0;
        self.ssh_in_doubt = true;
        self.want_fresh = self.current.is_some();
        if self.health == Health::Good {
            self.health = Health::Quiet;
        }
        self.down_since.get_or_insert(now);
        self.next_quic = now;
        self.next_ssh = now;
        self.handle_timeout(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.gave_up {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |y: Instant| y.min(x)));
        for a in &self.attempts {
            if let (Some(d), false) = (a.deadline, a.ready) {
                at(d);
            }
        }
        if self.attempts.iter().any(|a| a.ready) {
            if let Some(q) = self.quic_head_start_end() {
                at(q);
            }
        }
        if let Some(n) = self.notice_over_ssh_at {
            at(n);
        }
        if self.regranting {
            // Waiting for the new grant; nothing else is due.
        } else if self.is_down() {
            if self.wants(Transport::Quic) && self.room(Transport::Quic) {
                at(self.next_quic);
            }
            if self.wants(Transport::Ssh) && self.room(Transport::Ssh) {
                at(self.next_ssh_due());
            }
            if self.wants(Transport::Local) && self.room(Transport::Local) {
                at(self.next_quic);
            }
            if let (Some(since), Some(limit)) = (self.down_since, self.cfg.give_up_after) {
                at(since + limit);
            }
        } else if let Some(u) = self.next_upgrade {
            at(u);
        }
        t
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.gave_up || self.regranting {
            return;
        }
        // Attempts past their deadline count as timed out.
        let expired: Vec<AttemptId> = self
            .attempts
            .iter()
            .filter(|a| !a.ready && a.deadline.is_some_and(|d| now >= d))
            .map(|a| a.id)
            .collect();
        for id in expired {
            self.actions.push_back(Action::Cancel { id });
            self.attempt_failed(id, ConnectError::Timeout, now);
            if self.gave_up {
                return;
            }
        }
        // An ssh link that waited out QUIC's head start.
        if let Some(i) = self.attempts.iter().position(|a| a.ready) {
            if !self.should_wait_for_quic(now) {
                self.adopt(i, now);
            }
        }
        if self.notice_over_ssh_at.is_some_and(|n| now >= n) {
            self.notice_over_ssh_at = None;
            if self.current() == Some(Transport::Ssh) {
                self.say_over_ssh();
            }
        }
        if self.is_down() {
            if let (Some(since), Some(limit)) = (self.down_since, self.cfg.give_up_after) {
                if now >= since + limit && self.ever_attached {
                    let e = self.last_error.clone().unwrap_or(ConnectError::Timeout);
                    self.give_up(e);
                    return;
                }
            }
            let down_for = self.down_since.map_or(Duration::ZERO, |s| now - s);
            if down_for >= self.cfg.ssh_after {
                self.ssh_in_doubt = true;
            }
            for t in [Transport::Quic, Transport::Local] {
                if self.wants(t) && self.room(t) && now >= self.next_quic {
                    self.start(t, now, false);
                    self.next_quic = now + self.cfg.quic_retry;
                }
            }
            if self.wants(Transport::Ssh) && self.room(Transport::Ssh) && now >= self.next_ssh_due()
            {
                self.start(Transport::Ssh, now, false);
                self.next_ssh = now + self.ssh_interval();
            }
        } else if let Some(u) = self.next_upgrade {
            if now >= u {
                let probing = self
                    .attempts
                    .iter()
                    .filter(|a| a.transport == Transport::Quic)
                    .count();
                if probing < 2 {
                    self.start(Transport::Quic, now, true);
                }
                self.next_upgrade = Some(now + self.cfg.upgrade_every);
            }
        }
    }

    fn is_down(&self) -> bool {
        self.current.is_none() || self.health != Health::Good
    }

    /// Whether new attempts over `t` are wanted while down.
    fn wants(&self, t: Transport) -> bool {
        if !self.cfg.allows(t) {
            return false;
        }
        match t {
            Transport::Ssh => {
                !self.ssh_disabled
                    && (self.cfg.choice == Choice::Only(Transport::Ssh)
                        || self.ssh_in_doubt
                        || self.last_transport == Some(Transport::Ssh)
                        || self.cfg.hint == Some(Transport::Ssh))
            }
            _ => true,
        }
    }

    fn room(&self, t: Transport) -> bool {
        let max = match t {
            Transport::Ssh => self.cfg.max_ssh_in_flight,
            _ => self.cfg.max_quic_in_flight,
        };
        // During the first connect, a transport that failed its tries is done.
        if !self.ever_attached && self.first_failures[slot(t)] >= self.cfg.first_tries {
            return false;
        }
        self.attempts.iter().filter(|a| a.transport == t).count() < max
    }

    /// When the next ssh may start: not before the youngest one running had
    /// `ssh_login` to log in (a crowd of logins on a slow machine makes each
    /// slower), and not before the retry interval.
    fn next_ssh_due(&self) -> Instant {
        let youngest = self
            .attempts
            .iter()
            .filter(|a| a.transport == Transport::Ssh && !a.ready)
            .map(|a| a.started + self.cfg.ssh_login)
            .max();
        youngest.map_or(self.next_ssh, |y| y.max(self.next_ssh))
    }

    fn ssh_interval(&self) -> Duration {
        if self.last_transport == Some(Transport::Ssh)
            || self.cfg.choice == Choice::Only(Transport::Ssh)
            || self.cfg.hint == Some(Transport::Ssh)
        {
            self.cfg.ssh_retry
        } else {
            self.cfg.ssh_retry_as_fallback
        }
    }

    fn reset_schedule(&mut self, now: Instant) {
        self.next_quic = now;
        self.next_ssh = now;
    }

    fn start(&mut self, t: Transport, now: Instant, upgrade: bool) {
        let id = AttemptId(self.next_id);
        self.next_id += 1;
        // The very first ssh may prompt; it has the transport's own timeout.
        let interactive = !self.ever_attached && t == Transport::Ssh;
        let deadline = (!interactive).then(|| now + self.cfg.timeout(t));
        self.attempts.push(Attempt {
            id,
            transport: t,
            started: now,
            deadline,
            ready: false,
            upgrade,
        });
        self.actions.push_back(Action::Start {
            id,
            transport: t,
            interactive,
        });
    }

    /// When the head start of the oldest QUIC attempt still running ends.
    fn quic_head_start_end(&self) -> Option<Instant> {
        self.attempts
            .iter()
            .filter(|a| a.transport == Transport::Quic && !a.ready && !a.upgrade)
            .map(|a| a.started + self.cfg.head_start)
            .min()
    }

    fn should_wait_for_quic(&self, now: Instant) -> bool {
        if self.cfg.hint == Some(Transport::Ssh) || self.remembered == Some(Transport::Ssh) {
            return false;
        }
        self.quic_head_start_end().is_some_and(|end| now < end)
    }

    fn adopt(&mut self, i: usize, now: Instant) {
        let a = self.attempts.remove(i);
        let previous = self.current.map(|c| c.1).or(self.last_transport);
        self.current = Some((a.id, a.transport));
        self.health = Health::Good;
        self.down_since = None;
        self.last_error = None;
        self.ever_attached = true;
        self.ssh_in_doubt = false;
        self.want_fresh = false;
        self.back_at = None;
        self.last_transport = Some(a.transport);
        self.actions.push_back(Action::Adopt {
            id: a.id,
            transport: a.transport,
        });
        match a.transport {
            Transport::Quic => {
                // Nothing beats a working QUIC link: stop the rest.
                self.cancel_where(|_| true);
                self.quic_timeouts_while_ssh_ok = 0;
                if self.remembered != Some(Transport::Quic) {
                    self.remembered = Some(Transport::Quic);
                    self.actions.push_back(Action::Remember(Transport::Quic));
                }
                if previous == Some(Transport::Ssh) && self.said_over_ssh {
                    self.actions.push_back(Action::Notice(Notice::BackOnQuic));
                }
                self.said_over_ssh = false;
                self.notice_over_ssh_at = None;
                self.next_upgrade = None;
            }
            Transport::Ssh => {
                // QUIC attempts keep running: if one completes, the session moves.
                self.cancel_where(|b| b.transport != Transport::Quic);
                if self.cfg.choice == Choice::Race && previous != Some(Transport::Ssh) {
                    // While QUIC's head start runs, QUIC may still take over
                    // unannounced (a handed-over link is used at once).
                    match self.quic_head_start_end().filter(|&end| end > now) {
                        Some(end) => self.notice_over_ssh_at = Some(end),
                        None => self.say_over_ssh(),
                    }
                }
                self.schedule_upgrade(now);
            }
            Transport::Local => self.cancel_where(|_| true),
        }
    }

    fn say_over_ssh(&mut self) {
        self.said_over_ssh = true;
        self.actions.push_back(Action::Notice(Notice::OverSsh));
    }

    fn schedule_upgrade(&mut self, now: Instant) {
        self.next_upgrade = (self.cfg.choice == Choice::Race
            && self.current() == Some(Transport::Ssh))
        .then(|| now + self.cfg.upgrade_every);
    }

    fn cancel_where(&mut self, pred: impl Fn(&Attempt) -> bool) {
        let mut kept = Vec::new();
        for a in self.attempts.drain(..) {
            if pred(&a) {
                self.actions.push_back(Action::Cancel { id: a.id });
            } else {
                kept.push(a);
            }
        }
        self.attempts = kept;
    }

    fn failed(&mut self, a: Attempt, err: ConnectError, now: Instant) {
        if matches!(err, ConnectError::FingerprintMismatch(_)) {
            // Somebody else answers for this server: no other transport is safer.
            self.give_up(err);
            return;
        }
        if a.transport == Transport::Quic
            && err == ConnectError::Timeout
            && self.current() == Some(Transport::Ssh)
            && self.health == Health::Good
        {
            // A whole handshake window without an answer while TCP works.
            self.quic_timeouts_while_ssh_ok += 1;
            if self.quic_timeouts_while_ssh_ok >= self.cfg.blocked_after
                && self.remembered != Some(Transport::Ssh)
            {
                self.remembered = Some(Transport::Ssh);
                self.actions.push_back(Action::Remember(Transport::Ssh));
            }
        }
        if a.transport == Transport::Ssh && err.is_permanent() {
            self.ssh_disabled = true;
        }
        if !self.ever_attached {
            self.first_failures[slot(a.transport)] += 1;
        }
        if self.attempts.is_empty() {
            self.want_fresh = false;
        }
        // Keep the more telling error (an ssh verdict over a QUIC timeout).
        if !(err == ConnectError::Timeout
            && self
                .last_error
                .as_ref()
                .is_some_and(|e| e != &ConnectError::Timeout))
        {
            self.last_error = Some(err);
        }
        if self.nothing_left_to_try() {
            let e = self.last_error.clone().unwrap_or(ConnectError::Timeout);
            self.give_up(e);
            return;
        }
        let _ = now;
    }

    /// No allowed transport can still produce a link.
    fn nothing_left_to_try(&self) -> bool {
        if !self.attempts.is_empty() || self.current.is_some() {
            return false;
        }
        let usable = |t: Transport| {
            self.cfg.allows(t)
                && !(t == Transport::Ssh && self.ssh_disabled)
                && (self.ever_attached || self.first_failures[slot(t)] < self.cfg.first_tries)
        };
        ![Transport::Quic, Transport::Ssh, Transport::Local]
            .into_iter()
            .any(usable)
    }

    fn give_up(&mut self, err: ConnectError) {
        self.cancel_where(|_| true);
        self.gave_up = true;
        self.actions.push_back(Action::GiveUp(err));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(p: &mut LinkPolicy) -> Vec<Action> {
        std::iter::from_fn(|| p.poll_action()).collect()
    }

    fn started(actions: &[Action], t: Transport) -> Vec<AttemptId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start { id, transport, .. } if *transport == t => Some(*id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn connect_races_both_and_quic_wins_its_head_start() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        p.connect(t0);
        let a = drain(&mut p);
        let q = started(&a, Transport::Quic)[0];
        let s = started(&a, Transport::Ssh)[0];
        // ssh is in first, inside QUIC's head start: it waits.
        p.attempt_succeeded(s, t0 + ms(100));
        assert!(drain(&mut p).is_empty());
        p.attempt_succeeded(q, t0 + ms(150));
        let a = drain(&mut p);
        assert_eq!(
            a[0],
            Action::Adopt {
                id: q,
                transport: Transport::Quic
            }
        );
        assert!(a.contains(&Action::Cancel { id: s }));
        assert!(a.contains(&Action::Remember(Transport::Quic)));
    }

    #[test]
    fn blocked_udp_costs_only_the_ssh_login_and_quic_keeps_probing() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        p.connect(t0);
        let a = drain(&mut p);
        let q = started(&a, Transport::Quic)[0];
        let s = started(&a, Transport::Ssh)[0];
        p.attempt_succeeded(s, t0 + ms(400));
        let a = drain(&mut p);
        assert_eq!(
            a[0],
            Action::Adopt {
                id: s,
                transport: Transport::Ssh
            }
        );
        assert!(a.contains(&Action::Notice(Notice::OverSsh)));
        // The QUIC attempt was not cancelled: it can still move the session.
        assert!(!a.contains(&Action::Cancel { id: q }));
        // Timed out: no verdict from one timeout.
        p.handle_timeout(t0 + ms(3000));
        let a = drain(&mut p);
        assert!(a.contains(&Action::Cancel { id: q }));
        assert!(!a.contains(&Action::Remember(Transport::Ssh)));
        // Probes continue every few seconds; UDP comes back: moved over.
        let mut now = t0 + ms(3000);
        let mut probe = started(&a, Transport::Quic).first().copied();
        while probe.is_none() {
            now = p.poll_timeout().unwrap();
            p.handle_timeout(now);
            probe = started(&drain(&mut p), Transport::Quic).first().copied();
        }
        assert!(now <= t0 + ms(400) + p.config().upgrade_every * 2);
        p.attempt_succeeded(probe.unwrap(), now + ms(10));
        let a = drain(&mut p);
        assert!(a.contains(&Action::Adopt {
            id: probe.unwrap(),
            transport: Transport::Quic
        }));
        assert!(a.contains(&Action::Notice(Notice::BackOnQuic)));
    }

    #[test]
    fn a_wrong_certificate_never_falls_back() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        p.connect(t0);
        let a = drain(&mut p);
        let q = started(&a, Transport::Quic)[0];
        let s = started(&a, Transport::Ssh)[0];
        p.attempt_failed(q, ConnectError::FingerprintMismatch("x".into()), t0 + ms(5));
        let a = drain(&mut p);
        assert!(a.contains(&Action::Cancel { id: s }));
        assert!(matches!(
            a.last(),
            Some(Action::GiveUp(ConnectError::FingerprintMismatch(_)))
        ));
        // The ssh link arriving later is not used.
        p.attempt_succeeded(s, t0 + ms(300));
        assert!(drain(&mut p).is_empty());
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn ssh_that_needs_a_password_in_the_background_stops_ssh_not_quic() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        p.connect(t0);
        let a = drain(&mut p);
        let q = started(&a, Transport::Quic)[0];
        p.attempt_succeeded(q, t0 + ms(20));
        drain(&mut p);
        p.link_lost(t0 + ms(5000));
        let mut now = t0 + ms(5000);
        let mut ssh = None;
        while ssh.is_none() {
            now = p.poll_timeout().unwrap();
            p.handle_timeout(now);
            ssh = started(&drain(&mut p), Transport::Ssh).first().copied();
        }
        p.attempt_failed(ssh.unwrap(), ConnectError::AuthRefused("pw".into()), now);
        assert!(!drain(&mut p).iter().any(|a| matches!(a, Action::GiveUp(_))));
        for _ in 0..100 {
            now = p.poll_timeout().unwrap();
            p.handle_timeout(now);
            assert!(started(&drain(&mut p), Transport::Ssh).is_empty());
        }
    }

    #[test]
    fn loss_alone_records_nothing_and_attempts_are_never_aborted_by_new_ones() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        p.connect(t0);
        let a = drain(&mut p);
        let q = started(&a, Transport::Quic)[0];
        p.attempt_succeeded(q, t0 + ms(20));
        drain(&mut p);
        p.link_lost(t0 + ms(1000));
        let mut now = t0 + ms(1000);
        let mut all = Vec::new();
        while now < t0 + ms(2400) {
            now = p.poll_timeout().unwrap();
            p.handle_timeout(now);
            all.extend(drain(&mut p));
        }
        let quic = started(&all, Transport::Quic);
        assert!(quic.len() >= 5, "{all:?}");
        // Nothing started was cancelled by the next start.
        assert!(!all.iter().any(|a| matches!(a, Action::Cancel { .. })));
        // One handshake gets through (a retransmission): QUIC again, no record of ssh.
        p.attempt_succeeded(quic[0], now);
        let a = drain(&mut p);
        assert!(a.contains(&Action::Adopt {
            id: quic[0],
            transport: Transport::Quic
        }));
        assert!(!a.contains(&Action::Remember(Transport::Ssh)));
    }

    #[test]
    fn probe_rate_bounds_recovery_and_traffic_whatever_the_outage() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Only(Transport::Quic), None), t0);
        p.connect(t0);
        let q = started(&drain(&mut p), Transport::Quic)[0];
        p.attempt_succeeded(q, t0);
        drain(&mut p);
        p.link_lost(t0);
        let mut now = t0;
        let mut last_start = t0;
        while now < t0 + Duration::from_secs(600) {
            now = p.poll_timeout().unwrap();
            p.handle_timeout(now);
            let a = drain(&mut p);
            if !started(&a, Transport::Quic).is_empty() {
                assert!(now - last_start <= p.config().quic_retry);
                last_start = now;
            }
            assert!(p.attempts_in_flight() <= p.config().max_quic_in_flight);
        }
    }

    #[test]
    fn a_handed_over_ssh_link_is_used_at_once_and_quic_takes_over_quietly() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        let h = p.handed_over(Transport::Ssh, t0);
        let a = drain(&mut p);
        let q = started(&a, Transport::Quic)[0];
        assert!(started(&a, Transport::Ssh).is_empty(), "{a:?}");
        assert!(a.contains(&Action::Adopt {
            id: h,
            transport: Transport::Ssh
        }));
        assert!(!a.iter().any(|x| matches!(x, Action::Notice(_))), "{a:?}");
        assert!(p.is_connected());
        // QUIC completes within its head start: the session moves, unannounced.
        p.attempt_succeeded(q, t0 + ms(40));
        let a = drain(&mut p);
        assert_eq!(
            a[0],
            Action::Adopt {
                id: q,
                transport: Transport::Quic
            }
        );
        assert!(a.contains(&Action::Remember(Transport::Quic)));
        assert!(!a.iter().any(|x| matches!(x, Action::Notice(_))), "{a:?}");
        // Nothing left to say later either.
        let mut now = t0 + ms(40);
        while let Some(t) = p.poll_timeout().filter(|t| *t < t0 + ms(5000)) {
            now = t.max(now);
            p.handle_timeout(now);
            assert!(drain(&mut p).is_empty());
        }
    }

    #[test]
    fn a_handed_over_ssh_link_with_udp_blocked_needs_no_second_login() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        p.handed_over(Transport::Ssh, t0);
        let q = started(&drain(&mut p), Transport::Quic)[0];
        // The head start ends: now it is news that the session runs over ssh.
        assert_eq!(p.poll_timeout(), Some(t0 + p.config().head_start));
        p.handle_timeout(t0 + p.config().head_start);
        assert_eq!(drain(&mut p), vec![Action::Notice(Notice::OverSsh)]);
        // Minutes on the handed-over link: QUIC probes, never another ssh.
        let mut now = t0 + p.config().head_start;
        let mut all = Vec::new();
        while now < t0 + Duration::from_secs(120) {
            now = p.poll_timeout().unwrap();
            p.handle_timeout(now);
            let a = drain(&mut p);
            for id in started(&a, Transport::Quic) {
                p.attempt_failed(id, ConnectError::Timeout, now);
            }
            all.extend(a);
        }
        assert!(started(&all, Transport::Ssh).is_empty());
        assert!(all.contains(&Action::Cancel { id: q }));
        assert!(all.contains(&Action::Remember(Transport::Ssh)));
        assert_eq!(p.current(), Some(Transport::Ssh));
        // It dies: another ssh at once (the login was the bootstrap's).
        p.link_closed(now);
        let a = drain(&mut p);
        assert_eq!(started(&a, Transport::Ssh).len(), 1, "{a:?}");
    }

    /// A resume refused for its grant stops every attempt (they carry the
    /// same grant), asks for a new grant once, and with it reconnects at
    /// once; a refusal right after a new grant, or no new grant, ends it.
    #[test]
    fn a_refused_grant_is_fetched_again_over_ssh_once() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        p.connect(t0);
        let q = started(&drain(&mut p), Transport::Quic)[0];
        p.attempt_succeeded(q, t0 + ms(20));
        drain(&mut p);
        // Days later: the path is back, the resume is refused.
        let t1 = t0 + Duration::from_secs(3 * 86400);
        p.link_lost(t1);
        let a = drain(&mut p);
        let running: Vec<AttemptId> = started(&a, Transport::Quic)
            .into_iter()
            .chain(started(&a, Transport::Ssh))
            .collect();
        assert!(!running.is_empty());
        p.grant_refused(t1 + ms(30));
        let a = drain(&mut p);
        for id in &running {
            assert!(a.contains(&Action::Cancel { id: *id }), "{a:?}");
        }
        assert_eq!(a.last(), Some(&Action::Rebootstrap));
        assert_eq!(a.iter().filter(|x| **x == Action::Rebootstrap).count(), 1);
        // Nothing starts while the new grant is fetched, however long it takes.
        assert_eq!(p.poll_timeout(), None);
        p.handle_timeout(t1 + Duration::from_secs(10));
        p.grant_refused(t1 + Duration::from_secs(10));
        assert!(drain(&mut p).is_empty());
        // The new grant: attempts at once, and a notice.
        let t2 = t1 + Duration::from_secs(2);
        p.rebootstrapped(Ok(()), t2);
        let a = drain(&mut p);
        assert!(a.contains(&Action::Notice(Notice::Regranted)));
        let q2 = started(&a, Transport::Quic)[0];
        p.attempt_succeeded(q2, t2 + ms(20));
        assert!(drain(&mut p).contains(&Action::Adopt {
            id: q2,
            transport: Transport::Quic
        }));
        // Refused again at once: the server means it.
        p.grant_refused(t2 + ms(40));
        assert!(matches!(
            drain(&mut p).last(),
            Some(Action::GiveUp(ConnectError::GrantLost(_)))
        ));

        // No new grant to be had: the end, with its reason.
        let mut p = LinkPolicy::new(Config::remote(Choice::Only(Transport::Quic), None), t0);
        p.connect(t0);
        let q = started(&drain(&mut p), Transport::Quic)[0];
        p.attempt_succeeded(q, t0 + ms(20));
        drain(&mut p);
        p.grant_refused(t1);
        assert_eq!(drain(&mut p), [Action::Rebootstrap]);
        let why = ConnectError::GrantLost("no session named s".into());
        p.rebootstrapped(Err(why.clone()), t1 + ms(900));
        assert_eq!(drain(&mut p), [Action::GiveUp(why)]);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_handed_over_link_that_fails_at_once_is_replaced_at_once() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::remote(Choice::Race, None), t0);
        p.handed_over(Transport::Ssh, t0);
        drain(&mut p);
        p.link_closed(t0 + ms(5));
        let a = drain(&mut p);
        assert_eq!(started(&a, Transport::Ssh).len(), 1, "{a:?}");
        assert!(!a.iter().any(|x| matches!(x, Action::GiveUp(_))));
    }

    #[test]
    fn local_first_connect_gives_up_after_its_tries() {
        let t0 = Instant::now();
        let mut p = LinkPolicy::new(Config::local(), t0);
        p.connect(t0);
        let mut now = t0;
        let mut gave_up = false;
        let mut tries = 0;
        while !gave_up {
            let actions = drain(&mut p);
            if actions.is_empty() {
                now = p.poll_timeout().unwrap();
                p.handle_timeout(now);
            }
            for a in actions {
                match a {
                    Action::Start { id, .. } => {
                        tries += 1;
                        p.attempt_failed(id, ConnectError::Unreachable("gone".into()), now);
                    }
                    Action::GiveUp(_) => gave_up = true,
                    _ => {}
                }
            }
        }
        assert_eq!(tries, 3);
    }
}
