//! Fuzz target `control`: the invariants are in `checks/control.rs`, shared with the stable corpus
//! replay (tests/fuzz_corpus.rs). See docs/fuzzing.md.

#![no_main]

#[path = "../checks/control.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
