//! pyvisa resource names, as far as serving one takes: its interface and class, and the
//! address of a `TCPIP[board]::host::port::SOCKET` resource.
//!
//! Read as pyvisa 1.16's `rname` reads them (checked with its `parse_resource_name`): parts
//! are separated by `::`; the interface (`TCPIP`, `tcpip`) is case-insensitive and its board
//! defaults to 0 (`TCPIP::…` is `TCPIP0::…`); a SOCKET resource has exactly four parts, so an
//! IPv6 address cannot be written in one (`TCPIP::[::1]::10001::SOCKET` has too many). pyvisa
//! wants the class upper case; the loader matches names case-insensitively, and so does this.

/// What a resource name says, for serving it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `ASRL<board>::INSTR`: a serial port.
    Asrl,
    /// `TCPIP[board]::host::port::SOCKET`: raw TCP to `host:port`.
    Socket {
        /// The host as written (`localhost`, `127.0.0.1`).
        host: &'a str,
        /// The port, never 0.
        port: u16,
    },
    /// An instrument resource that needs a VISA protocol (`USB INSTR`, `TCPIP INSTR`, ...).
    Protocol {
        /// The eom key of its interface and class (`USB INSTR`).
        kind: &'static str,
        /// The protocol a client speaks to it.
        protocol: &'static str,
    },
}

/// Why a resource name cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("resource {name:?}: {reason}")]
pub struct ResourceNameError {
    /// The name as written.
    pub name: String,
    /// Why (one line).
    pub reason: String,
}

/// What `name` says.
///
/// # Errors
/// A name that is not `ASRL…`, `TCPIP…`, `USB…` or `GPIB…`, a SOCKET resource without four
/// parts, with an empty host, or with a port that is not 1 to 65535.
pub fn parse(name: &str) -> Result<Resource<'_>, ResourceNameError> {
    let error = |reason: String| ResourceNameError {
        name: name.to_owned(),
        reason,
    };
    let parts: Vec<&str> = name.trim().split("::").collect();
    let head = parts[0].to_ascii_uppercase();
    let class = parts
        .last()
        .filter(|_| parts.len() > 1)
        .map(|c| c.to_ascii_uppercase());
    let board = |prefix: &str| {
        head.strip_prefix(prefix)
            .is_some_and(|b| b.bytes().all(|c| c.is_ascii_digit()))
    };
    if board("TCPIP") && class.as_deref() == Some("SOCKET") {
        let [_, host, port, _] = parts[..] else {
            return Err(error(format!(
                "a SOCKET resource is `TCPIP[board]::host::port::SOCKET`, four parts, not {} \
                 (an IPv6 address cannot be written in one: pyvisa splits it at its `::`)",
                parts.len()
            )));
        };
        if host.is_empty() {
            return Err(error("the host is empty".into()));
        }
        let port = port
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| port.parse::<u16>().ok())
            .flatten()
            .filter(|&p| p != 0)
            .ok_or_else(|| {
                error(format!(
                    "port {port:?}: a SOCKET resource names a port from 1 to 65535 (a client \
                     cannot connect to port 0)"
                ))
            })?;
        return Ok(Resource::Socket { host, port });
    }
    let kind = match class.as_deref() {
        Some("INSTR") if head.starts_with("ASRL") => return Ok(Resource::Asrl),
        Some("INSTR") if board("TCPIP") => ("TCPIP INSTR", "VXI-11 or HiSLIP"),
        Some("INSTR") if board("USB") => ("USB INSTR", "USBTMC"),
        Some("RAW") if board("USB") => ("USB RAW", "raw USB bulk transfers"),
        Some("INSTR") if board("GPIB") => ("GPIB INSTR", "an IEEE 488 bus"),
        _ => {
            return Err(error(
                "not a resource this serves (`ASRL<n>::INSTR` on a port, \
                 `TCPIP::host::port::SOCKET` on raw TCP)"
                    .into(),
            ));
        }
    };
    Ok(Resource::Protocol {
        kind: kind.0,
        protocol: kind.1,
    })
}

/// `name` as pyvisa-sim compares names, near enough: trimmed, upper case, board 0 written
/// where a `TCPIP`, `USB` or `GPIB` name leaves it out.
fn canonical(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    for interface in ["TCPIP", "USB", "GPIB"] {
        if let Some(rest) = upper.strip_prefix(interface)
            && rest.starts_with("::")
        {
            return format!("{interface}0{rest}");
        }
    }
    upper
}

/// Whether two resource names name the same resource (`TCPIP::h::1::SOCKET` and
/// `tcpip0::h::1::SOCKET` do).
#[must_use]
pub fn same(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_resources_give_host_and_port() {
        for (name, host, port) in [
            ("TCPIP::localhost::10001::SOCKET", "localhost", 10001),
            ("TCPIP0::127.0.0.1::10001::SOCKET", "127.0.0.1", 10001),
            ("TCPIP1::127.0.0.2::1::SOCKET", "127.0.0.2", 1),
            ("tcpip::localhost::65535::socket", "localhost", 65535),
            ("TcpIp0::LOCALHOST::5025::Socket", "LOCALHOST", 5025),
            (" TCPIP::localhost::10001::SOCKET ", "localhost", 10001),
        ] {
            assert_eq!(parse(name), Ok(Resource::Socket { host, port }), "{name}");
        }
    }

    #[test]
    fn what_a_socket_cannot_be() {
        for (name, why) in [
            ("TCPIP::[::1]::10001::SOCKET", "IPv6"),
            ("TCPIP::::1::10001::SOCKET", "IPv6"),
            ("TCPIP::localhost::SOCKET", "four parts"),
            ("TCPIP::::10001::SOCKET", "host is empty"),
            ("TCPIP::localhost::0::SOCKET", "port 0"),
            ("TCPIP::localhost::65536::SOCKET", "1 to 65535"),
            ("TCPIP::localhost::+5::SOCKET", "1 to 65535"),
            ("TCPIP::localhost::x::SOCKET", "1 to 65535"),
            ("TCPIPx::localhost::1::SOCKET", "not a resource this serves"),
            ("VXI0::1::INSTR", "not a resource this serves"),
            ("ASRL1", "not a resource this serves"),
        ] {
            let e = parse(name).unwrap_err();
            assert!(e.to_string().contains(why), "{name}: {e}");
        }
    }

    #[test]
    fn instruments_name_their_protocol() {
        assert_eq!(parse("ASRL1::INSTR"), Ok(Resource::Asrl));
        assert_eq!(parse("asrl7::instr"), Ok(Resource::Asrl));
        for (name, kind, protocol) in [
            ("TCPIP::localhost::INSTR", "TCPIP INSTR", "VXI-11"),
            ("TCPIP0::10.0.0.1::hislip0::INSTR", "TCPIP INSTR", "HiSLIP"),
            (
                "USB0::0x1111::0x2222::0x3333::0::INSTR",
                "USB INSTR",
                "USBTMC",
            ),
            ("USB::0x1111::0x2222::0x4444::0::RAW", "USB RAW", "USB bulk"),
            ("GPIB0::8::INSTR", "GPIB INSTR", "488"),
        ] {
            let Ok(Resource::Protocol {
                kind: k,
                protocol: p,
            }) = parse(name)
            else {
                panic!("{name}: {:?}", parse(name));
            };
            assert_eq!(k, kind, "{name}");
            assert!(p.contains(protocol), "{name}: {p}");
        }
    }

    #[test]
    fn names_compare_as_pyvisa_sim_canonicalises_them() {
        assert!(same(
            "TCPIP::localhost::10001::SOCKET",
            "tcpip0::localhost::10001::socket"
        ));
        assert!(same("GPIB::8::INSTR", "GPIB0::8::INSTR"));
        assert!(same("ASRL1::INSTR", " asrl1::INSTR"));
        assert!(!same(
            "TCPIP1::localhost::10001::SOCKET",
            "TCPIP::localhost::10001::SOCKET"
        ));
        assert!(!same("ASRL1::INSTR", "ASRL10::INSTR"));
    }
}
