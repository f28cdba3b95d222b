//! The `pymodbus_json` target: the pymodbus simulator file reader
//! (`serialtwin_devices::modbus::pymodbus::load`), on any text.
//!
//! Invariants: no panic; an error points into the text (its line and column lie within it);
//! a file that loads gives cells a unit can be built on and answers every read function on,
//! whatever the request, without panicking.

use std::time::Duration;

use serialtwin_devices::modbus::pymodbus;
use serialtwin_devices::modbus::unit::{Delivery, Unit};

/// Load `data` as a simulator file serving `server` and `device`, the names pymodbus's
/// simulator defaults to.
pub(crate) fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match pymodbus::load(text, "server", "device", 7) {
        Err(e) => {
            let lines = text.lines().count().max(1);
            assert!(
                e.line >= 1 && e.line <= lines + 1,
                "line {} of {lines}: {e}",
                e.line
            );
        }
        Ok(loaded) => {
            let mut unit = Unit::default();
            unit.use_cells(loaded.cells);
            for function in [1u8, 2, 3, 4] {
                for (start, count) in [(0u16, 1u16), (0, 125), (7, 3), (65_535, 1)] {
                    let [sh, sl] = start.to_be_bytes();
                    let [ch, cl] = count.to_be_bytes();
                    let mut out = Vec::new();
                    let _ = unit.answer(
                        &[function, sh, sl, ch, cl],
                        Delivery::Addressed,
                        Duration::from_secs(1),
                        &mut out,
                    );
                }
            }
        }
    }
}
