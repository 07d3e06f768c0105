//! Length-delimited protobuf framing with a hard upper bound on frame size.
//!
//! A frame is a varint length followed by that many bytes of one protobuf
//! message. The decoder rejects a claimed length above the codec's maximum
//! before reading (or reserving) anything, so a hostile peer cannot make us
//! allocate what it claims.

use bytes::{Buf, BytesMut};
use prost::Message;
use std::marker::PhantomData;
use tokio_util::codec::{Decoder, Encoder};

/// Default upper bound on one frame's payload: 1 MiB.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: u64, max: usize },
    #[error("malformed frame length")]
    BadLength,
    #[error("malformed message: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A `tokio_util` codec for frames carrying message type `T`.
#[derive(Debug)]
pub struct FrameCodec<T> {
    max: usize,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Clone for FrameCodec<T> {
    fn clone(&self) -> Self {
        Self::with_max(self.max)
    }
}

impl<T> Default for FrameCodec<T> {
    fn default() -> Self {
        Self::with_max(MAX_FRAME_LEN)
    }
}

impl<T> FrameCodec<T> {
    /// A codec that refuses frames longer than `max` bytes.
    pub fn with_max(max: usize) -> Self {
        Self { max, _marker: PhantomData }
    }

    /// How many more bytes the frame that `buf` begins needs before it is
    /// whole: one while its length is incomplete, then the rest of it, then
    /// zero. For a reader that must take one frame and not a byte beyond it
    /// (a stream's header, followed by raw bytes).
    pub fn missing(&self, buf: &[u8]) -> Result<usize, FrameError> {
        let Some((len, header)) = peek_varint(buf)? else {
            return Ok(1);
        };
        if len > self.max as u64 {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        Ok((header + len as usize).saturating_sub(buf.len()))
    }
}

/// Reads a varint prefix from `buf` without consuming it.
/// `Ok(None)` means more bytes are needed.
fn peek_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 10 {
        return Err(FrameError::BadLength);
    }
    Ok(None)
}

impl<T: Message + Default> Decoder for FrameCodec<T> {
    type Item = T;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<T>, FrameError> {
        let Some((len, header)) = peek_varint(src)? else {
            return Ok(None);
        };
        if len > self.max as u64 {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let len = len as usize;
        if src.len() < header + len {
            // Reserve only what the bounded frame still needs.
            src.reserve(header + len - src.len());
            return Ok(None);
        }
        src.advance(header);
        let body = src.split_to(len).freeze();
        Ok(Some(T::decode(body)?))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<T>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated),
        }
    }
}

impl<T: Message> Encoder<T> for FrameCodec<T> {
    type Error = FrameError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = item.encoded_len();
        if len > self.max {
            return Err(FrameError::TooLarge { len: len as u64, max: self.max });
        }
        dst.reserve(len + 10);
        item.encode_length_delimited(dst).map_err(|_| FrameError::TooLarge { len: len as u64, max: self.max })
    }
}

/// Encodes one message as a standalone frame.
pub fn encode_frame<T: Message>(item: &T) -> Vec<u8> {
    item.encode_length_delimited_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn hello() -> pb::AgentMessage {
        pb::AgentMessage {
            msg: Some(pb::agent_message::Msg::Hello(pb::Hello {
                project_id: "p".repeat(36),
                machine_token: "secret".into(),
                boot_id: "boot".into(),
                agent_version: "1".into(),
                capabilities: vec!["pty".into()],
                home: b"/home/dev".to_vec(),
                boot_key: vec![7; 32],
            })),
        }
    }

    #[test]
    fn round_trip_several_frames_split_anywhere() {
        let mut wire = BytesMut::new();
        let mut codec = FrameCodec::<pb::AgentMessage>::default();
        for _ in 0..3 {
            codec.encode(hello(), &mut wire).unwrap();
        }
        // Feed the bytes one at a time: every prefix is either "need more"
        // or a whole frame, never an error.
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            src.extend_from_slice(&[*b]);
            while let Some(m) = codec.decode(&mut src).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![hello(), hello(), hello()]);
        assert!(src.is_empty());
    }

    #[test]
    fn oversized_claim_is_rejected_before_allocating() {
        let mut codec = FrameCodec::<pb::AgentMessage>::with_max(1024);
        // Claims 4 GiB; only the 5-byte header is present.
        let mut src = BytesMut::from(&[0x80, 0x80, 0x80, 0x80, 0x10][..]);
        let err = codec.decode(&mut src).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 4294967296, max: 1024 }), "{err}");
        assert!(src.capacity() < 1 << 20, "reserved {} bytes", src.capacity());
    }

    #[test]
    fn missing_counts_to_the_frames_end_and_no_further() {
        let frame = encode_frame(&hello());
        let codec = FrameCodec::<pb::AgentMessage>::default();
        let mut buf = BytesMut::new();
        let mut reads = 0;
        loop {
            let need = codec.missing(&buf).unwrap();
            if need == 0 {
                break;
            }
            buf.extend_from_slice(&frame[buf.len()..buf.len() + need]);
            reads += 1;
        }
        assert_eq!(buf.len(), frame.len(), "exactly the frame");
        assert_eq!(reads, 2, "the length, then the body");
        assert_eq!(FrameCodec::<pb::AgentMessage>::default().decode(&mut buf).unwrap(), Some(hello()));
        let small = FrameCodec::<pb::AgentMessage>::with_max(4);
        assert!(matches!(small.missing(&frame[..1]), Err(FrameError::TooLarge { .. })));
        assert!(matches!(codec.missing(&[0xff; 10]), Err(FrameError::BadLength)));
    }

    #[test]
    fn over_long_varint_is_an_error() {
        let mut codec = FrameCodec::<pb::AgentMessage>::default();
        let mut src = BytesMut::from(&[0xff; 11][..]);
        assert!(matches!(codec.decode(&mut src), Err(FrameError::BadLength)));
    }

    #[test]
    fn truncated_frame_at_eof_is_an_error() {
        let mut codec = FrameCodec::<pb::AgentMessage>::default();
        let mut wire = BytesMut::new();
        codec.encode(hello(), &mut wire).unwrap();
        let mut cut = BytesMut::from(&wire[..wire.len() - 3]);
        assert!(codec.decode(&mut cut).unwrap().is_none());
        assert!(matches!(codec.decode_eof(&mut cut), Err(FrameError::Truncated)));
    }

    #[test]
    fn garbage_body_is_a_decode_error_not_a_panic() {
        let mut codec = FrameCodec::<pb::AgentMessage>::default();
        let mut src = BytesMut::from(&[4u8, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(codec.decode(&mut src), Err(FrameError::Decode(_))));
    }

    #[test]
    fn encoder_refuses_oversized_messages() {
        let mut codec = FrameCodec::<pb::PtyServer>::with_max(16);
        let big = pb::PtyServer { msg: Some(pb::pty_server::Msg::Output(vec![0u8; 64].into())) };
        assert!(matches!(codec.encode(big, &mut BytesMut::new()), Err(FrameError::TooLarge { .. })));
    }
}
