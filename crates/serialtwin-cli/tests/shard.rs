//! `--shard K/N` as replicas use it: `serialtwin check --shard` lists what each shard would
//! serve, and `serialtwin run --shard` serves exactly that. For N = 1 to 4 the shards
//! together serve the whole fleet, each port once, every table (copies, a parallel group, a
//! bus) whole; adding a table anywhere moves no other; a timeline step runs in the shard
//! that owns its port.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{run_to_end, start, work_dir, write_config};

/// Fourteen `[[device]]` tables: copies, a parallel group, a Modbus bus, named and unnamed.
fn tables(dir: &Path) -> Vec<String> {
    let d = dir.display();
    let mut tables = vec![
        format!(
            "[[device]]\nname = \"par{{n}}\"\nmodel = \"pi30\"\ncount = 3\nparallel = true\nlink = \"{d}/ttyUSB-par{{n}}\"\n"
        ),
        format!(
            "[[device]]\nname = \"bus\"\nmodel = \"modbus\"\nlink = \"{d}/ttyUSB-bus\"\n\
             [[device.modbus.unit]]\nid = 1\n[[device.modbus.unit]]\nid = 2\n"
        ),
        format!("[[device]]\nmodel = \"pi30\"\nlink = \"{d}/ttyUSB-unnamed\"\n"),
    ];
    for i in 0..11 {
        tables.push(format!(
            "[[device]]\nname = \"inv{i}-{{n}}\"\nmodel = \"pi30\"\ncount = 2\nlink = \"{d}/ttyUSB-inv{i}-{{n}}\"\n"
        ));
    }
    tables
}

/// The ports `check` lists (for a shard, or all), by name, with their links.
fn listed(dir: &Path, config: &Path, shard: Option<&str>) -> BTreeMap<String, String> {
    let mut args = vec!["check", config.to_str().unwrap()];
    if let Some(shard) = shard {
        args.extend(["--shard", shard]);
    }
    let out = run_to_end(dir, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check {args:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.contains(": ok"))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[0].to_owned(), words[2].to_owned())
        })
        .collect()
}

/// Which shard of `n` lists each port.
fn assignment(dir: &Path, config: &Path, n: u32) -> BTreeMap<String, u32> {
    let mut owner = BTreeMap::new();
    for k in 0..n {
        for name in listed(dir, config, Some(&format!("{k}/{n}"))).into_keys() {
            if let Some(other) = owner.insert(name.clone(), k) {
                panic!("{name} is in shard {other}/{n} and in {k}/{n}");
            }
        }
    }
    owner
}

/// A port's table, from its name: `par0` → `par`, `inv3-1` → `inv3`.
fn table_of(name: &str) -> &str {
    name.strip_prefix("par")
        .map_or_else(|| name.split('-').next().unwrap(), |_| "par")
}

#[test]
fn shards_split_the_fleet_by_whole_tables_and_stably() {
    let dir = work_dir("shard");
    let all = tables(&dir);
    let config = write_config(&dir, "fleet.toml", &all.concat());
    let whole: BTreeSet<String> = listed(&dir, &config, None).into_keys().collect();
    assert_eq!(whole.len(), 3 + 1 + 1 + 22);

    let mut spread = BTreeMap::new();
    for n in 1..=4 {
        let owner = assignment(&dir, &config, n);
        // The union is the whole fleet, each port once (assignment panics on a second).
        assert_eq!(
            owner.keys().cloned().collect::<BTreeSet<_>>(),
            whole,
            "N = {n}"
        );
        // Every table whole: a parallel group, a bus, copies.
        let mut table_shard: BTreeMap<&str, u32> = BTreeMap::new();
        for (name, &k) in &owner {
            let previous = *table_shard.entry(table_of(name)).or_insert(k);
            assert_eq!(previous, k, "N = {n}: table {} is split", table_of(name));
        }
        // With 14 tables, more than one shard serves something once N > 1.
        let used: BTreeSet<u32> = owner.values().copied().collect();
        assert!(n == 1 || used.len() > 1, "N = {n}: all in {used:?}");
        spread.insert(n, owner);
    }

    // A table added at the start, and one at the end, move no other port.
    let d = dir.display();
    let grown = [
        vec![format!(
            "[[device]]\nname = \"newcomer\"\nmodel = \"pi30\"\nlink = \"{d}/ttyUSB-new\"\n"
        )],
        all.clone(),
        vec![format!(
            "[[device]]\nname = \"late{{n}}\"\nmodel = \"pi30\"\ncount = 2\nlink = \"{d}/ttyUSB-late{{n}}\"\n"
        )],
    ]
    .concat();
    let grown = write_config(&dir, "grown.toml", &grown.concat());
    for n in 1..=4 {
        let after = assignment(&dir, &grown, n);
        for (name, k) in &spread[&n] {
            assert_eq!(after.get(name), Some(k), "N = {n}: {name} moved");
        }
    }
}

#[test]
fn a_shard_serves_its_tables_and_runs_only_their_timeline_steps() {
    let dir = work_dir("shardrun");
    let mut text = tables(&dir).concat();
    // One step per table's first port: each must run in the one shard serving that port.
    let whole = listed(&dir, &write_config(&dir, "probe.toml", &text), None);
    for name in whole.keys() {
        let _ = writeln!(
            text,
            "[[timeline]]\nat = \"0s\"\nrun = \"unplug {name} 1ms\""
        );
    }
    let config = write_config(&dir, "fleet.toml", &text);
    let mut served = BTreeSet::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let expected = listed(&dir, &config, Some(&shard));
        let socket = dir.join(format!("run/control-{k}.sock"));
        let run = start(
            &dir,
            &[
                config.to_str().unwrap(),
                "--shard",
                &shard,
                "--control",
                socket.to_str().unwrap(),
            ],
        );
        let names: BTreeMap<String, String> = run
            .ports
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["link"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(names, expected, "shard {shard} serves what check lists");
        // Its timeline steps: one per port it serves (waited for: they run once it is
        // ready), none for another shard's.
        let steps_done = || -> BTreeSet<String> {
            run.stderr()
                .lines()
                .filter(|l| l.contains("timeline step done"))
                .filter_map(|l| {
                    Some(
                        l.split("Unplug(Port(\"")
                            .nth(1)?
                            .split('"')
                            .next()?
                            .to_owned(),
                    )
                })
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while steps_done().len() < names.len() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            steps_done(),
            names.keys().cloned().collect(),
            "shard {shard}: steps run\n{}",
            run.stderr()
        );
        let (status, _) = run.stop_with(nix::sys::signal::Signal::SIGINT);
        assert!(status.success(), "shard {shard} stopped with {status}");
        served.extend(names.into_keys());
    }
    assert_eq!(served, whole.into_keys().collect());
}
