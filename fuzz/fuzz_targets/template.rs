//! Fuzz target `template`: the invariants are in `checks/template.rs`, shared with the stable corpus
//! replay (tests/fuzz_corpus.rs). See docs/fuzzing.md.

#![no_main]

#[path = "../checks/template.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
