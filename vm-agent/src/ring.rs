//! A bounded buffer of terminal output addressed by absolute byte offset.
//!
//! Offsets count every byte the session ever produced, so a viewer can say
//! "I have seen up to N" and get exactly what follows, as long as it is still
//! held. Old bytes fall off the front when the buffer is full.

use std::collections::VecDeque;

/// Recent output of one session.
#[derive(Debug)]
pub struct Ring {
    buf: VecDeque<u8>,
    cap: usize,
    /// Offset of `buf[0]`.
    start: u64,
}

impl Ring {
    pub fn new(cap: usize) -> Self {
        Self { buf: VecDeque::new(), cap: cap.max(1), start: 0 }
    }

    /// Offset of the oldest byte still held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset one past the newest byte.
    pub fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    pub fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            let skip = data.len() - self.cap;
            self.start = self.end() + skip as u64;
            self.buf.clear();
            self.buf.extend(&data[skip..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.start += overflow as u64;
        self.buf.extend(data);
    }

    /// Up to `max` bytes from offset `from`. `None` if `from` fell off the
    /// front; empty if there is nothing new.
    pub fn read_from(&self, from: u64, max: usize) -> Option<Vec<u8>> {
        if from < self.start {
            return None;
        }
        let skip = usize::try_from(from - self.start).ok()?.min(self.buf.len());
        let take = (self.buf.len() - skip).min(max);
        let (a, b) = self.buf.as_slices();
        let mut out = Vec::with_capacity(take);
        if skip < a.len() {
            let n = take.min(a.len() - skip);
            out.extend_from_slice(&a[skip..skip + n]);
            out.extend_from_slice(&b[..take - n]);
        } else {
            let s = skip - a.len();
            out.extend_from_slice(&b[s..s + take]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_wrapping() {
        let mut r = Ring::new(8);
        r.push(b"hello");
        assert_eq!(r.read_from(0, 100).unwrap(), b"hello");
        r.push(b"world!");
        assert_eq!((r.start(), r.end()), (3, 11));
        assert_eq!(r.read_from(3, 100).unwrap(), b"loworld!");
        assert_eq!(r.read_from(5, 3).unwrap(), b"wor");
        assert_eq!(r.read_from(11, 100).unwrap(), b"");
        assert!(r.read_from(2, 100).is_none());
    }

    #[test]
    fn a_push_larger_than_the_buffer_keeps_its_tail() {
        let mut r = Ring::new(4);
        r.push(b"ab");
        r.push(b"0123456789");
        assert_eq!((r.start(), r.end()), (8, 12));
        assert_eq!(r.read_from(8, 10).unwrap(), b"6789");
    }

    #[test]
    fn every_split_point_reads_back_in_order() {
        let mut r = Ring::new(16);
        let data: Vec<u8> = (0..=255u8).collect();
        for chunk in data.chunks(5) {
            r.push(chunk);
        }
        let start = r.start();
        for from in start..r.end() {
            let got = r.read_from(from, 64).unwrap();
            assert_eq!(got, &data[from as usize..]);
        }
    }
}
