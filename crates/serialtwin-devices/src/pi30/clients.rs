//! How PI30's usual clients read a port's path.
//!
//! mppsolar picks its transport from substrings of the whole lower-cased port path, parent
//! directories included, first match wins (`mppsolar/inout/__init__.py`, version 0.16.56).

/// What mppsolar makes of a port path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MppsolarPort {
    /// Its serial transport: what an emulated port needs.
    Serial,
    /// Another transport, chosen because the path contains `substring`.
    Trap {
        /// The substring that decided.
        substring: &'static str,
        /// What mppsolar then does.
        effect: &'static str,
    },
    /// No transport at all ("No communications port defined") without `--porttype serial`.
    Unknown,
}

/// The substrings mppsolar checks, in its order, and what each makes it do.
const RULES: &[(&str, Option<&str>)] = &[
    (
        "test",
        Some("answers from its canned test data and never opens the port"),
    ),
    ("mqtt", Some("talks MQTT instead of opening the port")),
    ("hidraw", Some("uses its USB HID transport")),
    ("mppsolar", Some("uses its USB HID transport")),
    ("esp", Some("uses its ESP32 transport")),
    (
        ":",
        Some("uses its JK-BLE transport (and fails without bluepy)"),
    ),
    ("jkble", Some("uses its JK-BLE transport")),
    ("daly", Some("uses its Daly BMS transport")),
    ("remotesocket", Some("uses its remote socket transport")),
    ("vserial", Some("uses its vserial transport")),
    ("jkserial", Some("uses its JK serial transport")),
    ("serial", None),
    ("ttyusb", None),
];

/// How mppsolar classifies `path`.
#[must_use]
pub fn mppsolar(path: &str) -> MppsolarPort {
    let lower = path.to_lowercase();
    for &(substring, effect) in RULES {
        if lower.contains(substring) {
            return match effect {
                Some(effect) => MppsolarPort::Trap { substring, effect },
                None => MppsolarPort::Serial,
            };
        }
    }
    MppsolarPort::Unknown
}

/// A warning about a PI30 port's link `path`, if mppsolar would not open it as a serial port.
#[must_use]
pub fn warning(path: &str) -> Option<String> {
    match mppsolar(path) {
        MppsolarPort::Trap { substring, effect } => Some(format!(
            "mppsolar reads link {path} as not serial: it contains `{substring}`, so mppsolar \
             {effect}; choose a path without it, or run mppsolar with --porttype serial"
        )),
        MppsolarPort::Unknown => Some(format!(
            "mppsolar does not recognise link {path} as a serial port (no `serial` or `ttyUSB` \
             in it): it would say \"No communications port defined\"; put `ttyUSB` in the name, \
             or run mppsolar with --porttype serial"
        )),
        MppsolarPort::Serial => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_substring_rules_in_order() {
        assert_eq!(mppsolar("/tmp/serialtwin/ttyUSB0"), MppsolarPort::Serial);
        assert_eq!(mppsolar("/dev/ttyUSB0"), MppsolarPort::Serial);
        assert!(matches!(
            mppsolar("/tmp/latest/ttyUSB0"),
            MppsolarPort::Trap {
                substring: "test",
                ..
            }
        ));
        assert!(matches!(
            mppsolar("/home/me/esphome/ttyUSB0"),
            MppsolarPort::Trap {
                substring: "esp",
                ..
            }
        ));
        assert!(matches!(
            mppsolar("/tmp/mppsolar-fake"),
            MppsolarPort::Trap {
                substring: "mppsolar",
                ..
            }
        ));
        assert!(matches!(
            mppsolar("/tmp/a:b/ttyUSB0"),
            MppsolarPort::Trap { substring: ":", .. }
        ));
        assert!(matches!(
            mppsolar("/dev/hidraw0"),
            MppsolarPort::Trap {
                substring: "hidraw",
                ..
            }
        ));
        assert_eq!(mppsolar("/dev/pts/3"), MppsolarPort::Unknown);
        assert!(warning("/tmp/x/ttyACM0").is_some());
        assert!(warning("/tmp/TEST/ttyUSB0").is_some());
        assert!(warning("/tmp/x/ttyUSB0").is_none());
    }
}
