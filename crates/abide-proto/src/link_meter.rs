//! What a channel knows of its link: the delivery rate and the minimum
//! round trip, measured from the acks of what it sent, as BBR measures them.
//!
//! Why a module of its own: the server channel decides what to send from
//! these two figures (how much may be in flight, whether the program prints
//! faster than the link carries, how to pace screens), and the ways they go
//! wrong are subtle enough to keep in one place:
//! - A minimum round trip taken from samples that include the channel's own
//!   queue grows the window, and the queue with the window (104 → 511 ms in
//!   15 s of a redraw on a 2 Mbit/s link). So the minimum is measured again
//!   on an empty path: the channel drains to [`PROBE_WINDOW`] and takes the
//!   next piece's round trip, unless pieces sent onto an empty path anyway
//!   (paced screens) have confirmed it.
//! - Acks that arrive bunched show a rate above the link's. A sample spans
//!   the longer of its send and ack intervals.
//! - A sender with nothing more to send, or one that holds back by choice
//!   (a probe, paced screens), measures itself, not the link: such samples
//!   only count when they beat the estimate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Delivery-rate samples are kept this long (the estimate is their maximum).
pub const BW_WINDOW: Duration = Duration::from_secs(2);
/// The minimum round trip is measured again after this long (paths change).
pub const RTT_WINDOW: Duration = Duration::from_secs(10);
/// The first full window is followed by a probe this much later: its round
/// trips include the queue that window made, sent before the link was known.
/// The rate has settled by then too.
pub const FIRST_PROBE_AFTER: Duration = Duration::from_secs(1);
/// In flight while the round trip is measured again.
pub const PROBE_WINDOW: u64 = 4 * 1024;

/// What the meter noted when a piece was sent; handed back with its ack.
#[derive(Debug, Clone, Copy)]
pub struct SendSample {
    at: Instant,
    /// Wire bytes delivered, when the last ack came, and when the piece
    /// acknowledged last was sent, at this piece's sending.
    delivered: u64,
    delivered_at: Instant,
    first_sent_at: Instant,
    /// Sent with nothing more waiting, or held back by choice: its delivery
    /// says nothing about the link's rate.
    app_limited: bool,
    /// Sent onto an empty path (while probing, or paced): its round trip,
    /// less its own time on the wire, is the path's.
    clean: bool,
}

#[derive(Debug)]
pub struct LinkMeter {
    /// Wire bytes acknowledged so far, and when the last ack came.
    delivered: u64,
    delivered_at: Instant,
    /// When the piece acknowledged last was sent.
    first_sent_at: Instant,
    /// Delivery-rate samples (bytes/s), newest last; only those that may
    /// still be the window's maximum.
    rates: VecDeque<(Instant, f64)>,
    min_rtt: Option<(Duration, Instant)>,
    /// Measuring the round trip again since then.
    probe: Option<Instant>,
    next_probe: Option<Instant>,
    /// When a rate sample last came from a full window (not app-limited),
    /// and when the first one did.
    saturated_at: Option<Instant>,
    saturated_since: Option<Instant>,
}

impl LinkMeter {
    pub fn new(now: Instant) -> Self {
        LinkMeter {
            delivered: 0,
            delivered_at: now,
            first_sent_at: now,
            rates: VecDeque::new(),
            min_rtt: None,
            probe: None,
            next_probe: None,
            saturated_at: None,
            saturated_since: None,
        }
    }

    /// The link's delivery rate in bytes/s, once measured.
    pub fn bandwidth(&self) -> Option<f64> {
        self.rates.front().map(|r| r.1)
    }

    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.map(|r| r.0)
    }

    /// The bandwidth-delay product: what the path holds without a queue.
    pub fn bdp(&self) -> Option<u64> {
        let (bw, rtt) = (self.bandwidth()?, self.min_rtt()?);
        Some((bw * rtt.as_secs_f64()) as u64)
    }

    /// Draining the path to measure the round trip: keep at most
    /// [`PROBE_WINDOW`] in flight.
    pub fn probing(&self) -> bool {
        self.probe.is_some()
    }

    /// Full windows have measured the rate for [`FIRST_PROBE_AFTER`] (the
    /// first ones include the start), and the last of them came within
    /// [`BW_WINDOW`] of `now` or of `held_back_at` (when the sender last held
    /// back by choice: its own deliveries show its pace since).
    pub fn rate_is_the_links(&self, held_back_at: Option<Instant>, now: Instant) -> bool {
        let settled = self
            .saturated_since
            .is_some_and(|t| now.saturating_duration_since(t) >= FIRST_PROBE_AFTER);
        settled
            && [self.saturated_at, held_back_at]
                .iter()
                .flatten()
                .any(|&at| now.saturating_duration_since(at) <= BW_WINDOW)
    }

    /// Starts a probe when one is due.
    pub fn poll(&mut self, now: Instant) {
        if self.probe.is_none() && self.next_probe.is_some_and(|p| now >= p) {
            self.probe = Some(now);
            self.next_probe = None;
        }
    }

    /// A piece goes out now. `app_limited`: nothing more was waiting;
    /// `held_back`: the sender paces by choice. Pieces sent while probing or
    /// held back find the path empty.
    pub fn on_send(&self, now: Instant, app_limited: bool, held_back: bool) -> SendSample {
        let clean = self.probe.is_some() || held_back;
        SendSample {
            at: now,
            delivered: self.delivered,
            delivered_at: self.delivered_at,
            first_sent_at: self.first_sent_at,
            app_limited: app_limited || clean,
            clean,
        }
    }

    /// A piece of `wire` bytes sent as `s` is acknowledged now. Call
    /// [`LinkMeter::acked`] after the last piece an ack covers.
    pub fn on_delivered(&mut self, s: SendSample, wire: u64, now: Instant) {
        self.delivered += wire;
        // Over the longer of the send and the ack intervals: acks that
        // arrive bunched would otherwise show a rate above the link's.
        let elapsed = now
            .saturating_duration_since(s.delivered_at)
            .max(s.at.saturating_duration_since(s.first_sent_at))
            .max(Duration::from_micros(100));
        self.first_sent_at = s.at;
        let rate = (self.delivered - s.delivered) as f64 / elapsed.as_secs_f64();
        if !s.app_limited {
            if self.saturated_since.is_none() {
                self.saturated_since = Some(now);
                self.next_probe = Some(now + FIRST_PROBE_AFTER);
            }
            self.saturated_at = Some(now);
        }
        // An app-limited sample only shows a lower bound; it counts when it
        // beats the estimate.
        if !s.app_limited || self.bandwidth().is_none_or(|bw| rate > bw) {
            // A sliding-window maximum: an older sample no larger than this
            // one can never be the maximum again (this one outlives it), so
            // the front is the maximum and polls stay O(1) however many acks
            // a fast link brings.
            while self.rates.back().is_some_and(|r| r.1 <= rate) {
                self.rates.pop_back();
            }
            self.rates.push_back((now, rate));
        }
        self.round_trip(s, wire, now);
    }

    fn round_trip(&mut self, s: SendSample, wire: u64, now: Instant) {
        let rtt = now.saturating_duration_since(s.at);
        // A clean piece's round trip without its own time on the wire (it
        // may be a screen: 50 ms at 2 Mbit/s), at most half of it, whatever
        // the rate estimate says.
        let rtt = match self.bandwidth().filter(|_| s.clean) {
            Some(bw) => rtt
                .saturating_sub(Duration::from_secs_f64(wire as f64 / bw))
                .max(rtt / 2),
            None => rtt,
        };
        // A piece sent while probing crossed an empty path: its round trip
        // is the path's, even when longer than the old minimum.
        let probed = self.probe.is_some_and(|p| s.at >= p);
        let confirms = s.clean && self.min_rtt.is_some_and(|(m, _)| rtt <= m + m / 4);
        if probed || self.min_rtt.is_none_or(|(m, _)| rtt <= m) {
            self.min_rtt = Some((rtt, now));
        }
        if probed || confirms {
            self.probe = None;
            self.next_probe = Some(now + RTT_WINDOW);
        }
    }

    /// An ack has been taken in: forgets rate samples past [`BW_WINDOW`]
    /// (the newest always stays).
    pub fn acked(&mut self, now: Instant) {
        self.delivered_at = now;
        while self
            .rates
            .front()
            .is_some_and(|r| now.saturating_duration_since(r.0) > BW_WINDOW)
            && self.rates.len() > 1
        {
            self.rates.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends a piece of `wire` bytes at `at` that is acknowledged `rtt` later.
    fn round(m: &mut LinkMeter, at: Instant, wire: u64, rtt: u64, app_limited: bool) {
        let s = m.on_send(at, app_limited, false);
        let now = at + Duration::from_millis(rtt);
        m.on_delivered(s, wire, now);
        m.acked(now);
    }

    #[test]
    fn the_channels_own_queue_never_becomes_the_minimum_round_trip() {
        let t0 = Instant::now();
        let mut m = LinkMeter::new(t0);
        round(&mut m, t0, 1000, 100, true);
        // Twelve seconds of full windows behind their own queue: 300 ms
        // round trips. Pieces sent while a probe drains the path take 100.
        let mut t = t0;
        let mut probes = 0;
        while t < t0 + Duration::from_secs(12) {
            t += Duration::from_millis(40);
            m.poll(t);
            if m.probing() {
                probes += 1;
                round(&mut m, t, 1000, 100, false);
            } else {
                round(&mut m, t, 10_000, 300, false);
            }
            let rtt = m.min_rtt().unwrap();
            assert!(rtt <= Duration::from_millis(100), "{rtt:?} at {:?}", t - t0);
        }
        // One a second after the first full window, one RTT_WINDOW later.
        assert_eq!(probes, 2);
    }

    #[test]
    fn bunched_acks_do_not_raise_the_rate() {
        let t0 = Instant::now();
        let mut m = LinkMeter::new(t0);
        // 10 kB across the path in 100 ms.
        round(&mut m, t0, 10_000, 100, false);
        // Five more sent at once right after, whose acks come back bunched
        // 10 ms later (held up together somewhere): not 5 MB/s.
        let sent = t0 + Duration::from_millis(100);
        let samples: Vec<_> = (0..5).map(|_| m.on_send(sent, false, false)).collect();
        let now = sent + Duration::from_millis(10);
        for s in samples {
            m.on_delivered(s, 10_000, now);
        }
        m.acked(now);
        let bw = m.bandwidth().unwrap();
        assert!(bw <= 500e3, "{bw}");
    }

    #[test]
    fn held_back_samples_never_lower_the_rate() {
        let t0 = Instant::now();
        let mut m = LinkMeter::new(t0);
        round(&mut m, t0, 25_000, 100, false);
        let bw = m.bandwidth().unwrap();
        let mut t = t0 + Duration::from_millis(200);
        for _ in 0..20 {
            let s = m.on_send(t, false, true);
            t += Duration::from_millis(500);
            m.on_delivered(s, 1000, t);
            m.acked(t);
        }
        assert_eq!(m.bandwidth(), Some(bw));
    }
}
