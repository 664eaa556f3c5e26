//! Keystrokes with sequence numbers.
//!
//! The client numbers every input chunk and keeps it until the server says it
//! reached the program; after a reconnect it sends every unacknowledged chunk
//! again. The server remembers, per client, the highest sequence number it has
//! applied and skips anything at or below it, so a chunk resent after a lost
//! acknowledgement reaches the program exactly once.

use std::collections::{HashMap, VecDeque};

/// Client side: unacknowledged input.
#[derive(Debug, Default)]
pub struct InputQueue {
    pending: VecDeque<(u64, Vec<u8>)>,
    next_seq: u64,
    pending_bytes: usize,
}

impl InputQueue {
    pub fn new() -> Self {
        InputQueue {
            pending: VecDeque::new(),
            next_seq: 1,
            pending_bytes: 0,
        }
    }

    /// Queues `data` (split into chunks of at most `max_chunk`) and returns the
    /// new chunks, to be sent now if a link is up.
    pub fn push(&mut self, data: &[u8], max_chunk: usize) -> Vec<(u64, Vec<u8>)> {
        let mut fresh = Vec::new();
        for chunk in data.chunks(max_chunk.max(1)) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending.push_back((seq, chunk.to_vec()));
            self.pending_bytes += chunk.len();
            fresh.push((seq, chunk.to_vec()));
        }
        fresh
    }

    /// The sequence number of the last chunk pushed (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Forgets everything up to and including `seq`.
    pub fn ack(&mut self, seq: u64) {
        while let Some((s, data)) = self.pending.front() {
            if *s > seq {
                break;
            }
            self.pending_bytes -= data.len();
            self.pending.pop_front();
        }
    }

    /// Everything not yet acknowledged, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = &(u64, Vec<u8>)> {
        self.pending.iter()
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Server side: the highest sequence number applied, per client.
#[derive(Debug, Default)]
pub struct InputDedup {
    applied: HashMap<u64, (u64, u64)>, // client_id -> (highest seq, last-use tick)
    tick: u64,
}

/// Clients remembered per session; the least recently used is forgotten first.
/// A forgotten client that comes back could at worst see one resent chunk
/// applied twice, after 64 other clients have attached in between.
const MAX_CLIENTS: usize = 64;

impl InputDedup {
    /// Whether chunk `seq` of `client` is new; if so it is recorded as applied.
    pub fn accept(&mut self, client: u64, seq: u64) -> bool {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.applied.entry(client).or_insert((0, tick));
        entry.1 = tick;
        if seq <= entry.0 {
            return false;
        }
        entry.0 = seq;
        if self.applied.len() > MAX_CLIENTS {
            if let Some(oldest) = self
                .applied
                .iter()
                .min_by_key(|(_, v)| v.1)
                .map(|(k, _)| *k)
            {
                self.applied.remove(&oldest);
            }
        }
        true
    }

    pub fn applied(&self, client: u64) -> u64 {
        self.applied.get(&client).map_or(0, |v| v.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resent_chunks_apply_once_in_order() {
        let mut q = InputQueue::new();
        let mut server = InputDedup::default();
        let mut program: Vec<u8> = Vec::new();
        let sent = q.push(b"abcdef", 2);
        assert_eq!(sent.len(), 3);
        // The first two arrive, the acknowledgement is lost, the link dies.
        for (seq, data) in &sent[..2] {
            if server.accept(7, *seq) {
                program.extend(data);
            }
        }
        q.push(b"gh", 2);
        // Reconnect: everything unacknowledged goes again.
        for (seq, data) in q.unacked() {
            if server.accept(7, *seq) {
                program.extend(data);
            }
        }
        assert_eq!(program, b"abcdefgh");
        q.ack(server.applied(7));
        assert!(q.is_empty());
        assert_eq!(q.pending_bytes(), 0);
    }

    #[test]
    fn clients_are_independent_and_bounded() {
        let mut d = InputDedup::default();
        assert!(d.accept(1, 1));
        assert!(d.accept(2, 1));
        assert!(!d.accept(1, 1));
        for c in 100..300 {
            d.accept(c, 1);
        }
        assert!(d.applied.len() <= MAX_CLIENTS);
    }
}
