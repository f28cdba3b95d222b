//! The `serialtwin` command's library part: the fleet config file (`config`), read the same
//! way by the command and by anything else that must understand one — the fuzzer first — and
//! its split into shards (`shard`).
//!
//! The command itself is the `serialtwin` binary; the facade crate `serialtwin` is the library
//! to build on.

pub mod config;
pub mod shard;
