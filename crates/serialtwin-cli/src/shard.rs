//! `--shard K/N`: one of N processes' part of a fleet, so that an orchestrator (a Kubernetes
//! `StatefulSet`, N compose services) runs replicas of one config with no coordination.
//!
//! Whole `[[device]]` tables are assigned, never single ports: a table's copies, a parallel
//! group sharing state and a bus of units on one line all stay together. A table goes to the
//! shard with the highest score for its key ([`Plan::tables`]): rendezvous (highest random
//! weight) hashing. Each table's owner depends only on its own key and N, so adding or
//! removing a table moves no other, and going from N to N + 1 shards moves only the tables
//! the new shard now wins, about 1/(N + 1) of them.
//!
//! Everything else comes from the whole config: the endpoints each port asks for (a config
//! whose addresses are unique serves on the same addresses however it is split), and the
//! validation (every shard refuses a config any shard would). A timeline step for one port
//! runs only in the shard that owns the port; a step for every port (`*`) runs in each.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crc::{CRC_64_XZ, Crc};
use serialtwin_core::control::Target;

use crate::config::{Plan, step_target};

/// The most shards a fleet is split into: far more than a fleet has tables to spread.
pub const MAX_SHARDS: u32 = 4096;

/// One shard of N: `K/N`, K counted from 0 (a `StatefulSet`'s pod ordinal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0 to `count - 1`.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

/// Why `K/N` is not a shard.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--shard {given:?}: {why}")]
pub struct ShardError {
    given: String,
    why: &'static str,
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |why| ShardError {
            given: s.to_owned(),
            why,
        };
        let (index, count) = s
            .split_once('/')
            .ok_or_else(|| error("write it K/N: shard K (from 0) of N"))?;
        let number = |text: &str| {
            text.trim()
                .parse::<u32>()
                .map_err(|_| error("K and N are whole numbers: K/N, e.g. 0/3"))
        };
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 || count > MAX_SHARDS {
            return Err(error("N is 1 to 4096"));
        }
        if index >= count {
            return Err(error("K counts from 0, so it is below N (0/3, 1/3, 2/3)"));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Which of `count` shards owns the table named `key`.
#[must_use]
pub fn owner(key: &str, count: u32) -> u32 {
    let key = CRC64.checksum(key.as_bytes());
    (0..count)
        .max_by_key(|&shard| (score(key, shard), std::cmp::Reverse(shard)))
        .unwrap_or(0)
}

/// A table's key hashed once, as bytes are: a fixed, documented function, so every build
/// and every replica agrees (std's hasher promises neither).
static CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_XZ);

/// The weight of shard `shard` for a key hashed to `key`: the two mixed by `MurmurHash3`'s
/// 64-bit finaliser, a bijection whose every output bit depends on every input bit, so the
/// scores of one key across shards behave as independent draws (a CRC alone is linear, and
/// its scores would be correlated).
fn score(key: u64, shard: u32) -> u64 {
    mix(key ^ mix(u64::from(shard).wrapping_add(0x9E37_79B9_7F4A_7C15)))
}

/// `MurmurHash3`'s `fmix64`.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The part of `plan` that `shard` serves: the ports of the tables it owns, the timeline
/// steps for them (and for every port), and the warnings about them (and about the whole).
#[must_use]
pub fn select(mut plan: Plan, shard: Shard) -> Plan {
    let owned: Vec<bool> = plan
        .tables
        .iter()
        .map(|key| owner(key, shard.count) == shard.index)
        .collect();
    plan.ports.retain(|port| owned[port.table]);
    let mine = |w: &crate::config::Warning| w.table.is_none_or(|t| owned[t]);
    plan.warnings.retain(mine);
    plan.busy.retain(mine);
    let names: HashSet<&str> = plan.ports.iter().map(|p| p.name.as_str()).collect();
    let timeline = std::mem::take(&mut plan.timeline);
    plan.timeline = timeline
        .into_iter()
        .filter(|step| match step_target(&step.command) {
            Target::All => true,
            Target::Port(port) => names.contains(port.as_str()),
        })
        .collect();
    plan
}

/// How many tables of `plan` `shard` owns.
#[must_use]
pub fn tables_owned(plan: &Plan, shard: Shard) -> usize {
    plan.tables
        .iter()
        .filter(|key| owner(key, shard.count) == shard.index)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_written_k_of_n_from_0() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("0/1".parse(), Ok(Shard { index: 0, count: 1 }));
        for bad in ["4/4", "1/0", "3", "-1/2", "a/b", "1/4097", ""] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.to_string().starts_with("--shard"), "{err}");
        }
    }

    #[test]
    fn every_table_has_one_owner_and_growing_moves_about_one_in_n_plus_1_to_the_new_shard() {
        let keys: Vec<String> = (0..2000).map(|i| format!("inverter-{i}")).collect();
        for count in 1..=6_u32 {
            let before: Vec<u32> = keys.iter().map(|k| owner(k, count)).collect();
            let after: Vec<u32> = keys.iter().map(|k| owner(k, count + 1)).collect();
            // Spread: each shard gets its share, within a third of it.
            for shard in 0..count {
                let share = before.iter().filter(|&&o| o == shard).count();
                let fair = keys.len() / count as usize;
                assert!(
                    share.abs_diff(fair) < fair / 3 + 1,
                    "{count}: {share} of {fair}"
                );
            }
            // Only moves to the new shard.
            let moved: Vec<usize> = (0..keys.len()).filter(|&i| before[i] != after[i]).collect();
            assert!(moved.iter().all(|&i| after[i] == count), "{count}");
            let expected = keys.len() / (count as usize + 1);
            assert!(
                moved.len().abs_diff(expected) < expected / 4,
                "{count} -> {}: {} moved, about {expected} expected",
                count + 1,
                moved.len()
            );
        }
    }

    #[test]
    fn the_assignment_is_fixed_across_builds() {
        // Replicas built apart must agree: these are what this function gave when written.
        let owners: Vec<u32> = ["inv", "bus", "meter", "pi30#0", "/dev/x{n}", "a", "b", "c"]
            .iter()
            .map(|k| owner(k, 4))
            .collect();
        assert_eq!(owners, FIXED);
    }

    /// `owner` of the keys above among 4 shards, as first computed.
    const FIXED: [u32; 8] = [2, 2, 2, 0, 2, 0, 1, 1];
}
