//! The client's resume state machine fed what a hostile or buggy server sends.
//!
//! The input is a little program. Each step starts with an op byte:
//! - `0x00..=0x7f`: a `Down` frame. Body length = `(op & 0x0f) << 8 | next byte`,
//!   then that many bytes (fewer at the end of the input), decoded with
//!   `frame::decode::<Down>` exactly as `client::attach` does with a body from
//!   the network. As in that driver, a frame that does not decode, or that
//!   `on_frame` rejects, drops the link, and the next link starts with `hello`.
//! - `0x80..=0x9f`: user input of `op & 0x1f` bytes from the input.
//! - `0xa0..=0xbf`: time passes (`(op & 0x1f) * 50 ms`), then `handle_timeout`.
//! - `0xc0..=0xdf`: the link fails outright; a new one is made.
//! - `0xe0..=0xff`: drain `poll_transmit` and `poll_event`.
//!
//! Nothing may panic, and within one session the output offset (every byte
//! before it has been written to the terminal) never goes back: going back
//! would write output to the terminal twice. An `Ack` never claims more than
//! the core has written, nor less than it claimed before in the same session.

#![no_main]

use std::time::{Duration, Instant};

use abide::proto::frame::{self, Down, Target, Up, WinSize};
use abide::proto::resume::{ClientCore, Timing};
use libfuzzer_sys::fuzz_target;

struct Check {
    session: Option<u64>,
    offset: u64,
    acked: u64,
}

impl Check {
    fn after(&mut self, core: &ClientCore, what: &dyn Fn() -> String) {
        let session = core.session().map(|s| s.0);
        if session == self.session {
            assert!(
                core.offset() >= self.offset,
                "offset went back from {} to {} in session {:?} after {}",
                self.offset,
                core.offset(),
                session,
                what()
            );
        } else {
            // Another session (the first attach): output starts afresh.
            self.session = session;
            self.acked = 0;
        }
        self.offset = core.offset();
    }

    fn drain(&mut self, core: &mut ClientCore) {
        while let Some(up) = core.poll_transmit() {
            if let Up::Ack { offset } = up {
                assert!(offset <= core.offset(), "ack {offset} beyond offset {}", core.offset());
                assert!(offset >= self.acked, "ack went back from {} to {offset}", self.acked);
                self.acked = offset;
            }
        }
        while core.poll_event().is_some() {}
    }
}

fn reconnect(core: &mut ClientCore, now: Instant) {
    core.link_down(now);
    let _ = core.hello(now);
    core.link_up(now);
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut core = ClientCore::new(
        1,
        Target::Existing(None),
        WinSize::default(),
        Timing::QUIC,
        now,
    );
    let _ = core.hello(now);
    core.link_up(now);
    let mut check = Check {
        session: None,
        offset: core.offset(),
        acked: 0,
    };
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op {
            0x00..=0x7f => {
                let Some((&lo, tail)) = rest.split_first() else {
                    break;
                };
                let len = (((op & 0x0f) as usize) << 8 | lo as usize).min(tail.len());
                let (body, tail) = tail.split_at(len);
                rest = tail;
                match frame::decode::<Down>(body) {
                    Ok(f) => {
                        let shown = format!("{f:?}");
                        if core.on_frame(f, now).is_err() {
                            reconnect(&mut core, now);
                        }
                        check.after(&core, &|| shown.clone());
                    }
                    Err(_) => reconnect(&mut core, now),
                }
            }
            0x80..=0x9f => {
                let n = ((op & 0x1f) as usize).min(rest.len());
                let (input, tail) = rest.split_at(n);
                rest = tail;
                core.user_input(input);
            }
            0xa0..=0xbf => {
                now += Duration::from_millis(50 * (op & 0x1f) as u64);
                core.handle_timeout(now);
            }
            0xc0..=0xdf => reconnect(&mut core, now),
            0xe0..=0xff => check.drain(&mut core),
        }
        check.after(&core, &|| format!("op {op:#04x}"));
    }
    check.drain(&mut core);
});
