//! Stopping a process on SIGINT, SIGTERM or SIGHUP, also when its runtime cannot.
//!
//! The usual way — a signal stream polled by the runtime — needs a runtime thread free to poll
//! it. A device handler that never returns (a bug in a device, a plant asked to integrate
//! forever) holds the worker it runs on, and a few of them hold them all: the signal is never
//! seen, and a SIGKILL later leaves links behind. So the signals are blocked in every thread
//! and taken by a thread of their own with `sigwait`: it tells the runtime, and if the
//! process has not stopped within a grace period it removes the links and files it was given
//! and exits by itself.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use tokio::sync::watch;
use tracing::error;

use super::LinkKeeper;

/// Takes SIGINT, SIGTERM and SIGHUP on a thread of its own (see the module docs).
#[derive(Debug)]
pub struct Stopper {
    /// What to clean up if the process must exit without its ports.
    leftovers: Arc<Leftovers>,
    /// The first signal's name, once it came.
    signalled: watch::Receiver<Option<&'static str>>,
    /// Told when the process stopped by itself.
    stopped: mpsc::Sender<()>,
}

/// What a forced exit removes.
#[derive(Debug, Default)]
struct Leftovers {
    links: Mutex<Vec<LinkKeeper>>,
    files: Mutex<Vec<PathBuf>>,
}

impl Leftovers {
    /// Release every link and remove every file; how many links there were.
    fn remove(&self) -> usize {
        let links: usize = self
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(LinkKeeper::release_all)
            .sum();
        for file in self
            .files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = std::fs::remove_file(file);
        }
        links
    }
}

impl Stopper {
    /// Block SIGINT, SIGTERM and SIGHUP in the calling thread — and so in every thread it
    /// starts afterwards, the runtime's included — and wait for them on a thread of their own.
    /// Call it first, while the calling thread is the only one: a thread started before keeps
    /// the signals unblocked and could take one.
    ///
    /// On the first signal [`signalled`](Self::signalled) completes. If
    /// [`stopped`](Self::stopped) is not called within `grace` of it, the thread releases the
    /// links of every [`LinkKeeper`] it was given ([`release_links_of`](Self::release_links_of)),
    /// removes the files it was given ([`remove_file`](Self::remove_file)), says why, and exits
    /// the process with status 1.
    ///
    /// # Errors
    /// The signals cannot be blocked or the thread cannot be started.
    pub fn install(grace: Duration) -> io::Result<Self> {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        set.thread_block().map_err(io::Error::from)?;
        let (tell, signalled) = watch::channel(None);
        let (stopped, in_time) = mpsc::channel();
        let leftovers = Arc::new(Leftovers::default());
        let to_remove = Arc::clone(&leftovers);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let Ok(signal) = set.wait() else {
                    return;
                };
                let name = match signal {
                    Signal::SIGINT => "SIGINT",
                    Signal::SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                tell.send_replace(Some(name));
                // Stopped in time, or the stopper is gone (the process is ending anyway).
                if in_time.recv_timeout(grace) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                let links = to_remove.remove();
                error!(
                    grace_ms = grace.as_millis(),
                    links,
                    "{name}: not stopped in time (a device handler that never returns?); \
                     links removed, exiting"
                );
                std::process::exit(1);
            })?;
        Ok(Self {
            leftovers,
            signalled,
            stopped,
        })
    }

    /// Wait for the first signal; its name (`SIGINT`, `SIGTERM` or `SIGHUP`).
    pub async fn signalled(&self) -> &'static str {
        let mut signalled = self.signalled.clone();
        match signalled.wait_for(Option::is_some).await {
            Ok(name) => name.unwrap_or("SIGTERM"),
            // The thread ended without a signal: waiting for one would never end.
            Err(_) => std::future::pending().await,
        }
    }

    /// Release `links`' links too if the process must exit without its ports.
    pub fn release_links_of(&self, links: LinkKeeper) {
        self.leftovers
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(links);
    }

    /// Remove `file` too (a control socket) if the process must exit without its ports.
    pub fn remove_file(&self, file: PathBuf) {
        self.leftovers
            .files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(file);
    }

    /// The process stopped by itself: no forced exit.
    pub fn stopped(&self) {
        let _ = self.stopped.send(());
    }
}
