//! Two hosts made with network namespaces: the fleet (`serialtwin run`) in one, pyserial in the
//! other, joined by a veth pair on a private /30. The endpoints bound to the fleet host's
//! address answer from the other host (a PI30 QPIGS through `socket://` and `rfc2217://`),
//! while one bound to the fleet host's loopback is not reachable from there, though it is from
//! the fleet host itself.
//!
//! Making namespaces needs `CAP_SYS_ADMIN` (root): without it the test says why and passes,
//! unless `SERIALTWIN_REQUIRE_NETNS=1` (as `.ci/run` sets), when it fails instead.
#![allow(missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{PATIENCE, work_dir, write_config};
use serde_json::Value;

const SCRIPT: &str = include_str!("network/netns_clients.py");

/// Safety net for the Python process, never a timing assertion.
const PYTHON_PATIENCE: Duration = Duration::from_mins(2);

/// Two namespaces and the veth pair between them, all removed on drop.
struct TwoHosts {
    ip: PathBuf,
    /// The fleet's host, and its end of the pair and address.
    fleet: Host,
    /// The clients' host.
    clients: Host,
}

struct Host {
    netns: String,
    veth: String,
    addr: Ipv4Addr,
}

impl TwoHosts {
    /// Namespaces `stf<pid>` and `stc<pid>`, veth `stvf<pid>`/`stvc<pid>` (at most 11 of the 15
    /// characters an interface name may have), addresses `.1` and `.2` of the /30 that the
    /// process id picks in 10.0.0.0/8, so that parallel runs never share a name or a network.
    /// `Err` with the command's complaint if the namespaces cannot be made.
    fn create(ip: PathBuf) -> Result<Self, String> {
        let pid = std::process::id();
        // 2^22 /30 networks in 10.0.0.0/8, and Linux process ids stay below 2^22.
        let base = u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (pid % (1 << 22)) * 4;
        let hosts = Self {
            ip,
            fleet: Host {
                netns: format!("stf{pid}"),
                veth: format!("stvf{pid}"),
                addr: Ipv4Addr::from(base + 1),
            },
            clients: Host {
                netns: format!("stc{pid}"),
                veth: format!("stvc{pid}"),
                addr: Ipv4Addr::from(base + 2),
            },
        };
        // From here on, drop removes whatever was made.
        hosts.ip(&["netns", "add", &hosts.fleet.netns])?;
        hosts.ip(&["netns", "add", &hosts.clients.netns])?;
        hosts.ip(&[
            "link",
            "add",
            &hosts.fleet.veth,
            "type",
            "veth",
            "peer",
            "name",
            &hosts.clients.veth,
        ])?;
        for host in [&hosts.fleet, &hosts.clients] {
            hosts.ip(&["link", "set", &host.veth, "netns", &host.netns])?;
            let cidr = format!("{}/30", host.addr);
            hosts.ip(&["-n", &host.netns, "addr", "add", &cidr, "dev", &host.veth])?;
            hosts.ip(&["-n", &host.netns, "link", "set", &host.veth, "up"])?;
            hosts.ip(&["-n", &host.netns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = common::output_within(Command::new(&self.ip).args(args));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`ip {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `program args` inside `host`'s namespace.
    fn exec(&self, host: &Host, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &host.netns])
            .arg(program.as_ref());
        cmd
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair; a pair that
        // never left this namespace is deleted by name. Errors are for what was never made.
        let _ = self.ip(&["link", "del", &self.fleet.veth]);
        let _ = self.ip(&["netns", "del", &self.fleet.netns]);
        let _ = self.ip(&["netns", "del", &self.clients.netns]);
    }
}

/// `serialtwin run --json` inside a namespace (`ip netns exec` execs it, so the child is
/// serialtwin itself), killed on drop.
struct Fleet {
    child: Child,
    ports: Vec<Value>,
    stderr_path: PathBuf,
}

impl Fleet {
    fn start(hosts: &TwoHosts, dir: &Path, args: &[&str]) -> Self {
        let stderr_path = dir.join("stderr-fleet.log");
        let mut child = hosts
            .exec(&hosts.fleet, common::bin())
            .arg("run")
            .arg("--json")
            .args(args)
            // Defaults (control socket, link) in the test's own directory, never a user's.
            .env("TMPDIR", dir)
            .env("XDG_RUNTIME_DIR", "")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        let mut fleet = Self {
            child,
            ports: Vec::new(),
            stderr_path,
        };
        loop {
            let line = match rx.recv_timeout(PATIENCE) {
                Ok(line) => line,
                Err(e) => panic!("no readiness ({e}); stderr:\n{}", fleet.stderr()),
            };
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
            if value.get("ready").is_some() {
                break;
            }
            fleet.ports.push(value);
        }
        fleet
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn endpoint(&self, port: usize, kind: &str) -> String {
        self.ports[port][kind]
            .as_str()
            .unwrap_or_else(|| panic!("port {port} has no {kind} endpoint: {:?}", self.ports[port]))
            .to_owned()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The checks' results from the script's last line, every failure listed.
fn results(out: &Output, what: &str, fleet: &Fleet, checks: usize) {
    common::python_checks(out, what, checks, &fleet.stderr());
}

#[test]
fn clients_on_another_host_reach_the_bound_address_and_not_loopback() {
    let required = std::env::var("SERIALTWIN_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    let ip = common::debian::ensure("iproute2", "ip");
    let hosts = match TwoHosts::create(ip) {
        Ok(hosts) => hosts,
        Err(why) if !required => {
            println!(
                "skipped: cannot make network namespaces ({why}); needs CAP_SYS_ADMIN (root). \
                 SERIALTWIN_REQUIRE_NETNS=1 makes this a failure."
            );
            return;
        }
        Err(why) => panic!("SERIALTWIN_REQUIRE_NETNS=1 and no network namespaces: {why}"),
    };
    let dir = work_dir("netns");
    let socket = dir.join("run/control.sock");
    let addr = hosts.fleet.addr;
    let config = write_config(
        &dir,
        "netns.toml",
        &format!(
            r#"
[[device]]
name = "inv"
model = "pi30"
link = "{dir}/ttyUSB-inv"

[device.network]
tcp = "{addr}:0"
rfc2217 = "{addr}:0"

[[device]]
name = "local"
model = "pi30"
link = "{dir}/ttyUSB-local"

[device.network]
tcp = "127.0.0.1:0"
"#,
            dir = dir.display()
        ),
    );
    // Declared after the hosts: dropped (killed) before they are removed.
    let fleet = Fleet::start(
        &hosts,
        &dir,
        &[
            config.to_str().unwrap(),
            "--trace",
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    let tcp = fleet.endpoint(0, "tcp");
    let rfc2217 = fleet.endpoint(0, "rfc2217");
    let local = fleet.endpoint(1, "tcp");
    assert!(tcp.starts_with(&format!("{addr}:")), "{tcp}");
    assert!(rfc2217.starts_with(&format!("{addr}:")), "{rfc2217}");
    assert!(local.starts_with("127.0.0.1:"), "{local}");
    let local_port = local.rsplit_once(':').unwrap().1;

    let python = common::venv().join("bin/python");
    // From the clients' host: both endpoints on the fleet host's address answer; its loopback
    // endpoint cannot be reached, neither at the fleet host's address nor at loopback.
    let from_clients = common::output_within_for(
        hosts
            .exec(&hosts.clients, &python)
            .arg("-c")
            .arg(SCRIPT)
            .args([
                "clients",
                &tcp,
                &rfc2217,
                &format!("{addr}:{local_port}"),
                &local,
            ])
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    results(&from_clients, "the clients' host", &fleet, 4);
    // From the fleet host itself the loopback endpoint answers: what the clients' host could
    // not reach is there.
    let from_fleet = common::output_within_for(
        hosts
            .exec(&hosts.fleet, &python)
            .arg("-c")
            .arg(SCRIPT)
            .args(["fleet", &local])
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    results(&from_fleet, "the fleet's host", &fleet, 1);

    // The device heard the clients' QPIGS: two through `inv`, one through `local`.
    let trace = fleet.stderr();
    let qpigs = |port: &str| {
        trace
            .lines()
            .filter(|l| l.contains(&format!(" {port} ")) && l.contains("\"QPIGS"))
            .count()
    };
    assert!(
        qpigs("inv") >= 2 && qpigs("local") >= 1,
        "QPIGS in the trace: inv {}, local {}\n{trace}",
        qpigs("inv"),
        qpigs("local")
    );
    drop(fleet);
    drop(hosts);
}
