//! The output log: every byte the program wrote, addressed by its absolute offset
//! since the session started, in a bounded ring.
//!
//! A client says "I have everything before offset N" and gets exactly the rest:
//! nothing lost, nothing repeated. When N has already left the ring, the caller
//! falls back to a snapshot of the terminal model instead.

use std::collections::VecDeque;

pub const DEFAULT_CAPACITY: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct OutLog {
    buf: VecDeque<u8>,
    /// Absolute offset of `buf[0]`.
    start: u64,
    capacity: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'a> {
    /// Bytes starting at the requested offset (at most the requested length;
    /// two slices because the ring may wrap).
    Bytes(&'a [u8], &'a [u8]),
    /// The requested offset is older than the oldest byte kept.
    Evicted { oldest: u64 },
    /// The requested offset is beyond the end: a bug in the caller, or a peer lying.
    Future { end: u64 },
}

impl OutLog {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "output log capacity must be positive");
        OutLog {
            buf: VecDeque::new(),
            start: 0,
            capacity,
        }
    }

    /// Offset one past the newest byte.
    pub fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Offset of the oldest byte still kept.
    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn append(&mut self, data: &[u8]) {
        if data.len() >= self.capacity {
            // Only the tail can be kept; account for everything before it.
            let skip = data.len() - self.capacity;
            self.start += (self.buf.len() + skip) as u64;
            self.buf.clear();
            self.buf.extend(&data[skip..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            self.buf.drain(..overflow);
            self.start += overflow as u64;
        }
        self.buf.extend(data);
    }

    /// Up to `max` bytes starting at `offset`.
    pub fn read(&self, offset: u64, max: usize) -> Read<'_> {
        if offset < self.start {
            return Read::Evicted { oldest: self.start };
        }
        if offset > self.end() {
            return Read::Future { end: self.end() };
        }
        let from = (offset - self.start) as usize;
        let to = from.saturating_add(max).min(self.buf.len());
        let (a, b) = self.buf.as_slices();
        if to <= a.len() {
            Read::Bytes(&a[from..to], &[])
        } else if from >= a.len() {
            Read::Bytes(&b[from - a.len()..to - a.len()], &[])
        } else {
            Read::Bytes(&a[from..], &b[..to - a.len()])
        }
    }

    /// Like [`read`](Self::read) but copies into one buffer.
    pub fn read_vec(&self, offset: u64, max: usize) -> Result<Vec<u8>, Read<'_>> {
        match self.read(offset, max) {
            Read::Bytes(a, b) => {
                let mut v = Vec::with_capacity(a.len() + b.len());
                v.extend_from_slice(a);
                v.extend_from_slice(b);
                Ok(v)
            }
            other => Err(other),
        }
    }

    /// Bytes of memory held (for `ls` and the memory benchmark).
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(log: &OutLog, from: u64) -> Vec<u8> {
        log.read_vec(from, usize::MAX).unwrap()
    }

    #[test]
    fn replays_exactly_the_rest() {
        let mut log = OutLog::new(100);
        log.append(b"hello ");
        log.append(b"world");
        assert_eq!(log.end(), 11);
        assert_eq!(collect(&log, 6), b"world");
        assert_eq!(collect(&log, 11), b"");
        assert_eq!(log.read(12, 1), Read::Future { end: 11 });
    }

    #[test]
    fn overflow_evicts_oldest_and_keeps_offsets() {
        let mut log = OutLog::new(10);
        for i in 0..25u8 {
            log.append(&[i]);
        }
        assert_eq!(log.start(), 15);
        assert_eq!(log.end(), 25);
        assert_eq!(log.read(14, 5), Read::Evicted { oldest: 15 });
        assert_eq!(collect(&log, 20), vec![20, 21, 22, 23, 24]);
    }

    #[test]
    fn a_write_larger_than_the_ring_keeps_its_tail() {
        let mut log = OutLog::new(4);
        log.append(b"ab");
        log.append(b"0123456789");
        assert_eq!(log.start(), 8);
        assert_eq!(log.end(), 12);
        assert_eq!(collect(&log, 8), b"6789");
    }

    #[test]
    fn reads_across_the_wrap_are_contiguous() {
        // Push the VecDeque into a wrapped state and read every window.
        let mut log = OutLog::new(8);
        let mut all = Vec::new();
        for i in 0..50u8 {
            log.append(&[i, i]);
            all.extend([i, i]);
            for from in log.start()..=log.end() {
                for max in [1usize, 3, 8] {
                    let got = log.read_vec(from, max).unwrap();
                    let lo = from as usize;
                    let hi = (lo + max).min(all.len());
                    assert_eq!(got, all[lo..hi]);
                }
            }
        }
    }
}
