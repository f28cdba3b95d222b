//! Lanes: quiet ports of devices that answer at once (and send nothing unprompted) are served
//! from a fleet's shared lane, and go back to their own task for everything else — with
//! nothing lost or reordered.
//!
//! Which thread and task answered is visible to the device (`tokio::task::try_id`), so these
//! tests can tell a lane from a port's own task without any hook in the library.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{Counter, PATIENCE, ask, open_client, read_line, wait_for};
use serialtwin::{
    Context, Control, Device, Direction, Fleet, LineConfig, LineEvent, PortSpec, Replies, Seen,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A [`Counter`] (`INC` counts) that also answers `WHO` with the task answering, `LATER` after
/// a pause, `BIG` with 30,000 bytes, `LONG` with 240, and `BOOM` by panicking. Every line
/// event is recorded.
#[derive(Debug, Default)]
struct Quick {
    counter: Counter,
    events: Arc<Mutex<Vec<LineEvent>>>,
}

/// Which thread and task answered (a lane's thread runs no task).
fn task_name() -> String {
    let thread = std::thread::current();
    let task = tokio::task::try_id().map_or_else(|| "none".to_owned(), |id| id.to_string());
    format!("{}/{task}", thread.name().unwrap_or("?"))
}

impl Device for Quick {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        ctx: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        match req {
            b"WHO" => out.push(task_name()),
            b"LATER" => out.push_after(Duration::from_millis(30), "later"),
            b"BIG" => out.push(vec![b'x'; 30_000]),
            b"LONG" => out.push(vec![b'y'; 240]),
            b"BOOM" => panic!("boom"),
            _ => return self.counter.handle(req, ctx, out),
        }
        Ok(())
    }

    fn on_event(&mut self, event: &LineEvent, _: &mut Context) {
        self.events.lock().unwrap().push(event.clone());
    }
}

/// Ask `WHO` four times on each port: the first answer's task, and the last two's.
async fn who_answers(fleet: &Fleet, n: usize) -> (Vec<String>, HashSet<String>) {
    let ports = fleet
        .spawn_all((0..n).map(|i| (PortSpec::new(format!("q{i}")), Quick::default())))
        .await
        .unwrap();
    let mut first = Vec::new();
    let mut later = HashSet::new();
    for port in &ports {
        let mut c = open_client(port.pty());
        first.push(line(&ask(&mut c, b"WHO\r\n").await));
        ask(&mut c, b"WHO\r\n").await;
        for _ in 0..2 {
            later.insert(line(&ask(&mut c, b"WHO\r\n").await));
        }
    }
    fleet.shutdown().await;
    (first, later)
}

fn line(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).trim_end().to_owned()
}

#[tokio::test]
async fn quiet_ports_are_answered_by_one_shared_lane() {
    let (_, later) = who_answers(&Fleet::new(), 8).await;
    assert_eq!(
        later.len(),
        1,
        "later requests of every port, one lane: {later:?}"
    );
    assert!(later.iter().all(|who| on_lane(who)), "{later:?}");
}

/// Whether `WHO`'s answer came from a lane's thread (which runs no task).
fn on_lane(who: &str) -> bool {
    who.starts_with("serialtwin-lane/")
}

#[tokio::test]
async fn without_lanes_every_port_answers_from_its_own_task() {
    let (first, later) = who_answers(&Fleet::without_lanes(), 8).await;
    let first: HashSet<_> = first.into_iter().collect();
    assert_eq!(
        first, later,
        "every request of a port from that port's own task"
    );
    assert_eq!(later.len(), 8);
    assert!(!later.iter().any(|who| on_lane(who)), "{later:?}");
}

#[tokio::test]
async fn a_port_on_a_lane_comes_back_for_control_observers_and_stop() {
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("c"), Quick::default()).unwrap();
    let mut c = open_client(port.pty());
    for i in 1..=3 {
        assert_eq!(ask(&mut c, b"INC\r\n").await, format!("{i}\r\n").as_bytes());
    }
    // A command reaches the client at once: the task took the port back to obey it.
    port.control(Control::SendFrame(Bytes::from_static(b"HELLO")))
        .await
        .unwrap();
    assert_eq!(read_line(&mut c).await, b"HELLO\r\n");
    let (tx, rx) = tokio::sync::oneshot::channel();
    port.control(Control::Set {
        key: "nothing".into(),
        value: "1".into(),
        reply: Some(tx),
    })
    .await
    .unwrap();
    assert!(rx.await.unwrap().is_err(), "the device answered the set");
    // State carried across every hand-over.
    for i in 4..=6 {
        assert_eq!(ask(&mut c, b"INC\r\n").await, format!("{i}\r\n").as_bytes());
    }
    // An observer subscribing while the port is on the lane sees the next request, even one
    // the lane reads before the port's task has run again: this test's task does not yield
    // from the subscription until the lane has had ample time to read it. (The subscription
    // recalls the port, and the lane leaves the request to the task.)
    let mut seen = port.observations();
    assert_eq!(c.try_write(b"INC\r\n").unwrap(), 5);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(read_line(&mut c).await, b"7\r\n");
    wait_for(
        &mut seen,
        |s| matches!(s, Seen::Frame(Direction::Rx, f) if f.as_ref() == b"INC"),
    )
    .await;
    wait_for(
        &mut seen,
        |s| matches!(s, Seen::Frame(Direction::Tx, f) if f.as_ref() == b"7\r\n"),
    )
    .await;
    // Stopping a port whose task sleeps while its lane serves it.
    drop(seen);
    for i in 8..=9 {
        assert_eq!(ask(&mut c, b"INC\r\n").await, format!("{i}\r\n").as_bytes());
    }
    port.stop();
    tokio::time::timeout(PATIENCE, port.stopped())
        .await
        .expect("port stopped");
    fleet.shutdown().await;
}

#[tokio::test]
async fn clients_coming_and_going_are_seen_in_order_while_on_a_lane() {
    let fleet = Fleet::new();
    let device = Quick::default();
    let events = device.events.clone();
    let port = fleet.spawn(PortSpec::new("s"), device).unwrap();
    for round in 0..3u64 {
        let mut c = open_client(port.pty());
        for i in 1..=3 {
            let n = round * 3 + i;
            assert_eq!(ask(&mut c, b"INC\r\n").await, format!("{n}\r\n").as_bytes());
        }
        drop(c);
        // The departure reaches the device although its port sleeps on the lane.
        tokio::time::timeout(PATIENCE, async {
            loop {
                let closed = events
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|e| **e == LineEvent::Closed)
                    .count();
                if closed as u64 > round {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("close seen");
    }
    let sessions: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, LineEvent::Opened | LineEvent::Closed))
        .cloned()
        .collect();
    assert_eq!(
        sessions,
        [
            LineEvent::Opened,
            LineEvent::Closed,
            LineEvent::Opened,
            LineEvent::Closed,
            LineEvent::Opened,
            LineEvent::Closed
        ]
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn what_a_lane_cannot_do_is_done_by_the_task_in_order() {
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("o"), Quick::default()).unwrap();
    let mut c = open_client(port.pty());
    for _ in 0..3 {
        assert_eq!(ask(&mut c, b"INC\r\n").await.last(), Some(&b'\n'));
    }
    // Pipelined: delayed replies and plain ones between them come back in the order asked,
    // each answered once.
    c.write_all(b"INC\r\nINC\r\nLATER\r\nINC\r\nWHO\r\n")
        .await
        .unwrap();
    assert_eq!(read_line(&mut c).await, b"4\r\n");
    assert_eq!(read_line(&mut c).await, b"5\r\n");
    assert_eq!(read_line(&mut c).await, b"later\r\n");
    assert_eq!(read_line(&mut c).await, b"6\r\n");
    read_line(&mut c).await;
    // Back on the lane once quiet.
    let lane = back_on_the_lane(&mut c).await;
    // A reply bigger than the line holds, to a client that reads it late: it arrives whole
    // (the lane leaves the rest to the task, which waits for room).
    c.write_all(b"BIG\r\nINC\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut big = vec![0u8; 30_002];
    tokio::time::timeout(PATIENCE, c.read_exact(&mut big))
        .await
        .expect("big reply in time")
        .unwrap();
    assert!(big[..30_000].iter().all(|&b| b == b'x'));
    assert_eq!(&big[30_000..], b"\r\n");
    assert_eq!(read_line(&mut c).await, b"7\r\n");
    // And the port is back on its lane afterwards.
    assert_eq!(back_on_the_lane(&mut c).await, lane);
    fleet.shutdown().await;
}

/// Ask until a request is answered by a lane rather than the port's own task; which lane.
async fn back_on_the_lane(c: &mut tokio_serial::SerialStream) -> String {
    let asking = async {
        loop {
            let who = line(&ask(c, b"WHO\r\n").await);
            if on_lane(&who) {
                return who;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(PATIENCE, asking)
        .await
        .expect("the port goes back on its lane")
}

/// A client that writes far more than one read takes, all at once: the lane reads until the
/// line is drained (it is woken only by new input), so every request is answered.
#[tokio::test]
async fn a_client_streaming_requests_gets_every_answer_from_a_lane() {
    const N: usize = 3_000;
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("f"), Quick::default()).unwrap();
    let c = open_client(port.pty());
    let (mut rx, mut tx) = tokio::io::split(c);
    let writer = tokio::spawn(async move {
        tx.write_all(&b"INC\r\n".repeat(N)).await.unwrap();
        tx.write_all(b"WHO\r\n").await.unwrap();
        tx
    });
    for i in 1..=N {
        assert_eq!(read_line(&mut rx).await, format!("{i}\r\n").as_bytes());
    }
    let who = line(&read_line(&mut rx).await);
    assert!(on_lane(&who), "served by the lane: {who}");
    writer.await.unwrap();
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_panic_on_a_lane_stops_that_port_only() {
    let fleet = Fleet::new();
    let a = fleet.spawn(PortSpec::new("a"), Quick::default()).unwrap();
    let b = fleet.spawn(PortSpec::new("b"), Quick::default()).unwrap();
    let mut ca = open_client(a.pty());
    let mut cb = open_client(b.pty());
    for i in 1..=3 {
        assert_eq!(
            ask(&mut ca, b"INC\r\n").await,
            format!("{i}\r\n").as_bytes()
        );
        assert_eq!(
            ask(&mut cb, b"INC\r\n").await,
            format!("{i}\r\n").as_bytes()
        );
    }
    ca.write_all(b"BOOM\r\n").await.unwrap();
    tokio::time::timeout(PATIENCE, a.stopped())
        .await
        .expect("the panicking port stopped");
    for i in 4..=6 {
        assert_eq!(
            ask(&mut cb, b"INC\r\n").await,
            format!("{i}\r\n").as_bytes()
        );
    }
    assert!(!b.is_stopped());
    fleet.shutdown().await;
}

/// Ports handed between their tasks and a lane many times a second, on a multi-thread
/// runtime: control commands and pipelined requests at once. Every reply arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_overs_under_load_lose_and_reorder_nothing() {
    let fleet = Fleet::new();
    let ports = fleet
        .spawn_all((0..24).map(|i| (PortSpec::new(format!("h{i}")), Quick::default())))
        .await
        .unwrap();
    let clients = ports.iter().cloned().map(|port| {
        tokio::spawn(async move {
            let mut c = open_client(port.pty());
            let mut next = 1u64;
            for round in 0..40u64 {
                if round % 4 == 0 {
                    // Takes the port back from the lane (and the reply shows it obeyed).
                    port.control(Control::SendFrame(Bytes::from(format!("R{round}"))))
                        .await
                        .unwrap();
                    assert_eq!(read_line(&mut c).await, format!("R{round}\r\n").as_bytes());
                }
                c.write_all(b"INC\r\nINC\r\nINC\r\n").await.unwrap();
                for _ in 0..3 {
                    assert_eq!(read_line(&mut c).await, format!("{next}\r\n").as_bytes());
                    next += 1;
                }
            }
        })
    });
    for c in futures::future::join_all(clients).await {
        c.unwrap();
    }
    fleet.shutdown().await;
}

/// Sends `TICK n` every 100 ms on its own, and answers `PING` at once: a GPS or a meter that
/// streams and can be asked things too.
struct Ticker {
    tick: tokio::time::Interval,
    n: u64,
}

impl Device for Ticker {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        if req == b"PING" {
            out.push("PONG");
        }
        Ok(())
    }

    fn sends_unprompted(&self) -> bool {
        true
    }

    async fn unprompted(&mut self, _: &mut Context) -> Option<serialtwin::Reply> {
        self.tick.tick().await;
        self.n += 1;
        Some(serialtwin::Reply::frame(format!("TICK {}", self.n)))
    }
}

/// A device that streams keeps streaming in a fleet with lanes, while its client polls it:
/// such a port is never lent to a lane (which would hold its unprompted frames back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_streams_and_answers_at_once_keeps_streaming_in_a_lane_fleet() {
    const PERIOD: Duration = Duration::from_millis(100);
    const POLLING: Duration = Duration::from_secs(5);
    let fleet = Fleet::new();
    let ticker = Ticker {
        tick: tokio::time::interval(PERIOD),
        n: 0,
    };
    let port = fleet.spawn(PortSpec::new("gps"), ticker).unwrap();
    let mut c = open_client(port.pty());
    let (mut ticks, mut pongs) = (0u64, 0u64);
    let started = tokio::time::Instant::now();
    let mut poll = tokio::time::interval(PERIOD);
    while started.elapsed() < POLLING {
        poll.tick().await;
        c.write_all(b"PING\r\n").await.unwrap();
        // Read what came since the last poll, up to this poll's answer.
        loop {
            match line(&read_line(&mut c).await).as_str() {
                "PONG" => {
                    pongs += 1;
                    break;
                }
                tick if tick.starts_with("TICK ") => ticks += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let expected = u64::try_from(POLLING.as_millis() / PERIOD.as_millis()).unwrap();
    assert!(
        pongs >= expected * 9 / 10,
        "{pongs} answers of {expected} polls"
    );
    assert!(
        ticks >= expected * 9 / 10,
        "{ticks} unprompted frames of {expected} expected"
    );
    fleet.shutdown().await;
}

/// A [`Quick`] on a paced 2400-baud line, as a PI30's.
#[derive(Debug, Default)]
struct Paced(Quick);

impl Device for Paced {
    type Error = std::convert::Infallible;

    fn line(&self) -> LineConfig {
        LineConfig::uart(2400)
    }

    fn handle(
        &mut self,
        req: &[u8],
        ctx: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        self.0.handle(req, ctx, out)
    }
}

/// How long `bytes` take on a 2400-baud 8N1 wire.
fn wire_time(bytes: usize) -> Duration {
    Duration::from_secs(u64::try_from(bytes).unwrap() * 10) / 2400
}

/// A paced port is served from the lane: its requests answered there, its replies written by
/// the lane's timers, pipelined requests answered as each reply leaves — in order, whole, and
/// no sooner than the wire carries them.
#[tokio::test]
async fn a_paced_port_is_served_from_its_lane_in_order_and_at_the_lines_speed() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("paced"), Paced::default())
        .unwrap();
    let mut c = open_client(port.pty());
    back_on_the_lane(&mut c).await;
    let started = tokio::time::Instant::now();
    c.write_all(b"INC\r\nINC\r\nLONG\r\nINC\r\nWHO\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(read_line(&mut c).await);
    }
    let took = started.elapsed();
    assert_eq!(got[0], b"1\r\n");
    assert_eq!(got[1], b"2\r\n");
    assert_eq!(got[2], [vec![b'y'; 240], b"\r\n".to_vec()].concat());
    assert_eq!(got[3], b"3\r\n");
    let who = line(&got[4]);
    assert!(
        on_lane(&who),
        "a request held back behind paced output is answered by the lane: {who}"
    );
    let total = got.iter().map(Vec::len).sum();
    assert!(took >= wire_time(total), "{took:?} for {total} bytes");
    fleet.shutdown().await;
}

/// A client that leaves while its lane paces a reply to it: the rest of the reply is not
/// written for whoever opens next.
#[tokio::test]
async fn a_client_gone_mid_reply_on_a_lane_leaves_nothing_for_the_next() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("gone"), Paced::default())
        .unwrap();
    let mut first = open_client(port.pty());
    back_on_the_lane(&mut first).await;
    let started = tokio::time::Instant::now();
    first.write_all(b"LONG\r\n").await.unwrap();
    let mut some = [0u8; 10];
    tokio::time::timeout(PATIENCE, first.read_exact(&mut some))
        .await
        .expect("the reply starts")
        .unwrap();
    drop(first);
    // Past the reply's wire time: whatever was still to go would have been written by now.
    tokio::time::sleep(wire_time(242).saturating_sub(started.elapsed())).await;
    let mut next = open_client(port.pty());
    assert_eq!(
        ask(&mut next, b"INC\r\n").await,
        b"1\r\n",
        "nothing of the departed client's reply before the next client's own"
    );
    fleet.shutdown().await;
}

/// Talks every 100 ms on its own — what it says names the thread that said it, 65 ms on its
/// 9600-baud line — and answers `WHO` at once: a GPS or a charge controller with a beat.
#[derive(Debug, Default)]
struct Beating;

impl Device for Beating {
    type Error = std::convert::Infallible;

    fn line(&self) -> LineConfig {
        LineConfig {
            mismatch: serialtwin::Mismatch::Ignore,
            ..LineConfig::uart(9600)
        }
    }

    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        if req == b"WHO" {
            out.push(task_name());
        }
        Ok(())
    }

    fn talks_every(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    fn talk(&mut self, _: &mut Context, out: &mut Replies) {
        out.push(format!("BEAT {}", task_name()));
    }
}

/// A device with a beat is served from its lane: it talks from there (the lane's timers, no
/// task), and what it is asked between beats is answered there too.
#[tokio::test]
async fn a_device_with_a_beat_talks_and_answers_from_its_lane() {
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("beat"), Beating).unwrap();
    let mut c = open_client(port.pty());
    let mut beats_from_the_lane = 0;
    let mut answers_from_the_lane = 0;
    let listening = async {
        while beats_from_the_lane < 5 || answers_from_the_lane < 1 {
            c.write_all(b"WHO\r\n").await.unwrap();
            loop {
                let heard = line(&read_line(&mut c).await);
                if let Some(who) = heard.strip_prefix("BEAT ") {
                    beats_from_the_lane += usize::from(on_lane(who));
                } else {
                    answers_from_the_lane += usize::from(on_lane(&heard));
                    break;
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, listening)
        .await
        .expect("beats and answers from the lane");
    fleet.shutdown().await;
}

/// Echoes each Modbus RTU request it is sent (the framer checks and adds the CRC).
#[derive(Debug, Default)]
struct RtuEcho;

impl Device for RtuEcho {
    type Error = std::convert::Infallible;

    fn framing(&self) -> serialtwin::Framing {
        serialtwin::devices::modbus::rtu::framing()
    }

    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        out.push(req.to_vec());
        Ok(())
    }
}

/// A request the framer can cut only on silence (a Modbus diagnostics request, whose length
/// its header does not give), started on a lane and abandoned: the lane hands the port to its
/// task, whose timer drops the stale start, and the next request is answered. A lane that kept
/// it would glue the two and answer neither.
#[tokio::test]
async fn a_request_cut_only_on_silence_leaves_the_lane_for_its_timer() {
    use serialtwin::devices::modbus::rtu::crc16;
    let with_crc = |payload: &[u8]| {
        let mut adu = payload.to_vec();
        adu.extend_from_slice(&crc16(payload).to_le_bytes());
        adu
    };
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("rtu"), RtuEcho).unwrap();
    let mut c = open_client(port.pty());
    let read = with_crc(&[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
    // Answered (on the lane, once the port is lent).
    for _ in 0..3 {
        c.write_all(&read).await.unwrap();
        let mut echo = vec![0u8; read.len()];
        tokio::time::timeout(PATIENCE, c.read_exact(&mut echo))
            .await
            .expect("an echo")
            .unwrap();
        assert_eq!(echo, read);
    }
    let diagnostics = with_crc(&[0x01, 0x08, 0x00, 0x00, 0xA5, 0x37]);
    c.write_all(&diagnostics[..3]).await.unwrap();
    // Well past the idle timeout (5 ms at this speed).
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.write_all(&diagnostics).await.unwrap();
    let mut echo = vec![0u8; diagnostics.len()];
    tokio::time::timeout(PATIENCE, c.read_exact(&mut echo))
        .await
        .expect("the whole request answered, its abandoned start dropped")
        .unwrap();
    assert_eq!(echo, diagnostics);
    fleet.shutdown().await;
}
