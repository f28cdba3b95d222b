//! The `pyvisa-sim` model's registry entry: a pyvisa-sim file and the resource to serve.
//!
//! An `ASRL<n>::INSTR` resource is served on the port like any device (a pty, its link, its
//! endpoints). A `TCPIP[board]::host::port::SOCKET` resource is served on a raw TCP endpoint
//! at its own address, what pyvisa-py connects to: the device's [`Built::listen`], where the config
//! adds a `tcp` endpoint. Instrument resources of other interfaces (`TCPIP INSTR`, `USB INSTR`, `GPIB
//! INSTR`, `USB RAW`) are refused: a client reaches them through a VISA protocol (VXI-11,
//! `HiSLIP`, USBTMC, a GPIB bus) that serialtwin does not speak.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, ToSocketAddrs};
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use serialtwin_core::Settable;

use super::rname::{self, Resource};
use super::{SimDevice, eom, load_with};
use crate::registry::{Build, BuildError, Built, Finding, Lint, Model};
use crate::scripted::{Script, Scripted};

/// The `pyvisa-sim` model.
pub static MODEL: Model = Model {
    name: "pyvisa-sim",
    summary: "the device behind a resource of a pyvisa-sim 0.7.1 YAML file (spec 1.0/1.1): its \
              dialogues, properties (getters, setters, specs), channels, RANDOM replies, error \
              response, status registers, error queues and eom, compiled to a script; an ASRL resource on \
              the port, a TCPIP SOCKET one on raw TCP at its address",
    table: "pyvisa-sim",
    example: EXAMPLE,
    framings: &[],
    groups: false,
    max_clock_speed: f64::INFINITY,
    settable,
    lint,
    build,
    units: &[],
};

const EXAMPLE: &str = r#"[[device]]
name = "lsg"
model = "pyvisa-sim"
link = "/tmp/serialtwin/ttyUSB-lsg"

[device.pyvisa-sim]
file = "pyvisa-sim.yaml"            # a pyvisa-sim device file (relative to this config)
resource = "ASRL1::INSTR"           # the resource whose device this port serves
# resource = "TCPIP::localhost::10001::SOCKET"  # or on raw TCP at 127.0.0.1:10001 (no link needed)
"#;

/// A device's keys are its file's properties.
fn settable() -> Vec<Settable> {
    vec![Settable::new(
        "<property>",
        "a property of the device in the file (converted and checked by its specs)",
    )]
}

/// `[device.pyvisa-sim]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimConfig {
    /// The pyvisa-sim file, relative to the config file.
    file: Spanned<String>,
    /// The resource (`ASRL1::INSTR`) whose device to serve.
    resource: Spanned<String>,
}

/// The longest device file read: far more than a device takes, and a bound on what a path
/// that keeps giving can make it hold.
const MAX_FILE: u64 = 4 << 20;

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let Some(config) = b.table.deserialize::<SimConfig>()? else {
        return Err(b.device_error(
            "model `pyvisa-sim` needs `file` and `resource` in a [device.pyvisa-sim] table",
        ));
    };
    if b.framing.is_some() {
        return Err(
            b.device_error("a pyvisa-sim device's eom sets the framing: no `framing` beside it")
        );
    }
    let listen = address(&config.resource)?.map(|addr| (addr, config.resource.span()));
    if listen.is_some() && b.count > 1 {
        return Err(BuildError::at(
            config.resource.span(),
            format!(
                "a SOCKET resource is one address: `count` is {}, and only one device can \
                 listen there (one [[device]] per resource)",
                b.count
            ),
        ));
    }
    let path = b.resolve(std::path::Path::new(config.file.get_ref()));
    let at_file =
        |why: String| BuildError::at(config.file.span(), format!("{}:{why}", path.display()));
    let bytes = serialtwin_core::input_file::read_regular(&path, MAX_FILE, "a pyvisa-sim file")
        .map_err(|e| at_file(format!(" {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| at_file(format!(" {e}")))?;
    // A device in another file: beside this one, as pyvisa-sim looks for it.
    let beside = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut read_other = |name: &str| -> Result<String, String> {
        let other = beside.join(name);
        let bytes =
            serialtwin_core::input_file::read_regular(&other, MAX_FILE, "a pyvisa-sim file")
                .map_err(|e| format!("{}: {e}", other.display()))?;
        String::from_utf8(bytes).map_err(|e| format!("{}: {e}", other.display()))
    };
    let loaded = load_with(&text, config.resource.get_ref(), &mut read_other)
        .map_err(|e| at_file(e.to_string()))?;
    let script = Script::compile(&loaded.script)
        .map_err(|e| at_file(format!(" device {:?}: {e}", loaded.device)))?;
    let script = Arc::new(script);
    let framing = eom::framing(&loaded.query_eom, &loaded.reply_eom);
    Ok((0..b.count)
        .map(|_| {
            let device = SimDevice::new(
                Scripted::new(Arc::clone(&script)),
                framing.clone(),
                loaded.delimiter.clone(),
            );
            Built {
                listen: listen.clone(),
                ..Built::new(device)
            }
        })
        .collect())
}

/// A SOCKET resource whose host is not a loopback address is served where the network reaches
/// it: worth saying, for a test double someone else can talk to.
fn lint(port: &Lint<'_>) -> Vec<Finding> {
    let Ok(Some(config)) = port.table.deserialize::<SimConfig>() else {
        return Vec::new();
    };
    match address(&config.resource) {
        Ok(Some(addr)) if !addr.ip().is_loopback() => vec![Finding {
            message: format!(
                "resource {:?} listens on {addr}, not a loopback address: the network reaches \
                 the device there",
                config.resource.get_ref()
            ),
            at: Some(config.resource.span()),
        }],
        _ => Vec::new(),
    }
}

/// What `resource` is served on: `None`, a port; or a raw TCP address.
fn address(resource: &Spanned<String>) -> Result<Option<SocketAddr>, BuildError> {
    let at = |why: String| BuildError::at(resource.span(), why);
    let name = resource.get_ref();
    match rname::parse(name).map_err(|e| at(e.to_string()))? {
        Resource::Asrl => Ok(None),
        Resource::Protocol { kind, protocol } => Err(at(format!(
            "resource {name:?} is a `{kind}` resource: a client reaches it through {protocol}, \
             which serialtwin does not speak; serve the device's `ASRL<n>::INSTR` resource on a \
             port, or a `TCPIP::host::port::SOCKET` one on raw TCP"
        ))),
        Resource::Socket { host, port } => {
            let ip = host_ip(host, port).map_err(|why| at(format!("resource {name:?}: {why}")))?;
            Ok(Some(SocketAddr::V4(SocketAddrV4::new(ip, port))))
        }
    }
}

/// The IPv4 address to listen on for `host` (pyvisa-py connects over IPv4 only):
/// `localhost` is 127.0.0.1, an address is itself, a name its first IPv4 address. It must be
/// this host's own, which binding it (on port 0) tells.
fn host_ip(host: &str, port: u16) -> Result<Ipv4Addr, String> {
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        ip
    } else {
        let mut addrs = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("host {host:?}: {e}"))?;
        addrs
            .find_map(|a| match a {
                SocketAddr::V4(v4) => Some(*v4.ip()),
                SocketAddr::V6(_) => None,
            })
            .ok_or_else(|| {
                format!("host {host:?} has no IPv4 address (pyvisa-py connects over IPv4 only)")
            })?
    };
    match TcpListener::bind((ip, 0)) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(format!(
            "host {host:?} ({ip}) is not an address of this host: the device listens at the \
             resource's address, so it must be one of this host's (localhost, 127.0.0.1, or \
             one of its interfaces')"
        )),
        _ => Ok(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Table;

    fn examples() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    #[test]
    fn a_resource_of_the_example_file_is_served() {
        let dir = examples();
        let table = Table::parse("file = 'pyvisa-sim.yaml'\nresource = 'ASRL1::INSTR'\n").unwrap();
        let mut b = Build::new(table);
        b.base_dir = Some(&dir);
        b.count = 2;
        let built = build(&b).unwrap();
        assert_eq!(built.len(), 2);
        assert!(built[0].listen.is_none(), "served on the port");
        // The device's `ASRL INSTR` eom frames the port: CR LF in, LF out.
        let framing = built[1].framing.clone();
        assert_eq!(framing.name(), "pyvisa-sim");
        let mut framer = framing.build();
        let mut wire = bytes::BytesMut::from(&b"?IDN\n!CAL\r\n"[..]);
        let request = framer.decode(&mut wire).unwrap().unwrap();
        assert_eq!(&request[..], b"?IDN\n!CAL");
        let mut out = bytes::BytesMut::new();
        framer.encode(b"OK", &mut out).unwrap();
        assert_eq!(&out[..], b"OK\n");
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let dir = examples();
        let text = "file = 'pyvisa-sim.yaml'\nresource = 'ASRL9::INSTR'\n";
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir);
        let e = build(&b).unwrap_err();
        assert_eq!(e.at, Some(7..24), "{e}");
        assert!(
            e.reason.ends_with("pyvisa-sim.yaml:63:3: no resource \"ASRL9::INSTR\" (the file has: ASRL7::INSTR, ASRL1::INSTR, ASRL2::INSTR)"),
            "{e}"
        );
        let text = "file = 'nothing.yaml'\nresource = 'ASRL1::INSTR'\n";
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir);
        assert!(build(&b).unwrap_err().reason.contains("nothing.yaml"));
        let e = build(&Build::new(Table::absent())).unwrap_err();
        assert!(e.reason.contains("needs `file` and `resource`"), "{e}");
        let mut b = Build::new(Table::parse("file = 'x'\nresource = 'y'\n").unwrap());
        b.framing = crate::framing_by_name("lf");
        assert!(
            build(&b)
                .unwrap_err()
                .reason
                .contains("eom sets the framing")
        );
    }

    #[test]
    fn a_socket_resource_names_its_address() {
        let at = |resource: &str| {
            let text = format!("file = 'x.yaml'\nresource = {resource:?}\n");
            let table = Table::parse(&text).unwrap();
            let config = table.deserialize::<SimConfig>().unwrap().unwrap();
            address(&config.resource).map(|a| a.map(|a| (a, config.resource.span())))
        };
        let local = "127.0.0.1:10001".parse().unwrap();
        assert_eq!(
            at("TCPIP::localhost::10001::SOCKET"),
            Ok(Some((local, 27..60)))
        );
        assert_eq!(
            at("TCPIP0::127.0.0.1::10001::SOCKET"),
            Ok(Some((local, 27..61)))
        );
        assert_eq!(
            at("tcpip::LocalHost::7::socket").unwrap().unwrap().0,
            "127.0.0.1:7".parse().unwrap()
        );
        assert_eq!(at("ASRL1::INSTR"), Ok(None));
        // 192.0.2.0/24 is TEST-NET-1: never this host's.
        let e = at("TCPIP::192.0.2.1::10001::SOCKET").unwrap_err();
        assert!(e.reason.contains("not an address of this host"), "{e}");
        assert_eq!(e.at, Some(27..60));
        let e = at("TCPIP::localhost::0::SOCKET").unwrap_err();
        assert!(e.reason.contains("port 0"), "{e}");
    }

    #[test]
    fn what_a_socket_device_cannot_be() {
        let text = "file = 'x.yaml'\nresource = 'TCPIP::localhost::10001::SOCKET'\n";
        let mut b = Build::new(Table::parse(text).unwrap());
        b.count = 2;
        let e = build(&b).unwrap_err();
        assert!(e.reason.contains("one address: `count` is 2"), "{e}");
        assert_eq!(e.at, Some(27..60));
        for (resource, protocol) in [
            ("TCPIP::localhost::INSTR", "VXI-11 or HiSLIP"),
            ("USB0::0x1111::0x2222::0x3333::0::INSTR", "USBTMC"),
            ("GPIB0::8::INSTR", "IEEE 488"),
        ] {
            let text = format!("file = 'x.yaml'\nresource = {resource:?}\n");
            let e = build(&Build::new(Table::parse(&text).unwrap())).unwrap_err();
            assert!(
                e.reason.contains(protocol) && e.reason.contains("does not speak"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_socket_device_listens_with_its_socket_eom() {
        let dir = std::env::temp_dir().join(format!("pyvisa-sim-socket-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("sim.yaml"),
            "spec: '1.1'\ndevices:\n  d:\n    eom:\n      ASRL INSTR: {q: \"\\r\\n\", r: \"\\n\"}\n      \
             TCPIP SOCKET: {q: \"\\n\", r: \"\\r\\n\"}\n    dialogues: [{q: A, r: B}]\n\
             resources:\n  TCPIP0::localhost::10001::SOCKET: {device: d}\n",
        )
        .unwrap();
        // Written without the board, as pyvisa-sim finds it.
        let text = "file = 'sim.yaml'\nresource = 'TCPIP::localhost::10001::SOCKET'\n";
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir);
        let built = build(&b);
        std::fs::remove_dir_all(&dir).unwrap();
        let built = built.unwrap();
        assert_eq!(
            built[0].listen,
            Some(("127.0.0.1:10001".parse().unwrap(), 29..62))
        );
        let mut framer = built[0].framing.build();
        let mut wire = bytes::BytesMut::from(&b"A\r\nA\n"[..]);
        assert_eq!(&framer.decode(&mut wire).unwrap().unwrap()[..], b"A\r");
        let mut out = bytes::BytesMut::new();
        framer.encode(b"B", &mut out).unwrap();
        assert_eq!(&out[..], b"B\r\n");
    }

    #[test]
    fn a_socket_off_loopback_is_worth_a_warning() {
        let lint_of = |resource: &str| {
            let text = format!("file = 'x.yaml'\nresource = {resource:?}\n");
            let table = Table::parse(&text).unwrap();
            lint(&Lint {
                link: None,
                table: &table,
            })
        };
        assert!(lint_of("TCPIP::localhost::10001::SOCKET").is_empty());
        assert!(lint_of("ASRL1::INSTR").is_empty());
        // 0.0.0.0 (all of this host's addresses) is not loopback, and always bindable.
        let found = lint_of("TCPIP::0.0.0.0::10001::SOCKET");
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .contains("listens on 0.0.0.0:10001, not a loopback address"),
            "{found:?}"
        );
        assert_eq!(found[0].at, Some(27..58));
    }
}
