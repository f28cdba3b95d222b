//! serialtwin: emulated serial devices that appear as real serial ports on Linux.
//!
//! A device is protocol and state: one plain function that answers a request frame. serialtwin
//! puts it on a pseudo-terminal (`/dev/pts/N`, in raw mode, with a symlink of your choosing),
//! cuts the client's bytes into frames, sends the replies the way the device's real line would
//! (baud rate, pacing, latency), and keeps the device's state while clients come and go. Any
//! program that opens a serial port — pyserial, minicom, tokio-serial — talks to it.
//!
//! ```text
//! client ── /dev/pts/N (link) ── framer ─► Device::handle ─► Replies ─► framer ─► line ─► client
//! ```
//!
//! # Cargo.toml
//!
//! ```toml
//! [dependencies]
//! serialtwin = "0.1"
//! # `macros` and `rt-multi-thread` for `#[tokio::main]`; `signal` for Ctrl-C
//! tokio = { version = "1", features = ["macros", "rt-multi-thread", "signal"] }
//!
//! [dev-dependencies]
//! # a real serial client, for tests against the port
//! tokio-serial = "5.5"
//! # reading its replies with a timeout
//! tokio = { version = "1", features = ["io-util", "time"] }
//! ```
//!
//! No `bytes`: [`Device::handle`] takes the request as `&[u8]`, and [`Replies::push`] takes a
//! `&'static str`, a `String` or a `Vec<u8>` (a borrowed slice: `.to_vec()`). Only an
//! [`AsyncDevice`] gets its request as a `bytes::Bytes`; add `bytes = "1"` for that.
//!
//! # A device
//!
//! A thermostat on a 9600-baud UART whose commands and replies end in `\r`: `ID?` names it,
//! `SP 21` sets the setpoint, `SP?` reads it back, anything else gets `ERR`.
//!
//! ```
//! use serialtwin::{Context, Device, Framing, LineConfig, Replies, Terminator};
//!
//! #[derive(Debug, Default)]
//! pub struct Thermostat {
//!     setpoint: i32,
//! }
//!
//! impl Device for Thermostat {
//!     type Error = std::convert::Infallible;
//!
//!     /// Lines ending in `\r` (the default is `\r\n`).
//!     fn framing(&self) -> Framing {
//!         Framing::lines(Terminator::Cr, Framing::DEFAULT_MAX_LEN)
//!     }
//!
//!     /// A real 8N1 UART at 9600 baud (the default is a plain port with no line behaviour).
//!     fn line(&self) -> LineConfig {
//!         LineConfig::uart(9600)
//!     }
//!
//!     fn handle(
//!         &mut self,
//!         request: &[u8],
//!         _ctx: &mut Context,
//!         replies: &mut Replies,
//!     ) -> Result<(), Self::Error> {
//!         match request {
//!             b"ID?" => replies.push("ACME,TH-1"),
//!             b"SP?" => replies.push(self.setpoint.to_string()),
//!             _ => match request.strip_prefix(b"SP ").and_then(parse) {
//!                 Some(setpoint) => {
//!                     self.setpoint = setpoint;
//!                     replies.push("OK");
//!                 }
//!                 None => replies.push("ERR"),
//!             },
//!         }
//!         Ok(())
//!     }
//! }
//!
//! fn parse(digits: &[u8]) -> Option<i32> {
//!     std::str::from_utf8(digits).ok()?.parse().ok()
//! }
//! ```
//!
//! - The request arrives without its `\r`, and each pushed reply gets one: the framer both cuts
//!   and encodes. [`Framing::by_name`]`("cr")` gives the same framing by name (`crlf`, `cr`,
//!   `lf`); a protocol of its own brings a [`Framer`], or any tokio-util codec through
//!   [`CodecFramer`].
//! - [`LineConfig::uart`] paces output at 9600 baud 8N1 and gives a client at another speed
//!   garbage, as a real UART would ([`Mismatch`]); [`LineConfig`]'s fields also set the
//!   character format, a response [`Latency`] and how long a half-sent request is kept.
//! - A reply can wait ([`Replies::push_after`]) or skip the framer ([`Replies::push_raw`]); the
//!   [`Context`] has the port's name, the client's line settings, a simulated clock
//!   ([`SimClock`]) and a seeded random source. [`Device::on_event`] hears clients open,
//!   configure and close the port; [`Device::set`] takes named values from a test or
//!   `serialtwin ctl`.
//! - An `Err` from `handle` is logged and observed, and serving goes on; a panic stops that port
//!   only.
//!
//! # On a port
//!
//! A [`Fleet`] puts devices on ptys, on the current tokio runtime, and hands back a
//! [`PortHandle`] per port:
//!
//! ```
//! # use serialtwin::{Context, Device, Framing, LineConfig, Replies, Terminator};
//! # #[derive(Debug, Default)]
//! # pub struct Thermostat;
//! # impl Device for Thermostat {
//! #     type Error = std::convert::Infallible;
//! #     fn framing(&self) -> Framing { Framing::lines(Terminator::Cr, Framing::DEFAULT_MAX_LEN) }
//! #     fn line(&self) -> LineConfig { LineConfig::uart(9600) }
//! #     fn handle(&mut self, _: &[u8], _: &mut Context, out: &mut Replies)
//! #         -> Result<(), Self::Error>
//! #     {
//! #         out.push("OK");
//! #         Ok(())
//! #     }
//! # }
//! use serialtwin::{Fleet, PortSpec};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The link's directory is made (0755) if missing; here a fresh one under the temp dir.
//!     let dir = std::env::temp_dir().join(format!("thermostat-{}", std::process::id()));
//!     let fleet = Fleet::new();
//!     let port = fleet.spawn(
//!         PortSpec::new("thermostat").link(dir.join("ttyUSB0")),
//!         Thermostat::default(),
//!     )?;
//!     println!("{} -> {}", port.link().unwrap().display(), port.pty().display());
//!
//!     // A program serves until it is stopped: `tokio::signal::ctrl_c().await?;` here.
//!     // (This one stops at once, so that it can run as a test.)
//!     fleet.shutdown().await; // every port stopped, every link removed
//! #   std::fs::remove_dir(&dir)?;
//!     Ok(())
//! }
//! ```
//!
//! Then `python3 -m serial.tools.miniterm --eol CR <link> 9600` talks to it. [`Fleet::spawn`]
//! fails rather than leave anything behind, and its [`FleetError`] says why (a system limit
//! and how to raise it, a link that is not ours to take). [`Fleet::spawn_all`] starts many
//! ports all or nothing;
//! [`PortSpec`] also sets the slave's owner and mode, and its [`ServeConfig`] overrides the
//! device's framing and line, the clock, the seed, observers and faults from the start.
//! [`PortHandle::observations`] streams every frame and line event seen on the port, and
//! [`PortHandle::command`] sends frames, injects faults, unplugs the port or sets device
//! values while it runs.
//!
//! # Testing it
//!
//! Without a port: `handle` is a plain function, so call it. [`Context::for_test`] gives a
//! context, [`Replies::frames`] the replies as the device made them (before the framer adds
//! the `\r`).
//!
//! ```
//! # use serialtwin::{Context, Device, Replies};
//! # #[derive(Debug, Default)]
//! # pub struct Thermostat { setpoint: i32 }
//! # impl Device for Thermostat {
//! #     type Error = std::convert::Infallible;
//! #     fn handle(&mut self, req: &[u8], _: &mut Context, out: &mut Replies)
//! #         -> Result<(), Self::Error>
//! #     {
//! #         match req {
//! #             b"SP?" => out.push(self.setpoint.to_string()),
//! #             b"SP 21" => { self.setpoint = 21; out.push("OK") }
//! #             _ => out.push("ERR"),
//! #         }
//! #         Ok(())
//! #     }
//! # }
//! use serialtwin::SimClock;
//!
//! let mut thermostat = Thermostat::default();
//! let mut ctx = Context::for_test(SimClock::real());
//! let mut replies = Replies::new();
//!
//! thermostat.handle(b"SP 21", &mut ctx, &mut replies)?;
//! assert_eq!(replies.frames(), [b"OK"]);
//!
//! replies.clear(); // the serving loop hands `handle` an empty `Replies` every time
//! thermostat.handle(b"SP?", &mut ctx, &mut replies)?;
//! assert_eq!(replies.frames(), [b"21"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! An answer that depends on the time of day reads [`Context::clock`]; a test pins it with
//! [`SimClock::at_unix`]`(seconds, 0.0)` to get exact bytes.
//!
//! Against the real port, with framing, the line and a real serial client: in `tests/` this is
//! the body of a `#[tokio::test] async fn`; here the runtime is built by hand so that the
//! example runs as it stands. No link is needed: [`PortHandle::path`] is the pty itself when
//! there is none.
//!
//! ```
//! # use serialtwin::{Context, Device, Framing, LineConfig, Replies, Terminator};
//! # #[derive(Debug, Default)]
//! # pub struct Thermostat;
//! # impl Device for Thermostat {
//! #     type Error = std::convert::Infallible;
//! #     fn framing(&self) -> Framing { Framing::lines(Terminator::Cr, Framing::DEFAULT_MAX_LEN) }
//! #     fn line(&self) -> LineConfig { LineConfig::uart(9600) }
//! #     fn handle(&mut self, req: &[u8], _: &mut Context, out: &mut Replies)
//! #         -> Result<(), Self::Error>
//! #     {
//! #         out.push(if req == b"SP 21" { "OK" } else { "ERR" });
//! #         Ok(())
//! #     }
//! # }
//! use std::time::Duration;
//!
//! use serialtwin::{Fleet, PortSpec};
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//! use tokio::time::timeout;
//! use tokio_serial::SerialPortBuilderExt;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     let fleet = Fleet::new();
//!     let port = fleet.spawn(PortSpec::new("thermostat"), Thermostat::default())?;
//!
//!     // At the device's baud rate: a client at another one would read garbage.
//!     let client = tokio_serial::new(port.path().to_string_lossy(), 9600).open_native_async()?;
//!     let mut client = BufReader::new(client);
//!     client.get_mut().write_all(b"SP 21\r").await?;
//!     let mut reply = Vec::new();
//!     timeout(Duration::from_secs(5), client.read_until(b'\r', &mut reply)).await??;
//!     assert_eq!(reply, b"OK\r");
//!
//!     drop(client);
//!     fleet.shutdown().await;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! In between, [`serve()`] runs a device on any transport — a `tokio::io::duplex` pipe, a TCP
//! socket, anything `AsyncRead + AsyncWrite` in [`Plain`] — with the same framing and line and
//! no pty.
//!
//! # What lives where
//!
//! - **Here, at the root**: everything of [`serialtwin_core`], re-exported —
//!   the device traits ([`Device`], [`AsyncDevice`], [`Awaiting`], [`BoxDevice`]), [`Context`],
//!   [`Replies`], framing ([`Framing`], [`Framer`], [`LineFramer`], [`CodecFramer`]), the line
//!   ([`LineConfig`]), fleets ([`Fleet`], [`PortSpec`], [`PortHandle`]), the serving loop
//!   ([`serve()`], [`PtyPort`]), faults ([`FaultRule`]), observers ([`Observer`]), and the core's
//!   modules ([`control`] for the control socket and scenario timelines, [`limits`] for
//!   open-file and pty limits, [`escape`], …).
//! - [`capture`] (the `serialtwin-capture` crate): recorded conversations as JSON lines
//!   ([`capture::CaptureWriter`], [`capture::read`]) and the tap that records a real device
//!   ([`capture::Tap`]).
//! - [`devices`] (the `serialtwin-devices` crate): ready-made models — [`devices::pi30`] (a
//!   Voltronic solar inverter), [`devices::scripted`] (a dialogue written in a config),
//!   [`devices::replay`] (a device answering from a capture), [`devices::learn`] (a capture
//!   turned into a scripted device) — and their framings ([`devices::framing_by_name`]).
//!
//! # Which tool when
//!
//! - **[`Device`]**, nearly always: an answer computed from the request and the device's state,
//!   even one that goes out later ([`Replies::push_after`] is data, not waiting).
//! - **[`AsyncDevice`], served as [`Awaiting`]`(device)`**, when an answer must `.await`
//!   something: a channel from the test driving it, a real device behind it. Its port answers
//!   nothing else meanwhile, as a serial device answers one request at a time, and is never
//!   served from a lane (below).
//! - **[`Device::talks_every`]` -> Some(period)`** and [`Device::talk`], for a device that talks
//!   on a beat of its own (a GPS's fixes, a charge controller's status block): what it says is
//!   paced and faulted like an answer, and its port can still be served from a lane.
//! - **[`Device::sends_unprompted`]` -> true`**, for a device that sends frames nobody asked for
//!   on whatever it awaits: its [`Device::unprompted`] future is raced against incoming
//!   requests, so it must be cancel-safe. Such a port is never served from a lane.
//! - **[`BoxDevice::new`]`(device)`**, to give devices of different types one type, for a fleet
//!   or a [`Fleet::spawn_all`] whose ports run different models.
//! - **[`Fleet::without_lanes`]**, to serve every port from its own task. By default a fleet
//!   serves the quiet ports of devices that answer at once and await nothing unprompted from
//!   shared *lanes* (one thread and epoll set per 1,024 ports; no task woken per request); the
//!   port's own task takes it back for everything else. A lane is a fast path, not another
//!   behaviour; turning lanes off is for comparing the two, or to keep every call into a
//!   device on the runtime's own threads (a lane calls it from the lane's thread).
//!
//! The words the code and docs use (lane, recall, outbox, canary, …) are explained in
//! `docs/glossary.md` in the repository.

pub use serialtwin_capture as capture;
pub use serialtwin_core::*;
pub use serialtwin_devices as devices;
