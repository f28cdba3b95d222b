//! Fuzz target `modbus_tcp`: the invariants are in `checks/modbus_tcp.rs`, shared with the stable corpus
//! replay (tests/fuzz_corpus.rs). See docs/fuzzing.md.

#![no_main]

#[path = "../checks/modbus_tcp.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
