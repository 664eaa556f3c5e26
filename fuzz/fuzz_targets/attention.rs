//! The attention scanner reads every byte a program writes, split across
//! reads wherever the kernel likes. No input may panic, memory stays bounded,
//! and how the bytes are split never changes what is found.

#![no_main]

use abide::proto::attention::{Scanner, Signal, MAX_OSC, MAX_TEXT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cut, bytes) = match data.split_first() {
        Some((c, rest)) => (*c as usize, rest),
        None => return,
    };
    let mut whole = Scanner::default();
    let mut a = Vec::new();
    whole.feed(bytes, &mut a);
    let mut split = Scanner::default();
    let mut b = Vec::new();
    let step = cut.max(1);
    for chunk in bytes.chunks(step) {
        split.feed(chunk, &mut b);
    }
    assert_eq!(a, b, "splitting the input every {step} bytes changed the signals");
    for s in &a {
        match s {
            Signal::Bell => {}
            Signal::Title(t) => assert!(t.chars().count() <= MAX_TEXT),
            Signal::Notify { title, body } => {
                assert!(title.chars().count() <= MAX_TEXT && body.chars().count() <= MAX_TEXT);
                assert!(!title.chars().chain(body.chars()).any(char::is_control));
            }
        }
    }
    let _ = MAX_OSC;
});
