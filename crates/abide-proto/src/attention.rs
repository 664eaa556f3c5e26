//! Attention: what a program does to call its user, found in its output bytes.
//!
//! A program that stops to wait rings the bell (BEL), asks for a desktop
//! notification (OSC 9 as iTerm2 reads it, OSC 777;notify as rxvt/foot/ghostty
//! do, OSC 99 as kitty sends it), or just falls silent. The daemon sees every
//! byte whether or not anyone is attached, so it feeds them through
//! [`Scanner`] (a streaming parser: a sequence may be split across reads at
//! any byte, and an OSC payload never holds more than [`MAX_OSC`] bytes), and
//! [`Attention`] keeps what the user has not seen yet: the state `abide ls`
//! shows, the events `abide watch` reports, and the one-line summary an
//! attach announces. [`Journal`] numbers the events so that a watcher that
//! reconnects gets each one exactly once.
//!
//! Sans-IO: time comes in as `Instant` (decisions) and Unix seconds (what is
//! shown to the user), never read here.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The largest OSC payload kept; longer ones (images, clipboard) are skipped
/// without being stored.
pub const MAX_OSC: usize = 4096;
/// Characters kept of a title or a notification's text.
pub const MAX_TEXT: usize = 256;
/// Events kept for watchers that reconnect.
pub const JOURNAL_LEN: usize = 256;
/// A program that rings the bell in a loop makes one event per this long.
pub const BELL_EVERY: Duration = Duration::from_secs(1);

/// What one sequence in the output asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Bell,
    Notify { title: String, body: String },
    Title(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Ground,
    Esc,
    Csi,
    Osc,
    /// ESC inside an OSC: `\` ends it (ST), anything else aborts it.
    OscEsc,
    /// DCS, SOS, PM, APC: skipped up to ST.
    Str,
    StrEsc,
}

/// A kitty notification sent in several OSC 99 pieces (`d=0` until the last).
#[derive(Debug, Default)]
struct KittyPending {
    id: String,
    title: String,
    body: String,
}

/// Streaming escape-sequence scanner. Memory is bounded by [`MAX_OSC`] plus
/// one pending kitty notification of at most 2 × [`MAX_TEXT`] characters.
#[derive(Debug)]
pub struct Scanner {
    st: St,
    osc: Vec<u8>,
    overflow: bool,
    kitty: Option<KittyPending>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            st: St::Ground,
            osc: Vec::new(),
            overflow: false,
            kitty: None,
        }
    }
}

const BEL: u8 = 0x07;
const ESC: u8 = 0x1b;
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;

impl Scanner {
    /// Scans `bytes`, appending what they signal to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Signal>) {
        let mut i = 0;
        while i < bytes.len() {
            // Plain text is most of the output: skip to the next BEL or ESC.
            if self.st == St::Ground {
                match memchr::memchr2(BEL, ESC, &bytes[i..]) {
                    Some(k) => i += k,
                    None => return,
                }
            }
            self.byte(bytes[i], out);
            i += 1;
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Signal>) {
        match self.st {
            St::Ground => match b {
                BEL => out.push(Signal::Bell),
                ESC => self.st = St::Esc,
                _ => {}
            },
            St::Esc => match b {
                b'[' => self.st = St::Csi,
                b']' => {
                    self.osc.clear();
                    self.overflow = false;
                    self.st = St::Osc;
                }
                b'P' | b'X' | b'^' | b'_' => self.st = St::Str,
                ESC => {}
                // C0 controls are executed inside a sequence, as terminals do.
                BEL => out.push(Signal::Bell),
                CAN | SUB => self.st = St::Ground,
                // Intermediates (ESC ( B) keep the sequence open.
                0x20..=0x2f => {}
                _ => self.st = St::Ground,
            },
            St::Csi => match b {
                0x40..=0x7e => self.st = St::Ground,
                BEL => out.push(Signal::Bell),
                ESC => self.st = St::Esc,
                CAN | SUB => self.st = St::Ground,
                _ => {}
            },
            St::Osc => match b {
                BEL => {
                    self.finish_osc(out);
                    self.st = St::Ground;
                }
                ESC => self.st = St::OscEsc,
                CAN | SUB => self.st = St::Ground,
                _ => {
                    if self.osc.len() < MAX_OSC {
                        self.osc.push(b);
                    } else {
                        self.overflow = true;
                    }
                }
            },
            St::OscEsc => {
                if b == b'\\' {
                    self.finish_osc(out);
                    self.st = St::Ground;
                } else {
                    // An unterminated OSC: dropped; the ESC starts a new sequence.
                    self.st = St::Esc;
                    self.byte(b, out);
                }
            }
            St::Str => match b {
                ESC => self.st = St::StrEsc,
                CAN | SUB => self.st = St::Ground,
                _ => {}
            },
            St::StrEsc => {
                if b == b'\\' {
                    self.st = St::Ground;
                } else {
                    self.st = St::Esc;
                    self.byte(b, out);
                }
            }
        }
    }

    fn finish_osc(&mut self, out: &mut Vec<Signal>) {
        if self.overflow {
            self.osc.clear();
            return;
        }
        let payload = std::mem::take(&mut self.osc);
        let (code, rest) = match payload.iter().position(|&c| c == b';') {
            Some(i) => (&payload[..i], &payload[i + 1..]),
            None => (&payload[..], &[][..]),
        };
        match code {
            b"0" | b"2" => out.push(Signal::Title(text(rest))),
            b"9" => {
                // ConEmu uses OSC 9;N;… (N a number) for progress and other
                // things that are not notifications.
                let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                let conemu = digits > 0 && (digits == rest.len() || rest[digits] == b';');
                if !conemu && !rest.is_empty() {
                    out.push(Signal::Notify {
                        title: String::new(),
                        body: text(rest),
                    });
                }
            }
            b"777" => {
                let mut parts = rest.splitn(3, |&c| c == b';');
                if parts.next() == Some(&b"notify"[..]) {
                    let title = text(parts.next().unwrap_or_default());
                    let body = text(parts.next().unwrap_or_default());
                    out.push(Signal::Notify { title, body });
                }
            }
            b"99" => self.kitty(rest, out),
            _ => {}
        }
        self.osc = payload;
        self.osc.clear();
    }

    /// `OSC 99 ; key=value:key=value ; payload`: `i` names the notification,
    /// `d=0` says more pieces follow, `p` says which part the payload is
    /// (title by default), `e=1` that it is base64.
    fn kitty(&mut self, rest: &[u8], out: &mut Vec<Signal>) {
        let (meta, payload) = match rest.iter().position(|&c| c == b';') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let (mut id, mut done, mut part, mut b64) = (&b""[..], true, &b"title"[..], false);
        for kv in meta.split(|&c| c == b':') {
            let Some(eq) = kv.iter().position(|&c| c == b'=') else {
                continue;
            };
            let (k, v) = (&kv[..eq], &kv[eq + 1..]);
            match k {
                b"i" => id = v,
                b"d" => done = v != b"0",
                b"p" => part = v,
                b"e" => b64 = v == b"1",
                _ => {}
            }
        }
        let decoded;
        let payload = if b64 {
            decoded = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .unwrap_or_default();
            &decoded[..]
        } else {
            payload
        };
        let id = String::from_utf8_lossy(id).into_owned();
        let pending = match &mut self.kitty {
            Some(p) if p.id == id => p,
            slot => slot.insert(KittyPending {
                id,
                ..Default::default()
            }),
        };
        match part {
            b"title" => append_text(&mut pending.title, payload),
            b"body" => append_text(&mut pending.body, payload),
            // Queries, icons, buttons, close requests: nothing to show.
            _ => {}
        }
        if done {
            let p = self.kitty.take().unwrap_or_default();
            if !p.title.is_empty() || !p.body.is_empty() {
                out.push(Signal::Notify {
                    title: p.title,
                    body: p.body,
                });
            }
        }
    }
}

/// Printable text from a payload: lossy UTF-8, controls dropped, bounded.
fn text(bytes: &[u8]) -> String {
    let mut s = String::new();
    append_text(&mut s, bytes);
    s
}

fn append_text(s: &mut String, bytes: &[u8]) {
    let have = s.chars().count();
    s.extend(
        String::from_utf8_lossy(bytes)
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_TEXT.saturating_sub(have)),
    );
}

/// What `abide ls` shows for a session, most urgent first.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running,
    /// Silent since output that came after the user last looked.
    Quiet,
    Bell,
    /// A desktop notification: its text.
    Asks(String),
    Exited(i32),
}

/// What happened, as a watcher hears it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Bell,
    Notify {
        title: String,
        body: String,
    },
    /// No output for this long after activity.
    Quiet {
        secs: u64,
    },
    Exited {
        code: i32,
    },
}

/// An event of one session, numbered by the daemon's [`Journal`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AttentionEvent {
    pub seq: u64,
    pub session_id: u64,
    pub session: String,
    /// Unix seconds.
    pub at: u64,
    pub kind: EventKind,
}

impl EventKind {
    /// A one-line title and body, for printing and for desktop notifications.
    pub fn title_body(&self, session: &str) -> (String, String) {
        match self {
            EventKind::Bell => (format!("{session}: bell"), String::new()),
            EventKind::Notify { title, body } => {
                let t = if title.is_empty() {
                    format!("{session} asks")
                } else {
                    format!("{session}: {title}")
                };
                (t, body.clone())
            }
            EventKind::Quiet { secs } => (
                format!("{session}: quiet"),
                format!("no output for {}", duration(*secs)),
            ),
            EventKind::Exited { code } => (format!("{session}: exited {code}"), String::new()),
        }
    }
}

/// The attention part of a session's `ls` entry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub state: State,
    /// Since the user last attached.
    pub bells: u32,
    pub notifications: u32,
    /// The last notification's text and when it came (Unix seconds).
    pub last_notification: Option<(String, u64)>,
    /// The window title the program set last (OSC 0/2).
    pub title: Option<String>,
}

impl Summary {
    /// The line an attach shows: "2 notifications, last: '…' at 14:02";
    /// `None` when nothing happened. `clock` renders Unix seconds as local time.
    pub fn announcement(&self, clock: impl Fn(u64) -> String) -> Option<String> {
        let mut parts = Vec::new();
        if self.notifications > 0 {
            let n = self.notifications;
            let mut p = format!("{n} notification{}", if n == 1 { "" } else { "s" });
            if let Some((t, at)) = &self.last_notification {
                p.push_str(&format!(", last: '{}' at {}", ellipsize(t, 60), clock(*at)));
            }
            parts.push(p);
        }
        if self.bells > 0 {
            let n = self.bells;
            parts.push(format!("{n} bell{}", if n == 1 { "" } else { "s" }));
        }
        if parts.is_empty() && self.state == State::Quiet {
            parts.push("it went quiet".into());
        }
        (!parts.is_empty()).then(|| format!("while you were away: {}", parts.join("; ")))
    }
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('\u{2026}');
    t
}

/// `12m`, `3h`, `45s`: the short form `ls` uses.
pub fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// One session's attention: fed its output and the time, it says what to
/// journal, and keeps what `ls` and the next attach show.
#[derive(Debug)]
pub struct Attention {
    scanner: Scanner,
    signals: Vec<Signal>,
    quiet_after: Option<Duration>,
    last_output: Option<Instant>,
    /// Output came since the user last looked or the last quiet event.
    active: bool,
    state: State,
    bells: u32,
    notifications: u32,
    last_notification: Option<(String, u64)>,
    title: Option<String>,
    last_bell_event: Option<Instant>,
}

impl Attention {
    /// `quiet_after`: silence after activity that counts as "quiet" (off: `None`).
    pub fn new(quiet_after: Option<Duration>) -> Self {
        Attention {
            scanner: Scanner::default(),
            signals: Vec::new(),
            quiet_after,
            last_output: None,
            active: false,
            state: State::Running,
            bells: 0,
            notifications: 0,
            last_notification: None,
            title: None,
            last_bell_event: None,
        }
    }

    /// Program output. `watched`: a client is attached, so the user's own
    /// terminal shows bells and notifications and nothing is marked.
    pub fn output(
        &mut self,
        bytes: &[u8],
        watched: bool,
        now: Instant,
        unix: u64,
    ) -> Vec<EventKind> {
        self.last_output = Some(now);
        self.active = !watched;
        if self.state == State::Quiet {
            self.state = State::Running;
        }
        self.signals.clear();
        self.scanner.feed(bytes, &mut self.signals);
        let mut events = Vec::new();
        for s in self.signals.drain(..) {
            match s {
                Signal::Title(t) => self.title = Some(t),
                _ if watched => {}
                Signal::Bell => {
                    self.bells = self.bells.saturating_add(1);
                    if !matches!(self.state, State::Asks(_) | State::Exited(_)) {
                        self.state = State::Bell;
                    }
                    let recent = self
                        .last_bell_event
                        .is_some_and(|t| now.saturating_duration_since(t) < BELL_EVERY);
                    if !recent {
                        self.last_bell_event = Some(now);
                        events.push(EventKind::Bell);
                    }
                }
                Signal::Notify { title, body } => {
                    self.notifications = self.notifications.saturating_add(1);
                    let shown = match (title.is_empty(), body.is_empty()) {
                        (false, false) => format!("{title}: {body}"),
                        (true, _) => body.clone(),
                        (false, true) => title.clone(),
                    };
                    self.last_notification = Some((shown.clone(), unix));
                    if !matches!(self.state, State::Exited(_)) {
                        self.state = State::Asks(shown);
                    }
                    events.push(EventKind::Notify { title, body });
                }
            }
        }
        events
    }

    /// When [`poll`](Self::poll) next has something to decide.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (after, last) = (self.quiet_after?, self.last_output?);
        self.active.then_some(last + after)
    }

    /// Time passing: quiet once the program has been silent long enough after
    /// activity nobody saw. At most one event per stretch of activity, and
    /// none while a bell or a question is waiting (the user has been told).
    pub fn poll(&mut self, watched: bool, now: Instant) -> Option<EventKind> {
        let deadline = self.next_deadline()?;
        if watched {
            self.active = false;
            return None;
        }
        if now < deadline {
            return None;
        }
        self.active = false;
        if self.state != State::Running {
            return None;
        }
        self.state = State::Quiet;
        let secs = now.saturating_duration_since(self.last_output?).as_secs();
        Some(EventKind::Quiet { secs })
    }

    pub fn exited(&mut self, code: i32) -> EventKind {
        self.state = State::Exited(code);
        EventKind::Exited { code }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            state: self.state.clone(),
            bells: self.bells,
            notifications: self.notifications,
            last_notification: self.last_notification.clone(),
            title: self.title.clone(),
        }
    }

    /// Someone attached: they see for themselves from now on. Returns what
    /// they missed.
    pub fn clear(&mut self) -> Summary {
        let s = self.summary();
        if !matches!(self.state, State::Exited(_)) {
            self.state = State::Running;
        }
        self.bells = 0;
        self.notifications = 0;
        self.last_notification = None;
        self.active = false;
        s
    }
}

/// Where a watcher is in a daemon's event stream. `epoch` is random per
/// daemon, so a cursor from a daemon that has since been replaced is not
/// mistaken for a position in the new one's.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: u64,
    pub seq: u64,
}

/// The daemon's numbered events, the last [`JOURNAL_LEN`] kept.
#[derive(Debug)]
pub struct Journal {
    epoch: u64,
    next: u64,
    events: VecDeque<AttentionEvent>,
}

/// What a watcher gets when it (re)connects.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay {
    pub events: Vec<AttentionEvent>,
    /// Events between the cursor and the oldest kept one were dropped.
    pub missed: u64,
}

impl Journal {
    pub fn new(epoch: u64) -> Self {
        Journal {
            epoch,
            next: 1,
            events: VecDeque::new(),
        }
    }

    /// The position after the newest event.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            epoch: self.epoch,
            seq: self.next - 1,
        }
    }

    pub fn push(
        &mut self,
        session_id: u64,
        session: &str,
        at: u64,
        kind: EventKind,
    ) -> AttentionEvent {
        let ev = AttentionEvent {
            seq: self.next,
            session_id,
            session: session.to_string(),
            at,
            kind,
        };
        self.next += 1;
        if self.events.len() == JOURNAL_LEN {
            self.events.pop_front();
        }
        self.events.push_back(ev.clone());
        ev
    }

    /// Events after `after`. A new watcher (`None`) hears only what comes
    /// from now on; a cursor of another daemon gets everything kept, since
    /// none of it can have been seen.
    pub fn since(&self, after: Option<Cursor>) -> Replay {
        let from = match after {
            None => {
                return Replay {
                    events: Vec::new(),
                    missed: 0,
                }
            }
            Some(c) if c.epoch == self.epoch => c.seq,
            Some(_) => 0,
        };
        let oldest = self.events.front().map_or(self.next, |e| e.seq);
        let missed = oldest.saturating_sub(from + 1);
        let events = self
            .events
            .iter()
            .filter(|e| e.seq > from)
            .cloned()
            .collect();
        Replay { events, missed }
    }
}

/// Accepts events in order, each once, whatever links they came over.
#[derive(Debug, Default)]
pub struct Dedup {
    cursor: Option<Cursor>,
}

impl Dedup {
    /// What to ask a new link for.
    pub fn after(&self) -> Option<Cursor> {
        self.cursor
    }

    /// The daemon's position when the link opened. A daemon of another
    /// epoch (restarted) replays what it has from its start.
    pub fn watching(&mut self, at: Cursor) {
        match &mut self.cursor {
            Some(c) if c.epoch == at.epoch => {}
            Some(c) => {
                *c = Cursor {
                    epoch: at.epoch,
                    seq: 0,
                }
            }
            None => self.cursor = Some(at),
        }
    }

    /// True if `ev` is new.
    pub fn accept(&mut self, ev: &AttentionEvent) -> bool {
        match &mut self.cursor {
            Some(c) if ev.seq > c.seq => {
                c.seq = ev.seq;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Vec<Signal> {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        out
    }

    fn notify(title: &str, body: &str) -> Signal {
        Signal::Notify {
            title: title.into(),
            body: body.into(),
        }
    }

    #[test]
    fn bell_outside_sequences_only() {
        assert_eq!(scan(&[b"a\x07b"]), vec![Signal::Bell]);
        // BEL ends an OSC: a title, not a bell.
        assert_eq!(scan(&[b"\x1b]2;hi\x07"]), vec![Signal::Title("hi".into())]);
        assert_eq!(scan(&[b"\x1bP1;2\x07q\x1b\\x"]), vec![]);
        assert_eq!(scan(&[b"\x1b[31m\x07"]), vec![Signal::Bell]);
    }

    #[test]
    fn the_three_notification_forms() {
        assert_eq!(
            scan(&[b"\x1b]9;Claude needs your permission\x07"]),
            vec![notify("", "Claude needs your permission")]
        );
        assert_eq!(
            scan(&[b"\x1b]777;notify;Build;done; 3 warnings\x1b\\"]),
            vec![notify("Build", "done; 3 warnings")]
        );
        assert_eq!(
            scan(&[b"\x1b]99;;Hello world\x1b\\"]),
            vec![notify("Hello world", "")]
        );
        assert_eq!(
            scan(&[
                b"\x1b]99;i=1:d=0;Title\x1b\\",
                b"\x1b]99;i=1:p=body;The body\x1b\\"
            ]),
            vec![notify("Title", "The body")]
        );
        assert_eq!(
            scan(&[b"\x1b]99;i=7:e=1:p=body;aGk=\x1b\\"]),
            vec![notify("", "hi")]
        );
    }

    #[test]
    fn not_notifications() {
        // ConEmu progress, other OSC 777 commands, hyperlinks, kitty queries.
        assert_eq!(scan(&[b"\x1b]9;4;1;50\x07"]), vec![]);
        assert_eq!(scan(&[b"\x1b]9;12\x07"]), vec![]);
        assert_eq!(scan(&[b"\x1b]777;preexec\x07"]), vec![]);
        assert_eq!(scan(&[b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"]), vec![]);
        assert_eq!(scan(&[b"\x1b]99;i=1:p=?;\x1b\\"]), vec![]);
    }

    #[test]
    fn split_at_every_byte_gives_the_same_signals() {
        let input: &[u8] =
            b"x\x07\x1b]9;asks\x07\x1b[1;2H\x1b]777;notify;T;B\x1b\\\x1b]0;t\x07\x1b]99;;k\x1b\\";
        let whole = scan(&[input]);
        assert_eq!(whole.len(), 5);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(scan(&bytes), whole);
        for cut in 0..input.len() {
            assert_eq!(scan(&[&input[..cut], &input[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_huge_osc_is_bounded_and_dropped() {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        s.feed(b"\x1b]9;", &mut out);
        for _ in 0..1000 {
            s.feed(&[b'a'; 1024], &mut out);
            assert!(s.osc.capacity() <= 2 * MAX_OSC);
        }
        s.feed(b"\x07\x07", &mut out);
        assert_eq!(out, vec![Signal::Bell]);
    }

    #[test]
    fn an_unterminated_osc_does_not_swallow_what_follows() {
        assert_eq!(scan(&[b"\x1b]9;lost\x1b[0m\x07"]), vec![Signal::Bell]);
        assert_eq!(scan(&[b"\x1b]9;lost\x18\x07"]), vec![Signal::Bell]);
    }

    #[test]
    fn text_is_bounded_and_has_no_controls() {
        let mut long = b"\x1b]9;".to_vec();
        long.extend_from_slice(&[b'x'; 1000]);
        long.extend_from_slice(b"\x08\x7f\x07");
        match &scan(&[&long])[0] {
            Signal::Notify { body, .. } => {
                assert_eq!(body.chars().count(), MAX_TEXT);
                assert!(!body.chars().any(char::is_control));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn state_and_events_while_detached() {
        let t0 = Instant::now();
        let mut a = Attention::new(None);
        assert_eq!(a.output(b"\x07", false, t0, 100), vec![EventKind::Bell]);
        assert_eq!(a.summary().state, State::Bell);
        // A bell loop: counted, but one event per BELL_EVERY.
        assert_eq!(a.output(b"\x07\x07", false, t0, 100), vec![]);
        assert_eq!(a.summary().bells, 3);
        let ev = a.output(b"\x1b]9;May I?\x07", false, t0 + BELL_EVERY, 160);
        assert_eq!(
            ev,
            vec![EventKind::Notify {
                title: "".into(),
                body: "May I?".into()
            }]
        );
        assert_eq!(a.summary().state, State::Asks("May I?".into()));
        // A later bell does not hide the question.
        a.output(b"\x07", false, t0 + 3 * BELL_EVERY, 170);
        assert_eq!(a.summary().state, State::Asks("May I?".into()));
        let missed = a.clear();
        assert_eq!(
            missed.announcement(|t| format!("T{t}")).unwrap(),
            "while you were away: 1 notification, last: 'May I?' at T160; 4 bells"
        );
        assert_eq!(a.summary().state, State::Running);
        assert_eq!(a.summary().announcement(|_| String::new()), None);
    }

    #[test]
    fn nothing_is_marked_while_someone_watches() {
        let t0 = Instant::now();
        let mut a = Attention::new(Some(Duration::from_secs(5)));
        assert_eq!(
            a.output(b"\x07\x1b]9;x\x07\x1b]2;T\x07", true, t0, 0),
            vec![]
        );
        let s = a.summary();
        assert_eq!((s.state, s.bells, s.notifications), (State::Running, 0, 0));
        assert_eq!(s.title.as_deref(), Some("T"));
        assert_eq!(a.poll(true, t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn quiet_after_activity_once() {
        let t0 = Instant::now();
        let q = Duration::from_secs(5);
        let mut a = Attention::new(Some(q));
        assert_eq!(a.next_deadline(), None);
        assert_eq!(a.poll(false, t0 + q * 10), None, "no activity, not quiet");
        a.output(b"working", false, t0, 0);
        assert_eq!(a.next_deadline(), Some(t0 + q));
        assert_eq!(a.poll(false, t0 + q - Duration::from_millis(1)), None);
        assert_eq!(a.poll(false, t0 + q), Some(EventKind::Quiet { secs: 5 }));
        assert_eq!(a.summary().state, State::Quiet);
        assert_eq!(a.poll(false, t0 + q * 3), None, "once per stretch");
        a.output(b"more", false, t0 + q * 4, 0);
        assert_eq!(a.summary().state, State::Running);
        assert_eq!(
            a.poll(false, t0 + q * 5),
            Some(EventKind::Quiet { secs: 5 })
        );
        // A question already told the user: its silence is not news.
        a.output(b"\x1b]9;May I?\x07", false, t0 + q * 6, 0);
        assert_eq!(a.poll(false, t0 + q * 8), None);
        assert_eq!(a.summary().state, State::Asks("May I?".into()));
    }

    #[test]
    fn journal_resumes_exactly_once() {
        let mut j = Journal::new(42);
        j.push(1, "a", 0, EventKind::Bell);
        assert_eq!(
            j.since(None).events,
            vec![],
            "a new watcher hears the future"
        );
        let c = j.cursor();
        let e2 = j.push(1, "a", 0, EventKind::Exited { code: 0 });
        let e3 = j.push(2, "b", 0, EventKind::Bell);
        assert_eq!(j.since(Some(c)).events, vec![e2.clone(), e3.clone()]);
        assert_eq!(
            j.since(Some(Cursor {
                epoch: 42,
                seq: e2.seq
            }))
            .events,
            vec![e3]
        );
        assert_eq!(j.since(Some(j.cursor())).events, vec![]);
        // Another daemon's cursor: everything kept.
        assert_eq!(j.since(Some(Cursor { epoch: 7, seq: 99 })).events.len(), 3);
        for _ in 0..JOURNAL_LEN + 10 {
            j.push(1, "a", 0, EventKind::Bell);
        }
        let r = j.since(Some(c));
        assert_eq!(r.events.len(), JOURNAL_LEN);
        assert_eq!(r.missed, 12);
    }

    fn ev(seq: u64) -> AttentionEvent {
        AttentionEvent {
            seq,
            session_id: 1,
            session: "a".into(),
            at: 0,
            kind: EventKind::Bell,
        }
    }

    #[test]
    fn each_event_once_across_links() {
        let mut d = Dedup::default();
        assert_eq!(d.after(), None);
        d.watching(Cursor { epoch: 5, seq: 10 });
        assert!(d.accept(&ev(11)));
        // The new link replays from the cursor; the old link had delivered 11.
        d.watching(Cursor { epoch: 5, seq: 12 });
        assert_eq!(d.after(), Some(Cursor { epoch: 5, seq: 11 }));
        assert!(!d.accept(&ev(11)));
        assert!(d.accept(&ev(12)));
        // A restarted daemon: its events start over.
        d.watching(Cursor { epoch: 6, seq: 3 });
        assert!(d.accept(&ev(1)));
    }
}
