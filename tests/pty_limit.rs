//! Past `kernel.pty.max`: the error names the limit and says how to raise it, and nothing made
//! is left behind. Its own test binary, so that no other test needs a pty while it runs out.

mod common;

use common::{Counter, open_fds, test_dir};
use serialtwin::{Fleet, FleetError, PortSpec, limits};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_ptys_names_kernel_pty_max_and_cleans_up() {
    let usage = limits::pty_usage().expect("/proc/sys/kernel/pty readable");
    let too_many = usize::try_from(usage.max).unwrap() + 16;
    let raised = limits::raise_nofile_limit().unwrap();
    let fds_needed = u64::try_from(too_many).unwrap() * limits::FDS_PER_PORT + 64;
    let dir = test_dir("ptymax");
    // Warm the process-wide session watcher so its descriptor is not counted as a leak.
    let fleet = Fleet::new();
    drop(
        fleet
            .spawn(PortSpec::new("warm"), Counter::default())
            .unwrap(),
    );
    fleet.shutdown().await;
    let fds_before = open_fds();

    let fleet = Fleet::new();
    let result = fleet
        .spawn_all((0..too_many).map(|i| {
            (
                PortSpec::new(format!("p{i}")).link(dir.join(format!("ttyUSB{i}"))),
                Counter::default(),
            )
        }))
        .await;
    let err = result.expect_err("more ports than kernel.pty.max cannot all be made");
    let message = err.to_string();
    if raised.new_soft >= fds_needed {
        assert!(matches!(err, FleetError::Limit { .. }), "{message}");
        assert!(message.contains("kernel.pty.max"), "{message}");
    } else {
        // Descriptors ran out first: still a named limit.
        assert!(
            message.contains("RLIMIT_NOFILE") || message.contains("kernel.pty.max"),
            "{message}"
        );
    }
    fleet.shutdown().await;
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "links left behind: {}", left.len());
    assert_eq!(open_fds(), fds_before, "descriptors left behind");
}
