//! Echo prediction against random keys and a random server (echo, upper-case,
//! silence, scribbles elsewhere, clears, password mode, pastes) over a link
//! whose delay the input chooses, in simulated time.
//!
//! No input may panic, no overlay cell may leave the screen, and once every
//! answer has arrived and been judged nothing predicted may be left on screen:
//! what the user sees is exactly what the server drew.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    abide::proto::predict::sim::run_bytes(data);
});
