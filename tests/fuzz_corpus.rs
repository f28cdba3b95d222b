//! The fuzz corpus as regression tests, on stable: every input `cargo fuzz` kept
//! (`fuzz/corpus/<target>/`, minimised with `cargo fuzz cmin`) and every input that once
//! crashed a target (`fuzz/regressions/<target>/`) goes through the target's own checks
//! (`fuzz/checks/<target>.rs`, the very code the fuzz target runs). Fuzzing itself needs
//! nightly; this replay does not. See docs/fuzzing.md.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks/capture.rs"]
mod capture;
#[path = "../fuzz/checks/config.rs"]
mod config;
#[path = "../fuzz/checks/control.rs"]
mod control;
#[path = "../fuzz/checks/framers.rs"]
mod framers;
#[path = "../fuzz/checks/modbus_pair.rs"]
mod modbus_pair;
#[path = "../fuzz/checks/modbus_tcp.rs"]
mod modbus_tcp;
#[path = "../fuzz/checks/pymodbus_json.rs"]
mod pymodbus_json;
#[path = "../fuzz/checks/pyvisa_sim.rs"]
mod pyvisa_sim;
#[path = "../fuzz/checks/rfc2217.rs"]
mod rfc2217;
#[path = "../fuzz/checks/template.rs"]
mod template;

/// The files in `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Run `check` on every input of `target`'s corpus and regressions; the corpus must exist.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = files(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "no corpus for {target} in fuzz/corpus/{target}"
    );
    let regressions = files(&fuzz.join("regressions").join(target));
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable corpus file");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            eprintln!("{target}: {} fails its check", path.display());
            resume_unwind(panic);
        }
    }
}

#[test]
fn framers() {
    replay("framers", framers::check);
}

#[test]
fn config() {
    replay("config", config::check);
}

#[test]
fn capture() {
    replay("capture", capture::check);
}

#[test]
fn control() {
    replay("control", control::check);
}

#[test]
fn template() {
    replay("template", template::check);
}

#[test]
fn modbus_pair() {
    replay("modbus_pair", modbus_pair::check);
}

#[test]
fn modbus_tcp() {
    replay("modbus_tcp", modbus_tcp::check);
}

#[test]
fn rfc2217() {
    replay("rfc2217", rfc2217::check);
}

#[test]
fn pymodbus_json() {
    replay("pymodbus_json", pymodbus_json::check);
}

#[test]
fn pyvisa_sim() {
    replay("pyvisa_sim", pyvisa_sim::check);
}
