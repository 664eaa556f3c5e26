//! The client's side of a session, as a state machine that outlives any one link.
//!
//! It knows which session it shows, the offset of the next output byte its
//! terminal needs, the input not yet acknowledged, and when it last heard from
//! the server. A driver feeds it frames, user input and the time; it answers
//! with frames to send and events (bytes for the terminal, link lost, exited).
//! A new link of any kind (QUIC, ssh pipe, Unix socket) starts with
//! [`ClientCore::hello`], and the server continues exactly where this left off.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frame::{
    AttachRequest, Down, ErrorKind, Hello, Request, ResumePoint, Target, Up, WinSize, MAX_CHUNK,
};
use super::input::InputQueue;

/// How often to ping, and how long a silence means the link is gone.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ping_interval: Duration,
    /// Quiet this long: worth a spare link beside this one (not yet lost:
    /// a loss burst does this too, so nothing is torn down).
    pub quiet_after: Duration,
    pub silence_limit: Duration,
}

impl Timing {
    /// QUIC: frequent small pings keep a NAT mapping fresh and notice a dead
    /// path within a second, which is what makes fast recovery possible.
    pub const QUIC: Timing = Timing {
        ping_interval: Duration::from_millis(250),
        quiet_after: Duration::from_millis(550),
        silence_limit: Duration::from_millis(1000),
    };
    /// Over ssh, a quiet of 0.55 s (two pings unanswered) starts a new ssh
    /// beside the old one (the old link stays in use until the new one works,
    /// so a false alarm on a slow path costs one spare ssh login, not a gap):
    /// a NAT rebind or a roam is recovered in about one ssh login more.
    /// Slightly more patient than QUIC: TCP under loss stalls for a
    /// retransmission timeout (200 ms and up) where QUIC would not.
    pub const SSH: Timing = Timing {
        ping_interval: Duration::from_millis(250),
        quiet_after: Duration::from_millis(550),
        silence_limit: Duration::from_millis(1200),
    };
    /// The local socket only dies with the daemon; pings just prove it answers.
    pub const LOCAL: Timing = Timing {
        ping_interval: Duration::from_millis(2000),
        quiet_after: Duration::from_millis(6000),
        silence_limit: Duration::from_millis(6000),
    };
}

/// The largest snapshot accepted; a bigger one is a misbehaving server.
const MAX_SNAPSHOT: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes for the terminal, in order.
    Write(Vec<u8>),
    Attached {
        name: String,
        session_id: u64,
    },
    /// Nothing heard for `Timing::quiet_after`: make a spare link beside this one.
    LinkQuiet,
    /// Nothing heard for `Timing::silence_limit`: show the banner, find a new link.
    LinkLost,
    /// A frame arrived after `LinkLost`: hide the banner.
    LinkBack,
    Exited {
        code: i32,
    },
    Detached,
    Error {
        kind: ErrorKind,
        message: String,
    },
    /// What happened while the user was away (sent once, on attach).
    Away(super::attention::Summary),
    /// The next `Write` is a snapshot: it redraws the whole screen, so the
    /// terminal should first drop the modes and scroll region of what it
    /// showed before (which may have been drawn at another size).
    SnapshotFollows,
    /// The server no longer knows the grant this link proved (it idled out
    /// there, or the daemon forgot it): not the session's end. The link is
    /// dropped ([`Event::LinkLost`] comes first); the link policy decides
    /// what to do (`LinkPolicy::grant_refused`: a new grant over ssh).
    GrantRefused,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("server skipped output: expected offset {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error("snapshot larger than {MAX_SNAPSHOT} bytes")]
    SnapshotTooLarge,
    #[error("server sent a snapshot at offset {got}, behind the {have} bytes already shown")]
    SnapshotBehind { have: u64, got: u64 },
    #[error("output at offset {offset} of {len} bytes overflows the offset space")]
    OffsetOverflow { offset: u64, len: usize },
    #[error("unexpected frame before attach: {0}")]
    Unexpected(&'static str),
    /// A detach this client never asked for: the server retired this link
    /// because a link of the same client attached after it (its hello got
    /// there first, though sent later: the bootstrap's ssh is slower to reach
    /// the daemon than QUIC). The session goes on; this link is dropped.
    #[error("the server retired this link: another link of this client attached after it")]
    Retired,
}

#[derive(Debug)]
pub struct ClientCore {
    client_id: u64,
    /// What to attach to before the first successful attach.
    target: Target,
    session: Option<(u64, String)>,
    /// Every output byte before this offset has been handed out as `Event::Write`.
    offset: u64,
    acked: u64,
    input: InputQueue,
    size: WinSize,
    size_sent: bool,
    timing: Timing,
    attached: bool,
    quiet: bool,
    lost: bool,
    last_heard: Instant,
    last_ping: Instant,
    nonce: u64,
    snapshot: Vec<u8>,
    outbox: VecDeque<Up>,
    events: VecDeque<Event>,
    finished: bool,
    /// The user asked to detach: said again on every new link until answered.
    detaching: bool,
}

impl ClientCore {
    pub fn new(
        client_id: u64,
        target: Target,
        size: WinSize,
        timing: Timing,
        now: Instant,
    ) -> Self {
        ClientCore {
            client_id,
            target,
            session: None,
            offset: 0,
            acked: 0,
            input: InputQueue::new(),
            size,
            size_sent: false,
            timing,
            attached: false,
            quiet: false,
            lost: false,
            last_heard: now,
            last_ping: now,
            nonce: 0,
            snapshot: Vec::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            finished: false,
            detaching: false,
        }
    }

    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// Output offset the terminal has reached.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn session(&self) -> Option<&(u64, String)> {
        self.session.as_ref()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    pub fn pending_input_bytes(&self) -> usize {
        self.input.pending_bytes()
    }

    /// The first frame for a new link, then [`poll_transmit`](Self::poll_transmit)
    /// yields the unacknowledged input. Pipelined: no round trip is spent
    /// waiting for `Attached`.
    pub fn hello(&mut self, now: Instant) -> Hello {
        self.outbox.clear();
        // Pieces of a snapshot cut short by the old link: the new link sends a whole one.
        self.snapshot.clear();
        self.attached = false;
        self.size_sent = false;
        self.last_ping = now;
        for (seq, data) in self.input.unacked() {
            self.outbox.push_back(Up::Input {
                seq: *seq,
                data: data.clone(),
            });
        }
        if self.detaching {
            self.outbox.push_back(Up::Detach);
        }
        let (target, resume) = match &self.session {
            Some((id, _)) => (
                Target::Id(*id),
                Some(ResumePoint {
                    session_id: *id,
                    offset: self.offset,
                }),
            ),
            None => (self.target.clone(), None),
        };
        Hello::new(Request::Attach(AttachRequest {
            target,
            client_id: self.client_id,
            resume,
            size: self.size,
        }))
    }

    /// A link was just made: count it as contact (the handshake was an answer).
    pub fn link_up(&mut self, now: Instant) {
        self.heard(now);
    }

    /// The current link failed outright (closed, reset, write stuck): count
    /// it as lost now rather than waiting for the silence limit.
    pub fn link_down(&mut self, now: Instant) {
        let _ = now;
        self.outbox.clear();
        self.attached = false;
        if !self.lost && !self.finished {
            self.lost = true;
            self.events.push_back(Event::LinkLost);
        }
    }

    pub fn user_input(&mut self, data: &[u8]) {
        for (seq, data) in self.input.push(data, MAX_CHUNK) {
            self.outbox.push_back(Up::Input { seq, data });
        }
    }

    /// The sequence number of the last input chunk queued.
    pub fn last_input_seq(&self) -> u64 {
        self.input.last_seq()
    }

    pub fn resize(&mut self, size: WinSize) {
        if size != self.size {
            self.size = size;
            self.size_sent = false;
        }
    }

    /// Asks the server to detach. The request outlives the link it was made
    /// on: a link that changes before the answer (a failed link, a fresh one
    /// adopted) would otherwise take it along, and the client would stay
    /// attached as if the keys had never been pressed.
    pub fn detach(&mut self) {
        self.detaching = true;
        self.outbox.push_back(Up::Detach);
    }

    pub fn on_frame(&mut self, frame: Down, now: Instant) -> Result<(), ProtocolError> {
        self.heard(now);
        match frame {
            Down::Attached(a) => {
                self.attached = true;
                if self.session.as_ref().map(|s| s.0) != Some(a.session_id) {
                    // A different session (first attach): output starts where the server says.
                    self.offset = a.start_offset;
                    self.acked = a.start_offset;
                }
                self.session = Some((a.session_id, a.name.clone()));
                self.input.ack(a.input_acked);
                self.events.push_back(Event::Attached {
                    name: a.name,
                    session_id: a.session_id,
                });
            }
            Down::Output { offset, data } => {
                if !self.attached {
                    return Err(ProtocolError::Unexpected("output"));
                }
                let end =
                    offset
                        .checked_add(data.len() as u64)
                        .ok_or(ProtocolError::OffsetOverflow {
                            offset,
                            len: data.len(),
                        })?;
                if offset > self.offset {
                    return Err(ProtocolError::Gap {
                        expected: self.offset,
                        got: offset,
                    });
                }
                if end > self.offset {
                    let fresh = data[(self.offset - offset) as usize..].to_vec();
                    self.offset = end;
                    self.events.push_back(Event::Write(fresh));
                }
            }
            Down::Snapshot { offset, data, last } => {
                if !self.attached {
                    return Err(ProtocolError::Unexpected("snapshot"));
                }
                if self.snapshot.len() + data.len() > MAX_SNAPSHOT {
                    self.snapshot.clear();
                    return Err(ProtocolError::SnapshotTooLarge);
                }
                self.snapshot.extend_from_slice(&data);
                if last {
                    if offset < self.offset {
                        // It stands for less than the terminal already shows:
                        // writing it would repeat output, and the offset would go back.
                        self.snapshot.clear();
                        return Err(ProtocolError::SnapshotBehind {
                            have: self.offset,
                            got: offset,
                        });
                    }
                    self.offset = offset;
                    self.events.push_back(Event::SnapshotFollows);
                    self.events
                        .push_back(Event::Write(std::mem::take(&mut self.snapshot)));
                }
            }
            Down::InputAck { seq } => self.input.ack(seq),
            // Read by the driver's echo prediction, which sees every frame.
            Down::Pong { .. } | Down::TtyModes(_) => {}
            Down::Exited { code } => {
                self.finished = true;
                // Lets the server drop the session: nobody needs its output now.
                self.outbox.push_back(Up::ExitSeen);
                self.events.push_back(Event::Exited { code });
            }
            Down::Detached if !self.detaching => return Err(ProtocolError::Retired),
            Down::Detached => {
                self.finished = true;
                self.events.push_back(Event::Detached);
            }
            // Only a resume can meet an expired grant: a client that never
            // attached was refused its first grant, which is an answer.
            Down::Error {
                kind: ErrorKind::AuthFailed,
                ..
            } if self.session.is_some() && !self.finished => {
                self.link_down(now);
                self.events.push_back(Event::GrantRefused);
            }
            Down::Error { kind, message } => {
                self.finished = true;
                self.events.push_back(Event::Error { kind, message });
            }
            Down::Away(summary) => self.events.push_back(Event::Away(summary)),
            Down::Sessions(_)
            | Down::Done
            | Down::Granted(_)
            | Down::SessionList(_)
            | Down::Watching { .. }
            | Down::Attention(_)
            | Down::History { .. } => {
                return Err(ProtocolError::Unexpected(
                    "control reply on a session channel",
                ));
            }
        }
        Ok(())
    }

    fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.quiet = false;
        if self.lost {
            self.lost = false;
            self.events.push_back(Event::LinkBack);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do.
    pub fn poll_timeout(&self) -> Instant {
        let ping = self.last_ping + self.timing.ping_interval;
        if self.lost {
            ping
        } else if self.quiet {
            ping.min(self.last_heard + self.timing.silence_limit)
        } else {
            ping.min(self.last_heard + self.timing.quiet_after)
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.last_ping + self.timing.ping_interval {
            self.last_ping = now;
            self.nonce += 1;
            self.outbox.push_back(Up::Ping { nonce: self.nonce });
        }
        if !self.quiet
            && !self.lost
            && !self.finished
            && now >= self.last_heard + self.timing.quiet_after
        {
            self.quiet = true;
            self.events.push_back(Event::LinkQuiet);
        }
        if !self.lost && !self.finished && now >= self.last_heard + self.timing.silence_limit {
            self.lost = true;
            self.events.push_back(Event::LinkLost);
        }
    }

    /// How long it has been since the server was last heard.
    pub fn silence(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }

    /// The next frame to send on the current link.
    pub fn poll_transmit(&mut self) -> Option<Up> {
        if let Some(f) = self.outbox.pop_front() {
            return Some(f);
        }
        if !self.size_sent {
            self.size_sent = true;
            return Some(Up::Resize(self.size));
        }
        if self.attached && self.offset > self.acked {
            self.acked = self.offset;
            return Some(Up::Ack {
                offset: self.offset,
            });
        }
        None
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Attached;

    fn core(now: Instant) -> ClientCore {
        ClientCore::new(
            1,
            Target::Existing(None),
            WinSize::default(),
            Timing::QUIC,
            now,
        )
    }

    fn attached(id: u64, start: u64, input_acked: u64) -> Down {
        Down::Attached(Attached {
            session_id: id,
            name: "s".into(),
            input_acked,
            start_offset: start,
        })
    }

    fn writes(c: &mut ClientCore) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(e) = c.poll_event() {
            if let Event::Write(b) = e {
                out.extend(b);
            }
        }
        out
    }

    fn drain(c: &mut ClientCore) -> Vec<Up> {
        std::iter::from_fn(|| c.poll_transmit()).collect()
    }

    #[test]
    fn resume_skips_what_was_already_shown() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        c.on_frame(
            Down::Output {
                offset: 0,
                data: b"abc".to_vec(),
            },
            t,
        )
        .unwrap();
        assert_eq!(writes(&mut c), b"abc");
        // New link: the hello names the session and the offset.
        let h = c.hello(t);
        match h.request {
            Request::Attach(a) => {
                assert_eq!(a.target, Target::Id(9));
                assert_eq!(
                    a.resume,
                    Some(ResumePoint {
                        session_id: 9,
                        offset: 3
                    })
                );
            }
            _ => panic!("not an attach"),
        }
        c.on_frame(attached(9, 3, 0), t).unwrap();
        // The server may overlap; only the new tail is written.
        c.on_frame(
            Down::Output {
                offset: 1,
                data: b"bcdef".to_vec(),
            },
            t,
        )
        .unwrap();
        c.on_frame(
            Down::Output {
                offset: 0,
                data: b"abc".to_vec(),
            },
            t,
        )
        .unwrap();
        assert_eq!(writes(&mut c), b"def");
        assert_eq!(c.offset(), 6);
    }

    #[test]
    fn a_gap_is_an_error() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 10, 0), t).unwrap();
        let e = c.on_frame(
            Down::Output {
                offset: 12,
                data: b"x".to_vec(),
            },
            t,
        );
        assert_eq!(
            e,
            Err(ProtocolError::Gap {
                expected: 10,
                got: 12
            })
        );
    }

    #[test]
    fn unacked_input_is_resent_on_every_new_link() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        c.user_input(b"ls\r");
        let first = drain(&mut c);
        assert!(first.contains(&Up::Input {
            seq: 1,
            data: b"ls\r".to_vec()
        }));
        c.user_input(b"pwd\r");
        c.hello(t);
        let again = drain(&mut c);
        assert_eq!(
            again[0],
            Up::Input {
                seq: 1,
                data: b"ls\r".to_vec()
            }
        );
        assert_eq!(
            again[1],
            Up::Input {
                seq: 2,
                data: b"pwd\r".to_vec()
            }
        );
        // The server says it already had seq 1.
        c.on_frame(attached(9, 0, 1), t).unwrap();
        c.hello(t);
        let third = drain(&mut c);
        assert_eq!(
            third[0],
            Up::Input {
                seq: 2,
                data: b"pwd\r".to_vec()
            }
        );
        assert_eq!(
            third
                .iter()
                .filter(|f| matches!(f, Up::Input { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn silence_raises_link_lost_once_and_contact_clears_it() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        c.poll_event();
        let later = t + Timing::QUIC.silence_limit;
        assert!(c.poll_timeout() <= later);
        c.handle_timeout(later);
        c.handle_timeout(later + Duration::from_secs(5));
        let lost: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
        assert_eq!(lost, vec![Event::LinkQuiet, Event::LinkLost]);
        c.on_frame(Down::Pong { nonce: 1 }, later + Duration::from_secs(6))
            .unwrap();
        assert_eq!(c.poll_event(), Some(Event::LinkBack));
    }

    #[test]
    fn pings_follow_the_interval() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        drain(&mut c);
        c.handle_timeout(t + Duration::from_millis(100));
        assert!(drain(&mut c).is_empty());
        c.handle_timeout(t + Timing::QUIC.ping_interval);
        assert!(matches!(drain(&mut c)[..], [Up::Ping { .. }]));
    }

    #[test]
    fn hostile_offsets_are_errors_not_panics() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, u64::MAX - 1, 0), t).unwrap();
        let e = c.on_frame(
            Down::Output {
                offset: u64::MAX - 1,
                data: b"abc".to_vec(),
            },
            t,
        );
        assert!(
            matches!(e, Err(ProtocolError::OffsetOverflow { .. })),
            "{e:?}"
        );
        assert_eq!(c.offset(), u64::MAX - 1);

        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 10, 0), t).unwrap();
        let e = c.on_frame(
            Down::Snapshot {
                offset: 3,
                data: b"old".to_vec(),
                last: true,
            },
            t,
        );
        assert_eq!(e, Err(ProtocolError::SnapshotBehind { have: 10, got: 3 }));
        assert_eq!(c.offset(), 10);
    }

    #[test]
    fn a_snapshot_cut_short_by_a_lost_link_is_dropped() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        c.on_frame(
            Down::Snapshot {
                offset: 500,
                data: b"stale".to_vec(),
                last: false,
            },
            t,
        )
        .unwrap();
        c.link_down(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        c.on_frame(
            Down::Snapshot {
                offset: 600,
                data: b"screen".to_vec(),
                last: true,
            },
            t,
        )
        .unwrap();
        assert_eq!(writes(&mut c), b"screen");
    }

    #[test]
    fn snapshot_pieces_are_written_whole_and_move_the_offset() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        c.on_frame(
            Down::Snapshot {
                offset: 500,
                data: b"scr".to_vec(),
                last: false,
            },
            t,
        )
        .unwrap();
        assert!(writes(&mut c).is_empty());
        c.on_frame(
            Down::Snapshot {
                offset: 500,
                data: b"een".to_vec(),
                last: true,
            },
            t,
        )
        .unwrap();
        assert_eq!(writes(&mut c), b"screen");
        assert_eq!(c.offset(), 500);
        assert!(drain(&mut c).contains(&Up::Ack { offset: 500 }));
    }

    /// The driver must know a snapshot from output, to drop what the terminal
    /// showed before it; plain output carries no such mark.
    #[test]
    fn a_snapshot_is_announced_just_before_its_bytes() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        c.on_frame(
            Down::Output {
                offset: 0,
                data: b"out".to_vec(),
            },
            t,
        )
        .unwrap();
        c.on_frame(
            Down::Snapshot {
                offset: 500,
                data: b"screen".to_vec(),
                last: true,
            },
            t,
        )
        .unwrap();
        let events: Vec<Event> = std::iter::from_fn(|| c.poll_event())
            .filter(|e| !matches!(e, Event::Attached { .. }))
            .collect();
        assert_eq!(
            events,
            vec![
                Event::Write(b"out".to_vec()),
                Event::SnapshotFollows,
                Event::Write(b"screen".to_vec())
            ]
        );
    }

    /// The exit is the last thing a client shows; it tells the server so,
    /// which lets the daemon drop a session it keeps for a client that was away.
    #[test]
    fn the_exit_is_confirmed_to_the_server() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        drain(&mut c);
        while c.poll_event().is_some() {}
        c.on_frame(
            Down::Output {
                offset: 0,
                data: b"bye".to_vec(),
            },
            t,
        )
        .unwrap();
        c.on_frame(Down::Exited { code: 3 }, t).unwrap();
        let events: Vec<Event> = std::iter::from_fn(|| c.poll_event()).collect();
        assert_eq!(
            events,
            [Event::Write(b"bye".to_vec()), Event::Exited { code: 3 }]
        );
        assert!(c.is_finished());
        assert_eq!(drain(&mut c), [Up::ExitSeen, Up::Ack { offset: 3 }]);
    }

    /// A resume refused for its grant is a lost link plus a typed event, not
    /// the session's end; the input typed meanwhile goes out on the next link.
    /// A first attach refused the same way is an error (nothing to resume).
    #[test]
    fn a_refused_grant_on_resume_is_not_the_end() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        c.on_frame(
            Down::Output {
                offset: 0,
                data: b"ab".to_vec(),
            },
            t,
        )
        .unwrap();
        while c.poll_event().is_some() {}
        c.user_input(b"x");
        c.hello(t);
        let refused = Down::Error {
            kind: ErrorKind::AuthFailed,
            message: "authentication failed".into(),
        };
        c.on_frame(refused.clone(), t).unwrap();
        let events: Vec<Event> = std::iter::from_fn(|| c.poll_event()).collect();
        assert_eq!(events, [Event::LinkLost, Event::GrantRefused]);
        assert!(!c.is_finished());
        assert!(
            !drain(&mut c).iter().any(|f| matches!(f, Up::Input { .. })),
            "the input waits for the next link"
        );
        // The next link resumes at the same offset with the input.
        let h = c.hello(t);
        let Request::Attach(a) = h.request else {
            panic!("not an attach")
        };
        assert_eq!(
            a.resume,
            Some(ResumePoint {
                session_id: 9,
                offset: 2
            })
        );
        assert!(drain(&mut c).contains(&Up::Input {
            seq: 1,
            data: b"x".to_vec()
        }));

        let mut first = core(t);
        first.hello(t);
        first.on_frame(refused, t).unwrap();
        assert!(first.is_finished());
        assert!(matches!(
            first.poll_event(),
            Some(Event::Error {
                kind: ErrorKind::AuthFailed,
                ..
            })
        ));
    }

    /// A detach asked for just before the link changed is asked again on the
    /// new one (after the input typed before it), not lost with the old link.
    #[test]
    fn a_detach_survives_a_change_of_link() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        drain(&mut c);
        c.user_input(b"x");
        c.detach();
        // The link fails before anything was sent.
        c.link_down(t);
        assert!(drain(&mut c).is_empty());
        c.hello(t);
        let sent = drain(&mut c);
        assert_eq!(
            sent[..2],
            [
                Up::Input {
                    seq: 1,
                    data: b"x".to_vec()
                },
                Up::Detach
            ],
            "{sent:?}"
        );
        // A fresh link adopted while the old one still worked: the same.
        c.hello(t);
        assert!(drain(&mut c).contains(&Up::Detach));
        c.on_frame(Down::Detached, t).unwrap();
        assert!(c.is_finished());
    }

    /// A detach nobody asked for is the server retiring a link that a newer
    /// link of this client replaced; seen on the link in use (the older
    /// hello reached the daemon last), it must not end the session.
    #[test]
    fn a_detach_not_asked_for_retires_the_link_only() {
        let t = Instant::now();
        let mut c = core(t);
        c.hello(t);
        c.on_frame(attached(9, 0, 0), t).unwrap();
        assert_eq!(c.on_frame(Down::Detached, t), Err(ProtocolError::Retired));
        assert!(!c.is_finished());
        while let Some(ev) = c.poll_event() {
            assert!(!matches!(ev, Event::Detached), "{ev:?}");
        }
        c.link_down(t);
        c.hello(t);
        assert!(!drain(&mut c).contains(&Up::Detach));
        c.detach();
        c.on_frame(Down::Detached, t).unwrap();
        assert!(c.is_finished());
    }
}
