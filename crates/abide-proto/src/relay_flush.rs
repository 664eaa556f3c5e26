//! When the ssh transport's relay (`abide server --stdio`) writes what the
//! daemon sent: its flush policy, decided here and tested in simulated time.
//!
//! sshd sets TCP_NODELAY only for sessions with a tty, and abide's ssh link is
//! a plain command, so Nagle's algorithm is on: a small segment waits while an
//! earlier one is unacknowledged. The client's kernel delays its ACK (40 ms on
//! Linux) unless it has data to send back. A frame the client does not answer
//! with data, written on its own, therefore holds back whatever follows it
//! for up to that delay. The input ack is such a frame, and it is written just
//! before the echo it caused: the echo waited 40 ms (an idle echo over ssh took
//! 0.12 s where QUIC took 0.08 s).
//!
//! So: every burst goes out in one write (all frames at hand), and an input
//! ack alone waits up to [`HOLD`] for the output that usually follows, to go
//! with it. Nothing else waits: a pong or output is written at once.

use std::time::{Duration, Instant};

use crate::frame::{self, Down};

/// The longest an input ack waits for company.
pub const HOLD: Duration = Duration::from_millis(20);

/// Whether the frame `body` is one that may wait (an input ack): decoded only
/// when it is small enough to be one.
pub fn may_wait(body: &[u8]) -> bool {
    body.len() <= 16 && matches!(frame::decode::<Down>(body), Ok(Down::InputAck { .. }))
}

/// The relay's flush decision for the frames it has queued but not written.
#[derive(Debug, Default)]
pub struct RelayFlush {
    /// Only frames that may wait are queued, since this instant.
    waiting_since: Option<Instant>,
    queued: bool,
}

impl RelayFlush {
    /// A frame was queued; `may_wait` as [`may_wait`] says. True: write
    /// everything queued now (call [`written`](Self::written) after).
    pub fn queued(&mut self, may_wait: bool, now: Instant) -> bool {
        if !may_wait {
            self.queued = true;
            return true;
        }
        if !self.queued {
            self.waiting_since.get_or_insert(now);
        }
        self.queued = true;
        self.poll_timeout().is_some_and(|t| now >= t)
    }

    /// No more frames at hand: true if what is queued should be written now.
    pub fn idle(&self, now: Instant) -> bool {
        self.queued && self.poll_timeout().is_none_or(|t| now >= t)
    }

    /// When waiting frames must be written even if nothing follows.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.waiting_since.map(|s| s + HOLD)
    }

    pub fn written(&mut self) {
        self.waiting_since = None;
        self.queued = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn only_a_small_input_ack_may_wait() {
        assert!(may_wait(&frame::encode(&Down::InputAck { seq: u64::MAX })));
        assert!(!may_wait(&frame::encode(&Down::Pong { nonce: 1 })));
        assert!(!may_wait(&frame::encode(&Down::Output {
            offset: 0,
            data: b"x".to_vec()
        })));
        assert!(!may_wait(&[0xff; 8]));
        assert!(!may_wait(&[]));
    }

    #[test]
    fn an_input_ack_goes_with_the_echo_that_follows() {
        let t0 = Instant::now();
        let mut f = RelayFlush::default();
        assert!(!f.queued(true, t0));
        assert!(!f.idle(t0 + ms(3)));
        assert_eq!(f.poll_timeout(), Some(t0 + HOLD));
        // The echo, 3 ms later: both in one write.
        assert!(f.queued(false, t0 + ms(3)));
        f.written();
        assert_eq!(f.poll_timeout(), None);
        assert!(!f.idle(t0 + ms(4)));
    }

    #[test]
    fn an_input_ack_alone_waits_no_longer_than_the_hold() {
        let t0 = Instant::now();
        let mut f = RelayFlush::default();
        assert!(!f.queued(true, t0));
        // A second ack does not extend the wait.
        assert!(!f.queued(true, t0 + ms(15)));
        assert_eq!(f.poll_timeout(), Some(t0 + HOLD));
        assert!(f.idle(t0 + HOLD));
        f.written();
        assert!(!f.queued(true, t0 + ms(50)));
        assert!(f.queued(true, t0 + ms(50) + HOLD));
    }

    #[test]
    fn everything_else_is_written_at_once() {
        let t0 = Instant::now();
        let mut f = RelayFlush::default();
        assert!(f.queued(false, t0));
        f.written();
        // Queued behind something that may not wait: no wait either.
        let mut f = RelayFlush {
            queued: true,
            ..Default::default()
        };
        assert!(!f.queued(true, t0));
        assert!(f.idle(t0));
    }
}
