//! Fuzz target `pyvisa_sim`: the invariants are in `checks/pyvisa_sim.rs`, shared with the stable corpus
//! replay (tests/fuzz_corpus.rs). See docs/fuzzing.md.

#![no_main]

#[path = "../checks/pyvisa_sim.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
