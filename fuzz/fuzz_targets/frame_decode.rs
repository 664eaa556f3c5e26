//! The frame decoder on hostile bytes.
//!
//! Each input is used two ways:
//! 1. as one frame body, handed to `decode_hello`, `decode::<Up>` and
//!    `decode::<Down>` (what a channel does with a body it has read);
//! 2. as a byte stream, cut into frames by a `LengthDelimitedCodec` set up
//!    exactly as `src/transport/framed.rs` does (4-byte big-endian length,
//!    `MAX_FRAME_LEN`), each body then decoded as above.
//!
//! Nothing may panic. Whatever decodes must re-encode to at most as many bytes
//! (the encoding is canonical and minimal), decode again to an equal value, and
//! re-encode to the same bytes. A length above `MAX_FRAME_LEN` must be refused
//! by the codec before it buffers the body: that error is what ends (only) the
//! offending connection.

#![no_main]

use std::fmt::Debug;

use abide::proto::frame::{
    decode, decode_hello, encode, Down, FrameError, Hello, Request, Up, WinSize, MAX_FRAME_LEN,
};
use abide::proto::limits::{restrict_to_session, MAX_COLS, MAX_ROWS};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

fn round_trip<T>(body: &[u8], msg: &T, again: impl Fn(&[u8]) -> Result<T, FrameError>)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode(msg);
    assert!(
        bytes.len() <= body.len(),
        "re-encoding grew: {} > {} bytes for {msg:?}",
        bytes.len(),
        body.len()
    );
    let back = again(&bytes).unwrap_or_else(|e| panic!("re-encoded {msg:?} does not decode: {e}"));
    assert_eq!(&back, msg, "round trip changed the frame");
    assert_eq!(encode(&back), bytes, "encoding is not deterministic");
}

/// Every size a peer can send is either within the documented bounds and
/// accepted, or refused (the daemon answers `BadSize`), never anything else.
fn size_is_judged(s: WinSize) {
    let inside = (1..=MAX_ROWS).contains(&s.rows) && (1..=MAX_COLS).contains(&s.cols);
    assert_eq!(s.validate().is_ok(), inside, "{s:?}");
    assert!(s.clamped().validate().is_ok());
}

fn body(b: &[u8], first: bool) {
    if b.len() > MAX_FRAME_LEN {
        assert!(matches!(decode::<Up>(b), Err(FrameError::TooLarge(_))));
        assert!(matches!(decode::<Down>(b), Err(FrameError::TooLarge(_))));
    }
    if first {
        if let Ok(h) = decode_hello(b) {
            round_trip::<Hello>(b, &h, decode_hello);
            if let Request::Attach(a) = &h.request {
                size_is_judged(a.size);
            }
            let _ = restrict_to_session(h.request, "work");
        }
    }
    if let Ok(u) = decode::<Up>(b) {
        round_trip::<Up>(b, &u, |x| decode::<Up>(x));
        if let Up::Resize(s) = u {
            size_is_judged(s);
        }
    }
    if let Ok(d) = decode::<Down>(b) {
        round_trip::<Down>(b, &d, |x| decode::<Down>(x));
    }
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec()
}

fuzz_target!(|data: &[u8]| {
    // 1. The whole input as one body.
    body(data, true);

    // 2. The whole input as a stream of length-prefixed frames, then EOF.
    let mut codec = codec();
    let mut buf = BytesMut::from(data);
    let mut first = true;
    loop {
        let before = buf.len();
        let cap = buf.capacity();
        let oversized = buf.len() >= 4
            && u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize > MAX_FRAME_LEN;
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => {
                assert!(!oversized, "an oversized frame was accepted");
                assert!(frame.len() <= MAX_FRAME_LEN);
                assert!(buf.len() < before, "codec made no progress");
                body(&frame, first);
                first = false;
            }
            // Clean end of stream.
            Ok(None) => break,
            // A length above MAX_FRAME_LEN, or a frame cut short by EOF: the
            // reader errors and the channel owning it ends.
            Err(_) => {
                if oversized {
                    // Refused from the header alone: nothing reserved for the body.
                    assert!(buf.capacity() <= cap, "buffer grew for an oversized frame");
                }
                break;
            }
        }
    }
});
