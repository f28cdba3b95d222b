//! The deployment files (issue 20): the Dockerfile, `deploy/entrypoint.sh`, `deploy/fleet.toml`,
//! `deploy/kubernetes/statefulset.yaml` and `deploy/compose.yaml`.
//!
//! No container engine runs here, so nothing is built or started in a container: the
//! entrypoint's shard derivation runs against a fake `serialtwin` that prints what it was
//! given; the example fleet goes through the real `serialtwin check`, whole and per shard; the
//! files are linted by hadolint, shellcheck, kubernetes-validate (strict) and docker-compose
//! 1.29.2 `config`, each also shown a broken copy it must refuse, so that no lint passes for
//! want of looking; and the ports, the shards and the `ConfigMap`'s copy of the fleet are
//! checked to agree across the files, so that they cannot drift apart.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{output_within, output_within_for, run_to_end, work_dir, workspace};
use serde_json::Value;

/// The shards the example files split the fleet into.
const SHARDS: u64 = 3;

/// A file of the repository, by its path from the root.
fn repo(path: &str) -> PathBuf {
    workspace().join(path)
}

/// A fake `serialtwin` in `dir` that prints each argument on a line of its own.
fn fake_serialtwin(dir: &Path) -> PathBuf {
    let fake = common::write_config(
        dir,
        "fake-serialtwin",
        "#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\n' \"$arg\"; done\n",
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    fake
}

/// Run `deploy/entrypoint.sh args` as the image does (executed, not given to a shell) with
/// `env` and nothing else of the test's environment but `PATH`, `serialtwin` being `bin`.
fn entrypoint(bin: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(repo("deploy/entrypoint.sh"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SERIALTWIN_BIN", bin)
        .envs(env.iter().copied())
        .args(args);
    output_within(&mut cmd)
}

/// The arguments the entrypoint gave `serialtwin`, one per line of the fake's output.
fn argv(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "entrypoint failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What the entrypoint printed when it refused to start; asserts that it did refuse, and that
/// `serialtwin` never ran.
fn refusal(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "the entrypoint started serialtwin: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "serialtwin ran although the entrypoint refused"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_entrypoint_takes_the_shard_from_the_pods_ordinal() {
    let dir = work_dir("entrypoint-ordinal");
    let fake = fake_serialtwin(&dir);
    let env = [("HOSTNAME", "serialtwin-2"), ("SERIALTWIN_SHARDS", "4")];
    let out = entrypoint(&fake, &env, &["/etc/serialtwin/fleet.toml", "--trace"]);
    assert_eq!(
        argv(&out),
        [
            "run",
            "--shard",
            "2/4",
            "/etc/serialtwin/fleet.toml",
            "--trace"
        ]
    );
    // Arguments pass through as they are, spaces included; a zero-padded ordinal is decimal.
    let env = [("HOSTNAME", "serialtwin-010"), ("SERIALTWIN_SHARDS", "12")];
    let out = entrypoint(&fake, &env, &["a fleet.toml"]);
    assert_eq!(argv(&out), ["run", "--shard", "10/12", "a fleet.toml"]);
}

#[test]
fn an_explicit_shard_wins_and_none_serves_everything() {
    let dir = work_dir("entrypoint-explicit");
    let fake = fake_serialtwin(&dir);
    let out = entrypoint(&fake, &[("SERIALTWIN_SHARD", "1/3")], &["fleet.toml"]);
    assert_eq!(argv(&out), ["run", "--shard", "1/3", "fleet.toml"]);
    // Over SERIALTWIN_SHARDS and the hostname too (compose sets it, the hostname is anything).
    let env = [
        ("SERIALTWIN_SHARD", "1/3"),
        ("SERIALTWIN_SHARDS", "4"),
        ("HOSTNAME", "serialtwin-2"),
    ];
    let out = entrypoint(&fake, &env, &["fleet.toml"]);
    assert_eq!(argv(&out), ["run", "--shard", "1/3", "fleet.toml"]);
    // Neither: the whole config, whatever the hostname.
    let out = entrypoint(&fake, &[("HOSTNAME", "serialtwin-2")], &["fleet.toml"]);
    assert_eq!(argv(&out), ["run", "fleet.toml"]);
}

#[test]
fn the_entrypoint_refuses_a_shard_it_cannot_tell() {
    let dir = work_dir("entrypoint-refusals");
    let fake = fake_serialtwin(&dir);
    let refused = |hostname: &str, shards: &str| {
        let env = [("HOSTNAME", hostname), ("SERIALTWIN_SHARDS", shards)];
        refusal(&entrypoint(&fake, &env, &["fleet.toml"]))
    };
    let why = refused("serialtwin", "3");
    assert!(why.contains("does not end in -<ordinal>"), "{why}");
    let why = refused("serialtwin-x", "3");
    assert!(why.contains("does not end in -<ordinal>"), "{why}");
    let why = refused("serialtwin-3", "3");
    assert!(
        why.contains("is shard 3, but SERIALTWIN_SHARDS=3 has shards 0 to 2"),
        "{why}"
    );
    let why = refused("serialtwin-12345678901", "3");
    assert!(why.contains("is shard 12345678901"), "{why}");
    let why = refused("serialtwin-0", "0");
    assert!(why.contains("at least one shard"), "{why}");
    let why = refused("serialtwin-0", "three");
    assert!(why.contains("not a number of shards"), "{why}");
}

/// A process the test started, killed when the test ends (passed or not).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_real_serialtwin_serves_the_shard_the_entrypoint_derives() {
    // The fake above proves the arguments; this, that serialtwin takes them and serves the
    // shard `check --shard` says: four tables, shard 1 of 2 from the hostname serialtwin-1.
    let dir = work_dir("entrypoint-real");
    let mut config = String::new();
    for name in ["north", "south", "east", "west"] {
        writeln!(
            config,
            "[[device]]\nname = \"{name}\"\nmodel = \"pi30\"\n\
             [device.network]\ntcp = \"127.0.0.1:0\""
        )
        .unwrap();
    }
    let config = common::write_config(&dir, "fleet.toml", &config);
    let socket = dir.join("run/control.sock");
    let child = Command::new(repo("deploy/entrypoint.sh"))
        .args([config.as_os_str(), "--json".as_ref(), "--control".as_ref()])
        .arg(&socket)
        .env("SERIALTWIN_BIN", common::bin())
        .env("HOSTNAME", "serialtwin-1")
        .env("SERIALTWIN_SHARDS", "2")
        .env_remove("SERIALTWIN_SHARD")
        .env("TMPDIR", &*dir)
        .env("XDG_RUNTIME_DIR", "")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    // Its `--json` lines up to readiness, read on a thread so that a hang meets the safety net.
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut served = BTreeSet::new();
    loop {
        let line = rx.recv_timeout(common::PATIENCE).unwrap_or_else(|e| {
            let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            panic!("no readiness ({e}):\n{stderr}")
        });
        let value: Value = serde_json::from_str(&line).unwrap();
        if value.get("ready").is_some() {
            break;
        }
        assert!(value["tcp"].is_string(), "no endpoint: {value}");
        served.insert(value["name"].as_str().unwrap().to_owned());
    }
    assert!(
        !served.is_empty(),
        "shard 1/2 of four tables serves nothing here"
    );
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(stderr.contains("serving shard 1/2"), "{stderr}");
    let out = run_to_end(&dir, &["check", config.to_str().unwrap(), "--shard", "1/2"]);
    assert!(out.status.success());
    let listed: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains(": ok"))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(served, listed);
    // What the control socket (the Kubernetes readiness probe's `ctl list`) says, too.
    let (ok, list) = common::ctl(&socket, &["list"]);
    assert!(ok, "{list}");
    let answered: BTreeSet<String> = list
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(answered, served);
    drop(child);
}

/// The ports `serialtwin check` lists for the example fleet (a shard of it, or all of it).
fn checked(shard: Option<&str>) -> BTreeSet<String> {
    let dir = work_dir("deploy-check");
    let fleet = repo("deploy/fleet.toml");
    let mut args = vec!["check", fleet.to_str().unwrap()];
    args.extend(shard.iter().flat_map(|s| ["--shard", s]));
    let out = run_to_end(&dir, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check {args:?}:\n{stdout}\n{stderr}");
    // No warnings either: the example is what a user copies.
    assert_eq!(stderr, "", "check {args:?} warns");
    stdout
        .lines()
        .filter(|l| !l.contains(": ok"))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_example_fleet_loads_and_every_shard_serves_part_of_it() {
    let all = checked(None);
    assert_eq!(
        all,
        [
            "bus",
            "charger",
            "inverter-max",
            "inverter0",
            "inverter1",
            "psu"
        ]
        .map(str::to_owned)
        .into()
    );
    let mut seen = BTreeSet::new();
    for k in 0..SHARDS {
        let part = checked(Some(&format!("{k}/{SHARDS}")));
        // An example where a replica idles would show less than it should.
        assert!(
            !part.is_empty(),
            "shard {k}/{SHARDS} of the example serves nothing"
        );
        for port in part {
            assert!(seen.insert(port.clone()), "{port} is in two shards");
        }
    }
    assert_eq!(seen, all);
}

/// The linters' venv (hadolint, shellcheck, kubernetes-validate, `PyYAML`).
fn lint_venv() -> PathBuf {
    common::python::venv_of("tests/python/requirements-deploy.txt", "pyenv-deploy")
}

/// Run a linter from `venv` on `file` with `args` before it and `after` after it, in `dir`
/// (whose `HOME` it gets: no user's config of the linter applies); its output.
fn lint(venv: &Path, dir: &Path, tool: &str, (args, after): Args<'_>, file: &Path) -> Output {
    output_within_for(
        Command::new(venv.join("bin").join(tool))
            .args(args)
            .arg(file)
            .args(after)
            .current_dir(dir)
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir)
            .stderr(Stdio::piped()),
        // Safety net only: the first run of a linter may be slow to start.
        std::time::Duration::from_mins(2),
    )
}

/// A linter's arguments before the file and after it.
type Args<'a> = (&'a [&'a str], &'a [&'a str]);

/// `tool args file` passes on the real `file`, and fails on a copy of it (in `dir`) with
/// `broken` replaced by `breaking`, naming `complaint`.
fn lints_and_refuses(
    venv: &Path,
    tool: &str,
    args: Args<'_>,
    file: &str,
    (broken, breaking): (&str, &str),
    complaint: &str,
) {
    let dir = work_dir(&format!("lint-{tool}"));
    let real = repo(file);
    let out = lint(venv, &dir, tool, args, &real);
    assert!(
        out.status.success(),
        "{tool} refuses {file}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(
        text.contains(broken),
        "{file} no longer has {broken:?} to break"
    );
    let name = real.file_name().unwrap().to_str().unwrap();
    let copy = common::write_config(&dir, name, &text.replacen(broken, breaking, 1));
    let out = lint(venv, &dir, tool, args, &copy);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{tool} passes a broken {file}:\n{said}"
    );
    assert!(
        said.contains(complaint),
        "{tool} on a broken {file}:\n{said}"
    );
}

#[test]
fn hadolint_passes_the_dockerfile() {
    lints_and_refuses(
        &lint_venv(),
        "hadolint",
        (&["--no-color"], &[]),
        "Dockerfile",
        ("FROM debian:bookworm-slim", "FROM debian"),
        "DL3006",
    );
}

#[test]
fn shellcheck_passes_the_entrypoint() {
    lints_and_refuses(
        &lint_venv(),
        "shellcheck",
        (&["--shell=sh"], &[]),
        "deploy/entrypoint.sh",
        ("--shard \"$shard\" \"$@\"", "--shard \"$shard\" $@"),
        "SC2068",
    );
}

#[test]
fn kubernetes_validate_passes_the_statefulset() {
    let version = "1.37.0";
    lints_and_refuses(
        &lint_venv(),
        "kubernetes-validate",
        (&["--strict", "--kubernetes-version", version], &[]),
        "deploy/kubernetes/statefulset.yaml",
        ("replicas: 3", "replicas: \"3\""),
        "spec.replicas",
    );
}

#[test]
fn docker_compose_passes_the_compose_file() {
    let venv = common::python::venv_built(
        "tests/python/compose-build.txt",
        "tests/python/compose.txt",
        "pyenv-compose",
    );
    lints_and_refuses(
        &venv,
        "docker-compose",
        (&["--file"], &["config", "--quiet"]),
        "deploy/compose.yaml",
        ("  shard-1:\n", "  shard-1:\n    hostnme: shard-1\n"),
        "Unsupported config option for services.shard-1: 'hostnme'",
    );
}

/// What the deployment files say, read by Python (the YAML with `PyYAML`, the fleet with
/// tomllib): the ports each asks for, and the shards.
const FACTS: &str = r#"
import json, re, sys, tomllib, yaml
root = sys.argv[1]
def read(path):
    with open(f"{root}/{path}", encoding="utf-8") as f:
        return f.read()
fleet_text = read("deploy/fleet.toml")
fleet = tomllib.loads(fleet_text)
addresses = []
for device in fleet["device"]:
    first, count = device.get("first", 0), device.get("count", 1)
    for n in range(first, first + count):
        for key in ("tcp", "rfc2217", "modbus_tcp", "rtu_tcp"):
            if key in device.get("network", {}):
                addresses.append(device["network"][key].replace("{n}", str(n)))
expose = [int(p) for line in read("Dockerfile").splitlines() if line.startswith("EXPOSE ")
          for p in line.split()[1:]]
docs = {d["kind"]: d for d in yaml.safe_load_all(read("deploy/kubernetes/statefulset.yaml"))}
sts = docs["StatefulSet"]
pod = sts["spec"]["template"]["spec"]
container = pod["containers"][0]
compose = yaml.safe_load(read("deploy/compose.yaml"))
print(json.dumps({
    "links": sum("link" in d for d in fleet["device"]),
    "addresses": addresses,
    "expose": expose,
    "configmap": docs["ConfigMap"]["data"]["fleet.toml"] == fleet_text,
    "mounted": [v["configMap"]["name"] for v in pod["volumes"]] == [docs["ConfigMap"]["metadata"]["name"]],
    "service": {"headless": docs["Service"]["spec"]["clusterIP"] == "None",
                "ports": [p["port"] for p in docs["Service"]["spec"]["ports"]],
                "name": docs["Service"]["metadata"]["name"] == sts["spec"]["serviceName"]},
    "replicas": sts["spec"]["replicas"],
    "env": {e["name"]: e["value"] for e in container["env"]},
    "non_root": pod["securityContext"]["runAsNonRoot"],
    "container_ports": [p["containerPort"] for p in container["ports"]],
    "compose": {name: {"env": s.get("environment", {}), "ports": s.get("ports", []),
                       "volumes": s.get("volumes", []), "command": s.get("command")}
                for name, s in compose["services"].items()},
}))
"#;

/// The facts [`FACTS`] reads from the files.
fn facts() -> Value {
    let venv = lint_venv();
    let out = common::python::run(
        Command::new(venv.join("bin/python"))
            .arg("-c")
            .arg(FACTS)
            .arg(workspace()),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `value` as a list of numbers.
fn numbers(value: &Value) -> BTreeSet<u64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn the_files_agree_on_ports_shards_and_config() {
    let facts = facts();
    // The fleet: no links (clients come over the network), every endpoint on all addresses
    // and a fixed port, none twice.
    assert_eq!(facts["links"], 0);
    let mut ports = BTreeSet::new();
    for address in facts["addresses"].as_array().unwrap() {
        let address = address.as_str().unwrap();
        let (host, port) = address.rsplit_once(':').unwrap();
        assert!(
            host == "0.0.0.0" || host == "[::]",
            "{address}: loopback or one address is unreachable from outside a container"
        );
        let port: u64 = port.parse().unwrap();
        assert!(port > 1023, "{address}: the image's user cannot bind it");
        assert!(ports.insert(port), "port {port} twice in deploy/fleet.toml");
    }
    assert!(!ports.is_empty());
    // The image exposes them, the Kubernetes pod and its Service carry them.
    assert_eq!(numbers(&facts["expose"]), ports, "Dockerfile EXPOSE");
    assert_eq!(
        numbers(&facts["container_ports"]),
        ports,
        "StatefulSet container ports"
    );
    assert_eq!(numbers(&facts["service"]["ports"]), ports, "Service ports");
    assert_eq!(facts["service"]["headless"], true);
    assert_eq!(facts["service"]["name"], true, "serviceName is the Service");
    // Kubernetes: N replicas told N, the fleet from a ConfigMap that is deploy/fleet.toml.
    assert_eq!(facts["replicas"], SHARDS);
    assert_eq!(facts["env"]["SERIALTWIN_SHARDS"], SHARDS.to_string());
    assert_eq!(facts["non_root"], true);
    assert_eq!(
        facts["configmap"], true,
        "the ConfigMap's fleet.toml is not deploy/fleet.toml"
    );
    assert_eq!(facts["mounted"], true, "the pod mounts the ConfigMap");
    // Compose: one service per shard, K/N each, every port published at P + 10000 (K + 1).
    let services = facts["compose"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    let wanted: BTreeSet<String> = (0..SHARDS).map(|k| format!("shard-{k}")).collect();
    assert_eq!(names, wanted.iter().map(String::as_str).collect());
    for k in 0..SHARDS {
        let service = &services[&format!("shard-{k}")];
        assert_eq!(service["env"]["SERIALTWIN_SHARD"], format!("{k}/{SHARDS}"));
        assert_eq!(service["command"][0], "/etc/serialtwin/fleet.toml");
        assert_eq!(
            service["volumes"][0],
            "./fleet.toml:/etc/serialtwin/fleet.toml:ro"
        );
        let published: BTreeSet<String> = service["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        let wanted: BTreeSet<String> = ports
            .iter()
            .map(|p| format!("{}:{p}", p + 10_000 * (k + 1)))
            .collect();
        assert_eq!(published, wanted, "shard-{k}'s published ports");
    }
}
