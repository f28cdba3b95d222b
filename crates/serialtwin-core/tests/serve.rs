//! The serving loop over in-memory transports: no pty anywhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serialtwin_core::{
    AsyncDevice, Awaiting, Body, Bus, CodecFramer, Context, Device, Direction, Framing, LineConfig,
    Observation, Plain, Replies, Reply, Route, Seen, ServeConfig, ServeError, serve,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A device with a little of everything: counts, echoes, replies 0/1/3 times, fails, panics.
#[derive(Default)]
struct Counter {
    n: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("asked to fail")]
struct Failed;

impl Device for Counter {
    type Error = Failed;

    fn handle(&mut self, req: &[u8], _: &mut Context, out: &mut Replies) -> Result<(), Failed> {
        match req {
            b"NOPE" => {}
            b"INC" => {
                self.n += 1;
                out.push(self.n.to_string());
            }
            b"DUMP" => {
                for i in 0..3 {
                    out.push(format!("{i}:{}", self.n));
                }
            }
            b"SLOW" => out.push_after(Duration::from_secs(5), "late"),
            b"FAIL" => return Err(Failed),
            b"PANIC" => panic!("device bug"),
            other => out.push_raw([b"?".as_slice(), other, b"\r\n"].concat()),
        }
        Ok(())
    }
}

fn start<D: Body>(
    device: D,
    config: ServeConfig,
) -> (
    DuplexStream,
    CancellationToken,
    JoinHandle<Result<(), ServeError>>,
) {
    let (client, server) = tokio::io::duplex(4096);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve(device, server, config, cancel.clone()));
    (client, cancel, task)
}

async fn read_line(r: &mut BufReader<DuplexStream>) -> String {
    let mut s = String::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut s))
        .await
        .expect("reply in time")
        .unwrap();
    s
}

#[tokio::test]
async fn zero_one_and_three_replies_and_state_kept() {
    let (client, cancel, task) = start(Counter::default(), ServeConfig::new("t"));
    let mut client = BufReader::new(client);
    client
        .get_mut()
        .write_all(b"NOPE\r\nINC\r\nINC\r\nDUMP\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(read_line(&mut client).await);
    }
    assert_eq!(got, ["1\r\n", "2\r\n", "0:2\r\n", "1:2\r\n", "2:2\r\n"]);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn delayed_reply_waits_its_delay() {
    let (client, cancel, task) = start(Counter::default(), ServeConfig::new("t"));
    let mut client = BufReader::new(client);
    let t0 = tokio::time::Instant::now();
    client.get_mut().write_all(b"SLOW\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "late\r\n");
    assert!(t0.elapsed() >= Duration::from_secs(5));
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn raw_replies_bypass_the_framer() {
    let (client, cancel, task) = start(Counter::default(), ServeConfig::new("t"));
    let mut client = BufReader::new(client);
    client.get_mut().write_all(b"what\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "?what\r\n");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn handler_error_is_logged_and_serving_goes_on() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let config = ServeConfig::new("t")
        .observe(move |o: &Observation| s2.lock().unwrap().push(o.seen.clone()));
    let (client, cancel, task) = start(Counter::default(), config);
    let mut client = BufReader::new(client);
    client
        .get_mut()
        .write_all(b"FAIL\r\nINC\r\n")
        .await
        .unwrap();
    assert_eq!(read_line(&mut client).await, "1\r\n");
    assert!(
        seen.lock()
            .unwrap()
            .contains(&Seen::HandlerError("asked to fail".into()))
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn panic_stops_only_that_port() {
    let (sick, _c1, sick_task) = start(Counter::default(), ServeConfig::new("sick"));
    let (healthy, cancel, healthy_task) = start(Counter::default(), ServeConfig::new("healthy"));
    let mut sick = BufReader::new(sick);
    sick.get_mut().write_all(b"PANIC\r\n").await.unwrap();
    let err = sick_task.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ServeError::DevicePanicked { port, message } if &**port == "sick" && message == "device bug"),
        "{err}"
    );
    // The client of the dead port sees end of stream, not a hang.
    let mut rest = String::new();
    assert_eq!(sick.read_to_string(&mut rest).await.unwrap(), 0);

    let mut healthy = BufReader::new(healthy);
    healthy.get_mut().write_all(b"INC\r\n").await.unwrap();
    assert_eq!(read_line(&mut healthy).await, "1\r\n");
    cancel.cancel();
    healthy_task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_even_a_pending_delayed_reply() {
    let (client, cancel, task) = start(Counter::default(), ServeConfig::new("t"));
    let mut client = BufReader::new(client);
    client.get_mut().write_all(b"SLOW\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing sent after cancellation: {rest:?}");
}

/// A device whose handler itself waits (a lookup, a lock shared with other ports) before it
/// answers: the serving loop awaits it in place, not boxed, so this is the path to prove.
struct Thinker;

impl AsyncDevice for Thinker {
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        req: Bytes,
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        if req.as_ref() == b"THINK" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        out.push(req);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_waits_is_answered_in_order_and_can_be_cancelled() {
    let (client, cancel, task) = start(Awaiting(Thinker), ServeConfig::new("t"));
    let mut client = BufReader::new(client);
    let t0 = tokio::time::Instant::now();
    client
        .get_mut()
        .write_all(b"THINK\r\nQUICK\r\n")
        .await
        .unwrap();
    assert_eq!(read_line(&mut client).await, "THINK\r\n");
    assert!(t0.elapsed() >= Duration::from_secs(3));
    assert_eq!(read_line(&mut client).await, "QUICK\r\n");

    // Cancelled while the handler waits: the port stops without its reply.
    client.get_mut().write_all(b"THINK\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing sent after cancellation: {rest:?}");
}

/// A meter that sends a reading every second without being asked.
struct Meter {
    tick: tokio::time::Interval,
    reading: u32,
}

impl Device for Meter {
    type Error = std::convert::Infallible;
    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        if req == b"RESET" {
            self.reading = 0;
            out.push("OK");
        }
        Ok(())
    }
    fn sends_unprompted(&self) -> bool {
        true
    }
    async fn unprompted(&mut self, _: &mut Context) -> Option<Reply> {
        // Interval::tick is cancel-safe: a request arriving first loses no tick.
        self.tick.tick().await;
        self.reading += 1;
        Some(Reply::frame(format!("READING {}", self.reading)))
    }
}

#[tokio::test(start_paused = true)]
async fn unprompted_frames_interleave_with_replies() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (client, cancel, task) = start(Meter { tick, reading: 0 }, ServeConfig::new("meter"));
    let mut client = BufReader::new(client);
    assert_eq!(read_line(&mut client).await, "READING 1\r\n");
    assert_eq!(read_line(&mut client).await, "READING 2\r\n");
    client.get_mut().write_all(b"RESET\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "OK\r\n");
    assert_eq!(read_line(&mut client).await, "READING 1\r\n");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn observer_sees_every_frame_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let config = ServeConfig::new("obs").observe(move |o: &Observation| {
        assert_eq!(&*o.port, "obs");
        s2.lock().unwrap().push(o.seen.clone());
    });
    let (client, cancel, task) = start(Counter::default(), config);
    let mut client = BufReader::new(client);
    client
        .get_mut()
        .write_all(b"INC\r\nNOPE\r\nDUMP\r\n")
        .await
        .unwrap();
    for _ in 0..4 {
        read_line(&mut client).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    let rx = |s: &str| Seen::Frame(Direction::Rx, Bytes::copy_from_slice(s.as_bytes()));
    let tx = |s: &str| Seen::Frame(Direction::Tx, Bytes::copy_from_slice(s.as_bytes()));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            rx("INC"),
            tx("1\r\n"),
            rx("NOPE"),
            rx("DUMP"),
            tx("0:1\r\n"),
            tx("1:1\r\n"),
            tx("2:1\r\n")
        ]
    );
}

#[tokio::test]
async fn overlong_garbage_is_discarded_and_the_stream_recovers() {
    let (client, cancel, task) = start(Counter::default(), ServeConfig::new("t"));
    let mut client = BufReader::new(client);
    let garbage = vec![b'x'; 64 * 1024];
    let writer = async {
        client.get_mut().write_all(&garbage).await.unwrap();
        client.get_mut().write_all(b"\r\nINC\r\n").await.unwrap();
    };
    writer.await;
    assert_eq!(read_line(&mut client).await, "1\r\n");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_byte_script_with_tokio_test_mock() {
    let io = tokio_test::io::Builder::new()
        .read(b"INC\r\nDU")
        .write(b"1\r\n")
        .read(b"MP\r\n")
        .write(b"0:1\r\n")
        .write(b"1:1\r\n")
        .write(b"2:1\r\n")
        .build();
    serve(
        Counter::default(),
        Plain(io),
        ServeConfig::new("mock"),
        CancellationToken::new(),
    )
    .await
    .unwrap();
}

/// A binary protocol through a stock tokio-util codec: 2-byte big-endian length prefix.
struct Sum;

impl Device for Sum {
    type Error = std::convert::Infallible;
    fn framing(&self) -> Framing {
        Framing::new("u16-length", || {
            CodecFramer::new(
                || {
                    tokio_util::codec::LengthDelimitedCodec::builder()
                        .length_field_length(2)
                        .max_frame_length(512)
                        .new_codec()
                },
                512,
            )
        })
    }
    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        let sum: u32 = req.iter().map(|&b| u32::from(b)).sum();
        out.push(sum.to_be_bytes().to_vec());
        Ok(())
    }
}

#[tokio::test]
async fn any_tokio_util_codec_plugs_in() {
    let (mut client, cancel, task) = start(Sum, ServeConfig::new("bin"));
    // Binary bytes including 0x00, 0x0d, 0x0a, 0xff.
    client
        .write_all(&[0, 4, 0x00, 0x0d, 0x0a, 0xff])
        .await
        .unwrap();
    let mut reply = [0u8; 6];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [0, 4, 0, 0, 0x01, 0x16]);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// Counts the writes a transport gets.
struct CountingWrites {
    inner: DuplexStream,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl tokio::io::AsyncRead for CountingWrites {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountingWrites {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn replies_to_pipelined_requests_go_out_in_one_write() {
    let (mut client, server) = tokio::io::duplex(4096);
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let io = Plain(CountingWrites {
        inner: server,
        writes: writes.clone(),
    });
    // All requests arrive before serving starts, so one read brings them all.
    client.write_all(b"INC\r\nINC\r\nDUMP\r\n").await.unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve(
        Counter::default(),
        io,
        ServeConfig::new("c"),
        cancel.clone(),
    ));
    let mut client = BufReader::new(client);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(read_line(&mut client).await);
    }
    assert_eq!(got, ["1\r\n", "2\r\n", "0:2\r\n", "1:2\r\n", "2:2\r\n"]);
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A binary protocol whose frames end by silence (as Modbus RTU's do): everything received
/// before a 5 ms gap is one frame.
struct SilenceFramer;

impl serialtwin_core::Framer for SilenceFramer {
    fn decode(
        &mut self,
        _buf: &mut bytes::BytesMut,
    ) -> Result<Option<Bytes>, serialtwin_core::FrameError> {
        Ok(None)
    }
    fn encode(
        &mut self,
        frame: &[u8],
        dst: &mut bytes::BytesMut,
    ) -> Result<(), serialtwin_core::FrameError> {
        dst.extend_from_slice(frame);
        Ok(())
    }
    fn silence_gap(&self, _: &serialtwin_core::LineSettings) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }
    fn on_silence(
        &mut self,
        buf: &mut bytes::BytesMut,
    ) -> Result<Option<Bytes>, serialtwin_core::FrameError> {
        Ok(Some(buf.split().freeze()))
    }
    fn max_frame_len(&self) -> usize {
        256
    }
}

/// Answers each frame with its length and its bytes reversed.
struct Reverse;

impl Device for Reverse {
    type Error = std::convert::Infallible;
    fn framing(&self) -> Framing {
        Framing::new("silence", || SilenceFramer)
    }
    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        let mut reply = vec![u8::try_from(req.len()).unwrap()];
        reply.extend(req.iter().rev());
        out.push(reply);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_gap_of_silence_ends_a_binary_frame() {
    let (mut client, cancel, task) = start(Reverse, ServeConfig::new("rtu"));
    // One frame in two writes 1 ms apart (no gap), then a gap.
    client.write_all(&[0x01, 0x03]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    client.write_all(&[0x00, 0x0d, 0xff]).await.unwrap();
    let mut reply = [0u8; 6];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [5, 0xff, 0x0d, 0x00, 0x03, 0x01]);
    // The next frame after another gap is separate.
    client.write_all(&[0xaa]).await.unwrap();
    let mut reply = [0u8; 2];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [1, 0xaa]);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_broadcast_subscribed_while_serving_sees_what_follows() {
    let watch = serialtwin_core::Broadcast::new(16);
    let mut config = ServeConfig::new("late");
    config.observers.push(Arc::new(watch.clone()));
    let (client, cancel, task) = start(Counter::default(), config);
    let mut client = BufReader::new(client);
    // Served while nobody watches: the loop has decided that there is nobody to tell.
    client.get_mut().write_all(b"INC\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "1\r\n");
    let mut seen = watch.subscribe();
    client.get_mut().write_all(b"INC\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "2\r\n");
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let o = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("observed in time")
            .unwrap();
        if let Seen::Frame(direction, bytes) = o.seen {
            frames.push((direction, bytes));
        }
    }
    assert_eq!(
        frames,
        [
            (Direction::Rx, Bytes::from_static(b"INC")),
            (Direction::Tx, Bytes::from_static(b"2\r\n")),
        ]
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_device_serves_over_tcp_too() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve(Counter::default(), stream, ServeConfig::new("tcp"), cancel).await
        }
    });
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut client = BufReader::new(stream);
    for want in ["1\r\n", "2\r\n"] {
        client.get_mut().write_all(b"INC\r\n").await.unwrap();
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_line(&mut line))
            .await
            .expect("reply in time")
            .unwrap();
        assert_eq!(line, want);
    }
    // The client hangs up: serving ends by itself.
    drop(client);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serving ends")
        .unwrap()
        .unwrap();
    assert!(!cancel.is_cancelled());
}

/// A line whose partial requests go stale after 1 s.
fn with_frame_timeout() -> ServeConfig {
    let mut config = ServeConfig::new("uart");
    config.line = Some(serialtwin_core::LineConfig {
        frame_timeout: Some(Duration::from_secs(1)),
        ..serialtwin_core::LineConfig::default()
    });
    config
}

#[tokio::test(start_paused = true)]
async fn a_partial_request_older_than_the_frame_timeout_is_dropped_when_more_comes() {
    let (client, cancel, task) = start(Counter::default(), with_frame_timeout());
    let mut client = BufReader::new(client);
    // Within the timeout the halves make one request...
    client.get_mut().write_all(b"IN").await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    client.get_mut().write_all(b"C\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "1\r\n");
    // ...after it the stale half is gone, as a UART's firmware forgets it.
    client.get_mut().write_all(b"XX").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.get_mut().write_all(b"INC\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "2\r\n");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn control_is_obeyed_while_a_reply_waits_its_delay() {
    let (client, server) = tokio::io::duplex(4096);
    let cancel = CancellationToken::new();
    let (control, rx) = tokio::sync::mpsc::channel(4);
    let task = tokio::spawn(serialtwin_core::serve_with_control(
        Counter::default(),
        server,
        ServeConfig::new("t"),
        cancel.clone(),
        Some(rx),
    ));
    let mut client = BufReader::new(client);
    let t0 = tokio::time::Instant::now();
    client.get_mut().write_all(b"SLOW\r\n").await.unwrap();
    // While "late" waits its 5 s, a frame sent by control goes out, and a value is set.
    tokio::time::sleep(Duration::from_millis(10)).await;
    control
        .send(serialtwin_core::Control::SendRaw(Bytes::from_static(
            b"now\r\n",
        )))
        .await
        .unwrap();
    let (tx, set) = tokio::sync::oneshot::channel();
    control
        .send(serialtwin_core::Control::Set {
            key: "x".into(),
            value: "1".into(),
            reply: Some(tx),
        })
        .await
        .unwrap();
    assert!(set.await.unwrap().is_err(), "the device has no values");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // Behind the reply already waiting: a port sends in order.
    assert_eq!(read_line(&mut client).await, "late\r\n");
    assert_eq!(read_line(&mut client).await, "now\r\n");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_paced_line_answers_the_next_request_once_the_previous_answer_has_left() {
    let mut config = ServeConfig::new("paced");
    config.line = Some(serialtwin_core::LineConfig::uart(2400));
    let (client, cancel, task) = start(Counter::default(), config);
    let mut client = BufReader::new(client);
    client
        .get_mut()
        .write_all(&b"INC\r\n".repeat(5))
        .await
        .unwrap();
    let mut at = Vec::new();
    let t0 = tokio::time::Instant::now();
    for i in 1..=5 {
        assert_eq!(read_line(&mut client).await, format!("{i}\r\n"));
        at.push(t0.elapsed());
    }
    // "1\r\n" is 3 bytes, 12.5 ms on the wire at 2400 8N1: one answer after the other.
    for (i, t) in at.iter().enumerate() {
        let wire = Duration::from_micros(12_500) * u32::try_from(i + 1).unwrap();
        assert!(*t >= wire, "answer {i} at {t:?}, before {wire:?}");
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// A bus unit: `INC` counts, `N?` answers the count; `step` is settable.
#[derive(Default)]
struct Unit {
    n: u32,
    step: u32,
}

impl Device for Unit {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        let command = req.split(|&b| b == b':').nth(1).unwrap_or_default();
        match command {
            b"INC" => self.n += self.step.max(1),
            b"N?" => out.push(self.n.to_string()),
            _ => {}
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str, _: &mut Context) -> Result<(), String> {
        match key {
            "step" => self.step = value.parse().map_err(|_| format!("bad step {value:?}"))?,
            _ => return Err(format!("no {key:?}")),
        }
        Ok(())
    }
}

/// `<address>:<command>`; `*` addresses everyone.
fn address_of(frame: &[u8]) -> Route {
    match frame.split(|&b| b == b':').next() {
        Some(b"*") => Route::All,
        Some(a) => std::str::from_utf8(a)
            .ok()
            .and_then(|a| a.parse().ok())
            .map_or(Route::Nobody, Route::To),
        None => Route::Nobody,
    }
}

/// Two units behind one port: each request reaches the unit it names, a broadcast reaches
/// both and is answered by none, an unknown address by nobody; values are set per unit.
#[tokio::test]
async fn a_bus_hands_each_request_to_the_unit_it_names() {
    let bus = Bus::new(address_of, Framing::default(), LineConfig::default())
        .with(1, Unit::default())
        .with(2, Unit::default());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (client, cancel, task) = {
        let (client, server) = tokio::io::duplex(4096);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serialtwin_core::serve_with_control(
            bus,
            server,
            ServeConfig::new("bus"),
            cancel.clone(),
            Some(rx),
        ));
        (client, cancel, task)
    };
    let mut client = BufReader::new(client);
    let (set, took) = tokio::sync::oneshot::channel();
    tx.send(serialtwin_core::Control::Set {
        key: "2.step".into(),
        value: "10".into(),
        reply: Some(set),
    })
    .await
    .unwrap();
    assert_eq!(took.await.unwrap(), Ok(()));
    client
        .get_mut()
        .write_all(b"1:INC\r\n2:INC\r\n9:INC\r\n9:N?\r\n*:INC\r\n*:N?\r\n1:N?\r\n2:N?\r\n")
        .await
        .unwrap();
    assert_eq!(read_line(&mut client).await, "2\r\n");
    assert_eq!(read_line(&mut client).await, "20\r\n");
    let (bad, refused) = tokio::sync::oneshot::channel();
    tx.send(serialtwin_core::Control::Set {
        key: "step".into(),
        value: "1".into(),
        reply: Some(bad),
    })
    .await
    .unwrap();
    assert!(
        refused
            .await
            .unwrap()
            .unwrap_err()
            .contains("<address>.<key>")
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
    let mut rest = String::new();
    client.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "", "nothing else answered");
}

/// Answers `READ` with when it answered (milliseconds since it was made), padded to the
/// 108 bytes of a PI30 `QPIGS` payload: 110 bytes on the wire with CRLF.
struct Clock(tokio::time::Instant);

impl Device for Clock {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        if req == b"READ" {
            out.push(format!("{:0>108}", self.0.elapsed().as_millis()));
        }
        Ok(())
    }

    fn line(&self) -> LineConfig {
        LineConfig::uart(2400)
    }
}

/// Twenty requests sent at once to a device on a paced 2400-baud line are answered one at a
/// time, each once the previous reply has left the wire: the readings are 458 ms apart, as a
/// real inverter's are, not all taken at the moment the requests arrived.
#[tokio::test(start_paused = true)]
async fn pipelined_requests_on_a_paced_line_are_answered_as_each_reply_leaves() {
    let (client, cancel, task) = start(
        Clock(tokio::time::Instant::now()),
        ServeConfig::new("paced"),
    );
    let mut client = BufReader::new(client);
    client
        .get_mut()
        .write_all(&b"READ\r\n".repeat(20))
        .await
        .unwrap();
    let mut taken = Vec::new();
    for _ in 0..20 {
        let line = read_line(&mut client).await;
        assert_eq!(line.len(), 110, "{line:?}");
        taken.push(line.trim_end().parse::<u64>().unwrap());
    }
    for pair in taken.windows(2) {
        // 110 bytes x 10 bits / 2400 baud = 458.3 ms on the wire.
        assert!(pair[1] - pair[0] >= 458, "readings {taken:?}");
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// What a client reading as fast as it can sees of `request`'s answer: each read's instant
/// (from the request) and bytes, until `len` bytes came.
async fn reads(client: &mut DuplexStream, request: &[u8], len: usize) -> Vec<(Duration, Vec<u8>)> {
    client.write_all(request).await.unwrap();
    let t0 = tokio::time::Instant::now();
    let mut got = Vec::new();
    let mut total = 0;
    while total < len {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
            .await
            .expect("the answer in time")
            .unwrap();
        assert!(n > 0, "end of stream");
        total += n;
        got.push((t0.elapsed(), buf[..n].to_vec()));
    }
    got
}

/// The serving loop writes each piece the line scheduled at its instant: a 110-byte answer at
/// 2400 baud through an untuned USB adapter comes in 29 chunks 16 ms apart, the last at the
/// answer's wire end (to the timer's millisecond).
#[tokio::test(start_paused = true)]
async fn a_paced_answer_arrives_in_the_adapters_chunks_at_their_instants() {
    let mut config = ServeConfig::new("chunks");
    config.line = Some(LineConfig::uart(2400));
    let (mut client, cancel, task) = start(Counter::default(), config);
    // 108 bytes of `?` echo and CRLF: 110 on the wire, 458.3 ms.
    let mut request = vec![b'A'; 107];
    request.extend_from_slice(b"\r\n");
    let got = reads(&mut client, &request, 110).await;
    let mut answer = b"?".to_vec();
    answer.extend_from_slice(&request);
    assert_eq!(got.concat_bytes(), answer);
    assert_eq!(
        got.len(),
        29,
        "{:?}",
        got.iter().map(|(t, _)| *t).collect::<Vec<_>>()
    );
    for (k, (at, bytes)) in got.iter().enumerate().take(28) {
        assert_eq!(
            *at,
            Duration::from_millis(16) * u32::try_from(k + 1).unwrap()
        );
        assert!(
            (3..=4).contains(&bytes.len()),
            "chunk {k}: {} bytes",
            bytes.len()
        );
    }
    // Timers count in whole milliseconds: 458.3 ms is written at 459.
    assert_eq!(got[28].0, Duration::from_millis(459));
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// A native UART line writes each frame whole when its last byte has left the wire, and the
/// next no sooner than 3.5 characters later.
#[tokio::test(start_paused = true)]
async fn a_native_uart_line_writes_whole_frames_with_gaps_between_them() {
    let mut config = ServeConfig::new("native");
    config.line = Some(LineConfig {
        adapter: serialtwin_core::Adapter::Native,
        ..LineConfig::uart(9600)
    });
    let (mut client, cancel, task) = start(Counter::default(), config);
    // Three frames of 4 bytes ("0:0\r\n" is 5): 5 characters each at 9600 8N1, 1.04 ms each.
    let got = reads(&mut client, b"DUMP\r\n", 15).await;
    let frames: Vec<&[u8]> = got.iter().map(|(_, b)| b.as_slice()).collect();
    assert_eq!(frames, [b"0:0\r\n".as_slice(), b"1:0\r\n", b"2:0\r\n"]);
    let char_time = 10.0 / 9600.0;
    let mut wire_end = 0.0;
    for (i, (at, _)) in got.iter().enumerate() {
        // Starts 3.5 characters after the frame before ended (the first at once).
        let start = if i == 0 {
            0.0
        } else {
            wire_end + 3.5 * char_time
        };
        wire_end = start + 5.0 * char_time;
        let at = at.as_secs_f64();
        assert!(
            at >= wire_end && at < wire_end + 0.001,
            "frame {i} at {at}, ends {wire_end}"
        );
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
}

trait Concat {
    fn concat_bytes(&self) -> Vec<u8>;
}

impl Concat for Vec<(Duration, Vec<u8>)> {
    fn concat_bytes(&self) -> Vec<u8> {
        self.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }
}

/// Talks on a beat of its own: `TICK n` every second; answers `INC` too.
#[derive(Default)]
struct Talker {
    ticks: u32,
    counter: Counter,
}

impl Device for Talker {
    type Error = Failed;

    fn line(&self) -> LineConfig {
        LineConfig::uart(9600)
    }

    fn handle(&mut self, req: &[u8], ctx: &mut Context, out: &mut Replies) -> Result<(), Failed> {
        self.counter.handle(req, ctx, out)
    }

    fn talks_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    fn talk(&mut self, _: &mut Context, out: &mut Replies) {
        self.ticks += 1;
        out.push(format!("TICK {}", self.ticks));
    }
}

/// A device's beat: what it says each period comes paced like an answer (here one chunk, at
/// its wire end), and a request between beats is answered in between.
#[tokio::test(start_paused = true)]
async fn a_device_talks_on_its_beat_paced_like_an_answer() {
    let t0 = tokio::time::Instant::now();
    let (client, cancel, task) = start(Talker::default(), ServeConfig::new("talker"));
    let mut client = BufReader::new(client);
    let mut heard = Vec::new();
    for _ in 0..2 {
        heard.push((read_line(&mut client).await, t0.elapsed()));
    }
    client.get_mut().write_all(b"INC\r\n").await.unwrap();
    for _ in 0..2 {
        heard.push((read_line(&mut client).await, t0.elapsed()));
    }
    let said: Vec<&str> = heard.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(said, ["TICK 1\r\n", "TICK 2\r\n", "1\r\n", "TICK 3\r\n"]);
    // "TICK n\r\n": 8 bytes, 8.3 ms at 9600 8N1, in one chunk at its wire end (the timer's
    // next millisecond).
    let ms = |(_, t): &(String, Duration)| t.as_millis();
    assert_eq!(ms(&heard[0]), 1_009);
    assert_eq!(ms(&heard[1]), 2_009);
    assert_eq!(ms(&heard[3]), 3_009);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// Says when it speaks (milliseconds since it was made) on a beat of one second, on a 50-baud
/// line where that takes 1.4 s.
struct Clockwork {
    made: tokio::time::Instant,
}

impl Device for Clockwork {
    type Error = Failed;

    fn line(&self) -> LineConfig {
        LineConfig {
            mismatch: serialtwin_core::Mismatch::Ignore,
            ..LineConfig::uart(50)
        }
    }

    fn handle(&mut self, _: &[u8], _: &mut Context, _: &mut Replies) -> Result<(), Failed> {
        Ok(())
    }

    fn talks_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    fn talk(&mut self, _: &mut Context, out: &mut Replies) {
        out.push(format!("T{:04}", self.made.elapsed().as_millis()));
    }
}

/// A beat that comes while the last one's words still wait for the line is skipped: what a
/// device says never piles up behind a line too slow for it, and what is heard is fresh.
#[tokio::test(start_paused = true)]
async fn a_beat_while_the_last_ones_words_still_wait_is_skipped() {
    let t0 = tokio::time::Instant::now();
    let device = Clockwork { made: t0 };
    let (client, cancel, task) = start(device, ServeConfig::new("slow talker"));
    let mut client = BufReader::new(client);
    let mut heard = Vec::new();
    for _ in 0..5 {
        heard.push((read_line(&mut client).await, t0.elapsed().as_millis()));
    }
    // "T1000\r\n" is 7 bytes, 1.4 s on the wire. Said at 1 s (on the wire until 2.4 s), at 2 s
    // (waits until then, on until 3.8 s), at 3 s (waits, on until 5.2 s) and at 4 s (waits
    // until 5.2 s); at 5 s the words of 4 s still wait: skipped. At 6 s they are on the wire:
    // said. Without the skip every second's words would queue and be heard ever staler
    // (T5000 fifth).
    let expected: Vec<(String, u128)> = [
        ("T1000", 2_400),
        ("T2000", 3_800),
        ("T3000", 5_200),
        ("T4000", 6_600),
        ("T6000", 8_000),
    ]
    .iter()
    .map(|(s, t)| (format!("{s}\r\n"), *t))
    .collect();
    assert_eq!(heard, expected);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// An echoing line (an RS-485 adapter that hears itself) gives the client each byte it sends,
/// at once and before any answer: a request written in two pieces is heard in two pieces.
#[tokio::test]
async fn an_echoing_line_gives_the_client_its_own_bytes_before_the_answer() {
    let mut config = ServeConfig::new("echo");
    config.line = Some(LineConfig {
        echo: true,
        ..LineConfig::default()
    });
    let (client, cancel, task) = start(Counter::default(), config);
    let mut client = BufReader::new(client);
    client.get_mut().write_all(b"INC\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "INC\r\n");
    assert_eq!(read_line(&mut client).await, "1\r\n");
    client.get_mut().write_all(b"IN").await.unwrap();
    let mut half = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut half))
        .await
        .expect("the echo at once")
        .unwrap();
    assert_eq!(&half, b"IN");
    client.get_mut().write_all(b"C\r\n").await.unwrap();
    assert_eq!(read_line(&mut client).await, "C\r\n");
    assert_eq!(read_line(&mut client).await, "2\r\n");
    cancel.cancel();
    task.await.unwrap().unwrap();
}
