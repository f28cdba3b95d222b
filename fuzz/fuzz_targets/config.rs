//! Fuzz target `config`: the invariants are in `checks/config.rs`, shared with the stable corpus
//! replay (tests/fuzz_corpus.rs). See docs/fuzzing.md.

#![no_main]

#[path = "../checks/config.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
