//! `serialtwin tap --upstream rfc2217://host:port`: the device behind an RFC 2217 access
//! server (ser2net's `telnet(rfc2217)`, another serialtwin's `rfc2217` endpoint), spoken to
//! with the core's sans-IO [`Client`].
//!
//! The tap sees plain bytes: this upstream doubles 0xFF on the way out, undoes it on the way
//! in, and answers Telnet on the side. At the start it sets the line from the command line and
//! raises DTR and RTS; when the tap's client changes its settings, the server is asked to
//! follow, as a serial upstream follows.
//!
//! Servers differ in what they answer. The line settings must be answered (without them the
//! recording would run at a speed nobody agreed to), but SET-CONTROL answers are waited for
//! only briefly: ser2net in front of a pty never answers DTR and RTS (its pty cannot do them),
//! and pyserial needs `?ign_set_control` for it for the same reason.

use std::io;
use std::pin::Pin;
use std::task::{self, Poll, ready};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::{Buf as _, BytesMut};
use serialtwin_capture::Upstream;
use serialtwin_core::LineSettings;
use serialtwin_core::net::rfc2217::ComSettings;
use serialtwin_core::net::rfc2217_client::{Client, ClientEvent, Command};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The scheme that makes `--upstream` an RFC 2217 server.
pub(crate) const SCHEME: &str = "rfc2217://";

/// Our SIGNATURE, for a server that asks.
const SIGNATURE: &str = concat!("serialtwin ", env!("CARGO_PKG_VERSION"), " tap");

/// How long the server has to connect, agree to COM-PORT-OPTION and answer the line settings
/// (pyserial gives 3 s per step, plus 5 s for the connect).
const NEGOTIATION: Duration = Duration::from_secs(5);

/// How long SET-CONTROL answers (DTR, RTS, flow control) are waited for at the start before
/// going on without them: ser2net on a pty never answers them, as pyserial's
/// `ign_set_control` sleeps 0.1 s instead of waiting.
const CONTROL_GRACE: Duration = Duration::from_millis(500);

/// Bytes for the server held at most before a write waits: the tap's client can write faster
/// than the server reads, or the server can suspend us (FLOWCONTROL-SUSPEND).
const MAX_PENDING: usize = 64 * 1024;

/// Read buffer size.
const CHUNK: usize = 4096;

/// The `host:port` of an `rfc2217://host:port` upstream (`[::1]:port` for IPv6), `None` if
/// the upstream is something else.
///
/// # Errors
/// An `rfc2217://` upstream without a host and a numeric port.
pub(crate) fn address(upstream: &str) -> anyhow::Result<Option<&str>> {
    let Some(rest) = upstream.strip_prefix(SCHEME) else {
        return Ok(None);
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let valid = rest.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && port.parse::<u16>().is_ok()
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
    });
    if !valid {
        bail!(
            "--upstream {upstream}: expected rfc2217://host:port (rfc2217://[::1]:port for IPv6)"
        );
    }
    Ok(Some(rest))
}

/// A command the server answered with another value than the one asked for.
#[derive(Debug)]
struct Refusal {
    command: Command,
    asked: u32,
    value: u32,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} answered with {}",
            self.command, self.asked, self.value
        )
    }
}

/// An RFC 2217 access server as the tap's upstream.
pub(crate) struct Rfc2217Upstream {
    stream: TcpStream,
    client: Client,
    /// Bytes for the server not written yet: commands, Telnet answers, doubled data.
    out: BytesMut,
    /// The device's data not handed to the tap yet.
    data: BytesMut,
    /// The line from the command line; data bits and parity stay so (a pty cannot show the
    /// client's).
    fixed: LineSettings,
    read_buf: Box<[u8]>,
    /// The server closed the connection.
    eof: bool,
    /// The upstream as given, for the logs.
    name: String,
}

impl Rfc2217Upstream {
    /// Connects to `address` (`host:port`) and negotiates: COM-PORT-OPTION, then `settings`,
    /// DTR and RTS on. Data the device sends meanwhile is kept for the tap.
    ///
    /// # Errors
    /// No connection, a server that refuses COM-PORT-OPTION or does not agree within
    /// [`NEGOTIATION`], that does not answer the line settings or refuses one, or that breaks
    /// the protocol. Unanswered SET-CONTROL is only a warning.
    pub(crate) async fn connect(
        name: &str,
        address: &str,
        settings: LineSettings,
    ) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(NEGOTIATION, TcpStream::connect(address))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
            .and_then(|connected| connected)
            .with_context(|| format!("cannot connect to upstream {name}"))?;
        // Small requests and replies: no Nagle delay, as pyserial sets it too.
        stream.set_nodelay(true)?;
        let mut up = Self {
            stream,
            client: Client::new(SIGNATURE),
            out: BytesMut::new(),
            data: BytesMut::new(),
            fixed: settings,
            read_buf: vec![0; CHUNK].into_boxed_slice(),
            eof: false,
            name: name.to_owned(),
        };
        up.client.start(&mut up.out);
        let deadline = Instant::now() + NEGOTIATION;
        let mut refusals = Vec::new();
        let settled = up
            .exchange_until(deadline, &mut refusals, |c| {
                c.com_port_agreed() || c.com_port_refused()
            })
            .await?;
        if !up.client.com_port_agreed() {
            if settled {
                bail!("upstream {name} refuses COM-PORT-OPTION: not an RFC 2217 server");
            }
            bail!(
                "upstream {name} did not agree to COM-PORT-OPTION within {NEGOTIATION:?}: not an RFC 2217 server?"
            );
        }

        up.client
            .set_line(ComSettings::from(&settings), &mut up.out);
        up.client.control(8, &mut up.out);
        up.client.control(11, &mut up.out);
        let line = [
            Command::Baud,
            Command::DataSize,
            Command::Parity,
            Command::StopSize,
        ];
        let deadline = Instant::now() + NEGOTIATION;
        let answered = up
            .exchange_until(deadline, &mut refusals, |c| {
                line.iter().all(|&command| c.unanswered(command) == 0)
            })
            .await?;
        if !answered {
            let missing: Vec<String> = line
                .iter()
                .filter(|&&command| up.client.unanswered(command) > 0)
                .map(ToString::to_string)
                .collect();
            bail!(
                "upstream {name} did not answer {} within {NEGOTIATION:?}: it does not accept line settings over RFC 2217",
                missing.join(", ")
            );
        }
        if let Some(refused) = refusals.iter().find(|r| r.command != Command::Control) {
            bail!("upstream {name} refuses the line {settings}: {refused}");
        }

        let deadline = Instant::now() + CONTROL_GRACE;
        let controlled = up
            .exchange_until(deadline, &mut refusals, |c| {
                c.unanswered(Command::Control) == 0
            })
            .await?;
        if controlled {
            for refused in &refusals {
                warn!(upstream = %name, %refused, "upstream refuses a SET-CONTROL");
            }
        } else {
            warn!(
                upstream = %name,
                unanswered = up.client.unanswered(Command::Control),
                "upstream does not answer SET-CONTROL (flow control, DTR, RTS) within {CONTROL_GRACE:?}; \
                 going on without (ser2net in front of a pty never answers it)"
            );
        }
        info!(upstream = %name, line = %settings, "RFC 2217 upstream ready");
        Ok(up)
    }

    /// Writes what is due and reads what comes until `done` holds (true) or `deadline`
    /// passes (false).
    async fn exchange_until(
        &mut self,
        deadline: Instant,
        refusals: &mut Vec<Refusal>,
        done: impl Fn(&Client) -> bool,
    ) -> anyhow::Result<bool> {
        loop {
            let mut out = self.out.split();
            tokio::io::AsyncWriteExt::write_all(&mut self.stream, &out).await?;
            out.clear();
            if done(&self.client) {
                return Ok(true);
            }
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut self.read_buf))
                .await
            {
                Err(_) => return Ok(false),
                Ok(read) => read.with_context(|| format!("upstream {}", self.name))?,
            };
            if n == 0 {
                bail!(
                    "upstream {} closed the connection while negotiating",
                    self.name
                );
            }
            refusals.extend(self.receive(n)?);
        }
    }

    /// Feeds the first `n` bytes of the read buffer to the client; returns the refusals.
    fn receive(&mut self, n: usize) -> io::Result<Vec<Refusal>> {
        let mut events = Vec::new();
        self.client
            .receive(
                &self.read_buf[..n],
                &mut self.data,
                &mut events,
                &mut self.out,
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut refusals = Vec::new();
        for event in events {
            match event {
                ClientEvent::Answer {
                    command,
                    value,
                    asked: Some(asked),
                } if asked != value => refusals.push(Refusal {
                    command,
                    asked,
                    value,
                }),
                ClientEvent::ComPort(false) => {
                    warn!(upstream = %self.name, "upstream dropped COM-PORT-OPTION");
                }
                ClientEvent::Suspend(on) => {
                    info!(upstream = %self.name, suspended = on, "upstream flow control");
                }
                event => debug!(upstream = %self.name, ?event, "rfc2217"),
            }
        }
        Ok(refusals)
    }

    /// Reads once from the server into `data` (and answers into `out`); warns about refusals.
    /// `Ready(Ok(()))` after a read, an end of file included.
    fn poll_fill(&mut self, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        let mut buf = ReadBuf::new(&mut self.read_buf);
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        if n == 0 {
            self.eof = true;
            return Poll::Ready(Ok(()));
        }
        for refused in self.receive(n)? {
            warn!(upstream = %self.name, %refused, "upstream refuses");
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `out` until it is empty, or the server has suspended us (then it waits in
    /// `out` for the RESUME, which a read brings).
    fn poll_flush_out(&mut self, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() && !self.client.suspended() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Rfc2217Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.data.is_empty() {
                let n = this.data.len().min(buf.remaining());
                buf.put_slice(&this.data.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // Answers, and whatever a write or `follow` could not finish, go out here: the tap
            // is always reading.
            if let Poll::Ready(Err(e)) = this.poll_flush_out(cx) {
                return Poll::Ready(Err(e));
            }
            ready!(this.poll_fill(cx))?;
        }
    }
}

impl AsyncWrite for Rfc2217Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() >= MAX_PENDING {
            ready!(this.poll_flush_out(cx))?;
            if this.out.len() >= MAX_PENDING {
                // Suspended: only a read can bring the RESUME, and the tap is not reading
                // while it waits here.
                if this.data.len() < MAX_PENDING {
                    ready!(this.poll_fill(cx))?;
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
        }
        Client::send_data(buf, &mut this.out);
        if let Poll::Ready(Err(e)) = this.poll_flush_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_out(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_out(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

impl Upstream for Rfc2217Upstream {
    /// Asks the server for the client's baud rate, stop bits and flow control; data bits and
    /// parity stay as the command line set them (a pty cannot show the client's). The answers
    /// come later, on the read side: a refusal is logged there.
    fn follow(&mut self, client: &LineSettings) -> io::Result<Option<LineSettings>> {
        let applied = LineSettings {
            baud: client.baud,
            stop_bits: client.stop_bits,
            flow: client.flow,
            ..self.fixed
        };
        self.client
            .set_line(ComSettings::from(&applied), &mut self.out);
        if !self.client.suspended() {
            while !self.out.is_empty() {
                match self.stream.try_write(&self.out) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.out.advance(n),
                    // The rest goes with the next read.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Some(applied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2217_addresses() {
        assert_eq!(
            address("rfc2217://127.0.0.1:2217").unwrap(),
            Some("127.0.0.1:2217")
        );
        assert_eq!(
            address("rfc2217://[::1]:7000/").unwrap(),
            Some("[::1]:7000")
        );
        assert_eq!(
            address("rfc2217://ser2net.local:3001").unwrap(),
            Some("ser2net.local:3001")
        );
        assert_eq!(address("127.0.0.1:2217").unwrap(), None);
        assert_eq!(address("/dev/ttyUSB0").unwrap(), None);
        for bad in [
            "rfc2217://",
            "rfc2217://host",
            "rfc2217://:2217",
            "rfc2217://host:port",
            "rfc2217://::1:2217",
            "rfc2217://host:70000",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }
}
