//! The bootstrap line that `abide server --bootstrap` prints, read from the
//! remote's ssh output (which also carries motd, shell rc noise, anything).
//!
//! No input may panic, and a line that parses must render back to a line that
//! parses to the same value.

#![no_main]

use abide::server::bootstrap::ConnectLine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(Ok(line)) = ConnectLine::find(text) {
        let rendered = line.render();
        let back = ConnectLine::find(&rendered)
            .expect("rendered line is found")
            .unwrap_or_else(|e| panic!("rendered line {rendered:?} does not parse: {e:#}"));
        assert_eq!(back, line, "render/parse round trip changed the line {rendered:?}");
    }
});
