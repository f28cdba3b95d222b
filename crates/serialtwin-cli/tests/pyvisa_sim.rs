//! The `pyvisa-sim` model through the real `serialtwin`, compared with pyvisa-sim 0.7.1
//! itself: for each ASRL device of a pyvisa-sim file, a script generated from the device's
//! own dialogues (and what it does not know) gets byte-identical replies through
//! `FILE@sim` and through the served port as `ASRL<link>::INSTR` (pyvisa 1.16, pyvisa-py 0.8,
//! pinned in a venv of their own). Also: `check` points into the YAML file.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{leftovers, run_to_end, start, start_config, work_dir, write_config};
use nix::sys::signal::Signal;

/// The whole pyvisa script's safety net (it takes seconds; the venv is made before).
const PYTHON_PATIENCE: Duration = Duration::from_mins(3);

/// A config serving `resources` of `file` (in `dir`), one port each: a link for an ASRL
/// resource, none for a SOCKET one (served at its own address).
fn config(dir: &Path, file: &str, resources: &[&str]) -> PathBuf {
    let mut text = String::new();
    for (i, resource) in resources.iter().enumerate() {
        write!(
            text,
            "[[device]]\nname = \"d{i}\"\nmodel = \"pyvisa-sim\"\n"
        )
        .unwrap();
        if !resource.ends_with("::SOCKET") {
            writeln!(text, "link = \"{}/ttyUSB-d{i}\"", dir.display()).unwrap();
        }
        write!(
            text,
            "\n[device.pyvisa-sim]\nfile = {file:?}\nresource = {resource:?}\n\n"
        )
        .unwrap();
    }
    write_config(dir, "sim.toml", &text)
}

/// One comparison of pyvisa-sim with what serialtwin serves: `resources` of `file` (in
/// `dir`), each named to pyvisa-sim as `sim_names` says (the same, but for a SOCKET served on
/// another port), compared by `compare.py` against `sim` (`FILE@sim`, or `@sim`) reading the
/// definitions in `definitions`.
struct Comparison<'a> {
    dir: &'a Path,
    file: &'a str,
    resources: &'a [&'a str],
    sim_names: &'a [&'a str],
    sim: String,
    definitions: &'a Path,
    what: &'a str,
    checks: usize,
}

impl Comparison<'_> {
    /// Serve, compare, and assert: `checks` checks passed, the run stopped cleanly, and only
    /// `keep` is left in the directory. An ASRL port is opened by its link, a SOCKET by its
    /// own name.
    fn run(&self, python: &Path, keep: &[&Path]) {
        let config = config(self.dir, self.file, self.resources);
        let socket = self.dir.join("run/control.sock");
        let run = start(
            self.dir,
            &[
                config.to_str().unwrap(),
                "--control",
                socket.to_str().unwrap(),
            ],
        );
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg(include_str!("pyvisa_sim/compare.py"))
            .arg(&self.sim)
            .arg(self.definitions);
        for ((resource, sim_name), port) in
            self.resources.iter().zip(self.sim_names).zip(&run.ports)
        {
            match port["link"].as_str() {
                Some(link) => cmd.arg(format!("{sim_name}=ASRL{link}::INSTR")),
                None => cmd.arg(format!("{sim_name}={resource}")),
            };
        }
        let out = common::output_within_for(cmd.stderr(Stdio::piped()), PYTHON_PATIENCE);
        let stderr = run.stderr();
        let (status, extra) = run.stop_with(Signal::SIGTERM);
        common::python_checks(&out, self.what, self.checks, &stderr);
        assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
        let left: Vec<PathBuf> = leftovers(self.dir)
            .into_iter()
            .filter(|p| !keep.contains(&p.as_path()))
            .collect();
        assert_eq!(left, Vec::<PathBuf>::new());
    }
}

#[test]
fn pyvisa_sim_and_the_port_answer_the_same_bytes() {
    let python = common::python::venv_of("tests/python/pyvisa-sim.txt", "pyenv-pyvisa-sim")
        .join("bin/python");
    let dir = work_dir("pyvisa-sim");
    let yaml = dir.join("devices.yaml");
    std::fs::copy(common::workspace().join("examples/pyvisa-sim.yaml"), &yaml).unwrap();
    // A fourth resource whose device is in another file, beside this one.
    let main = dir.join("main.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap().replace(
        "resources:\n",
        "resources:\n  ASRL9::INSTR: {device: lsg, filename: devices.yaml}\n",
    );
    // This file's own `lsg` answers otherwise: ASRL9 must be served from the other file.
    assert!(text.contains("LSG Serial #1234"));
    std::fs::write(&main, text.replace("LSG Serial #1234", "LSG Serial #MAIN")).unwrap();
    let resources = [
        "ASRL7::INSTR",
        "ASRL1::INSTR",
        "ASRL2::INSTR",
        "ASRL9::INSTR",
    ];
    // Per device of the example: the sentinel, its dialogues and their lower-cased forms, 4
    // unknown forms, a delimited pair, its getters, each setter's cases with the getter after
    // each, 4 requests per register or queue.
    Comparison {
        dir: &dir,
        file: "main.yaml",
        resources: &resources,
        sim_names: &resources,
        sim: format!("{}@sim", main.display()),
        definitions: &main,
        what: "pyvisa-sim against the port",
        checks: EXAMPLE_CHECKS,
    }
    .run(&python, &[&yaml, &main]);
}

/// pyvisa-sim's own bundled file, as installed in the venv `python` belongs to.
fn bundled_default_file(python: &Path) -> PathBuf {
    let out = common::output_within_for(
        Command::new(python).args([
            "-c",
            "import os, pyvisa_sim; print(os.path.join(os.path.dirname(pyvisa_sim.__file__), 'default.yaml'))",
        ]),
        PYTHON_PATIENCE,
    );
    assert!(out.status.success(), "{out:?}");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The bundled file's SOCKET resource: port 10001, served by the test on a port free now.
const SOCKET: &str = "TCPIP::localhost::10001::SOCKET";

#[test]
fn the_bundled_default_files_asrl_and_socket_devices_answer_as_pyvisa_sim_does() {
    let python = common::python::venv_of("tests/python/pyvisa-sim.txt", "pyenv-pyvisa-sim")
        .join("bin/python");
    let dir = work_dir("pyvisa-sim-default");
    let bundled = std::fs::read_to_string(bundled_default_file(&python)).unwrap();
    assert!(bundled.contains(SOCKET), "the bundled file has {SOCKET}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let served_socket = SOCKET.replace("10001", &port.to_string());
    let yaml = dir.join("default.yaml");
    std::fs::write(&yaml, bundled.replace(SOCKET, &served_socket)).unwrap();
    // Every ASRL resource of the bundled file (devices 1 to 5), and its SOCKET resource
    // (device 1 again, under its `TCPIP SOCKET` eom).
    let resources = [
        "ASRL1::INSTR",
        "ASRL2::INSTR",
        "ASRL3::INSTR",
        "ASRL4::INSTR",
        "ASRL5::INSTR",
        served_socket.as_str(),
    ];
    let mut sim_names = resources;
    sim_names[5] = SOCKET;
    let definitions = dir.join("bundled.yaml");
    std::fs::write(&definitions, &bundled).unwrap();
    // `@sim` alone: pyvisa-sim reads its bundled file, the one the port serves a copy of.
    Comparison {
        dir: &dir,
        file: "default.yaml",
        resources: &resources,
        sim_names: &sim_names,
        sim: "@sim".into(),
        definitions: &definitions,
        what: "pyvisa-sim's bundled file against the ports and the endpoint",
        checks: BUNDLED_CHECKS,
    }
    .run(&python, &[&yaml, &definitions]);
}

#[test]
fn pyvisa_sims_own_channel_devices_answer_as_it_does() {
    let python = common::python::venv_of("tests/python/pyvisa-sim.txt", "pyenv-pyvisa-sim")
        .join("bin/python");
    let dir = work_dir("pyvisa-sim-channels");
    // pyvisa-sim's own test file for channels: a group selected by a device property, and
    // one whose requests name the channel.
    let fixture = bundled_default_file(&python)
        .with_file_name("testsuite")
        .join("fixtures/channels.yaml");
    let yaml = dir.join("channels.yaml");
    std::fs::copy(&fixture, &yaml).unwrap();
    let resources = ["ASRL1::INSTR", "ASRL2::INSTR"];
    Comparison {
        dir: &dir,
        file: "channels.yaml",
        resources: &resources,
        sim_names: &resources,
        sim: format!("{}@sim", yaml.display()),
        definitions: &yaml,
        what: "pyvisa-sim's channels against the port",
        checks: CHANNEL_CHECKS,
    }
    .run(&python, &[&yaml]);
}

/// The checks the channel file's script makes (see compare.py).
const CHANNEL_CHECKS: usize = 229;

/// The checks the bundled file's script makes (see compare.py): a change in how scripts are
/// generated shows here.
const BUNDLED_CHECKS: usize = 381;

/// The checks the example file's script makes (see compare.py).
const EXAMPLE_CHECKS: usize = 159;

#[test]
fn check_points_into_the_yaml_file() {
    let dir = work_dir("pyvisa-sim-check");
    let yaml = dir.join("bad.yaml");
    std::fs::write(
        &yaml,
        "spec: '1.1'\ndevices:\n  d:\n    properties:\n      v: {default: '7', specs: {type: float, max: 6}}\nresources:\n  ASRL1::INSTR: {device: d}\n",
    )
    .unwrap();
    let config = config(&dir, "bad.yaml", &["ASRL1::INSTR"]);
    let out = run_to_end(&dir, &["check", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!(
        "{}:5:20: property \"v\": its default: ValueError: 7.0 is more than the maximum 6.0",
        yaml.display()
    );
    assert!(stderr.contains(&want), "want {want:?}: {stderr}");
    let left: Vec<PathBuf> = leftovers(&dir).into_iter().filter(|p| *p != yaml).collect();
    assert_eq!(left, Vec::<PathBuf>::new());
}

/// The line of `text` that starts with `prefix`, without it.
fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"))
}

#[test]
fn the_shipped_example_answers_the_readme_command() {
    let python = common::python::venv_of("tests/python/pyvisa-sim.txt", "pyenv-pyvisa-sim")
        .join("bin/python");
    let dir = work_dir("pyvisa-sim-example");
    let root = common::workspace();
    let example = std::fs::read_to_string(root.join("examples/pyvisa-sim.toml")).unwrap();
    let command = line_after(&example, "#   python3 -c '")
        .strip_suffix('\'')
        .unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(command),
        "README gives the example's command"
    );
    let yaml = dir.join("pyvisa-sim.yaml");
    std::fs::copy(root.join("examples/pyvisa-sim.yaml"), &yaml).unwrap();
    let text = example.replace("/tmp/serialtwin/", &format!("{}/", dir.display()));
    let config = write_config(&dir, "pyvisa-sim.toml", &text);
    let (run, _) = start_config(&dir, &config);
    let script = command.replace("/tmp/serialtwin/", &format!("{}/", dir.display()));
    let port = common::output_within_for(
        Command::new(&python)
            .arg("-c")
            .arg(&script)
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    // The same command on pyvisa-sim itself, the resource the port serves.
    let sim_script = script
        .replace(
            "ResourceManager(\"@py\")",
            &format!("ResourceManager({:?})", format!("{}@sim", yaml.display())),
        )
        .replace(
            &format!("ASRL{}/ttyUSB-psu::INSTR", dir.display()),
            "ASRL7::INSTR",
        );
    assert_ne!(sim_script, script);
    let sim = common::output_within_for(
        Command::new(&python)
            .arg("-c")
            .arg(&sim_script)
            .stderr(Stdio::piped()),
        PYTHON_PATIENCE,
    );
    let stderr = run.stderr();
    let (status, extra) = run.stop_with(Signal::SIGTERM);
    let printed = String::from_utf8_lossy(&port.stdout);
    assert_eq!(
        printed,
        "ACME,PSU-1,SN001,1.0\nERR\n-113,\"Undefined header\"\n12.500\n-222,\"Data out of range\"\n",
        "{}\n{stderr}",
        String::from_utf8_lossy(&port.stderr)
    );
    assert_eq!(
        printed,
        String::from_utf8_lossy(&sim.stdout),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    assert!(status.success() && extra.is_empty(), "{status:?} {extra:?}");
    let left: Vec<PathBuf> = leftovers(&dir).into_iter().filter(|p| *p != yaml).collect();
    assert_eq!(left, Vec::<PathBuf>::new());
}
