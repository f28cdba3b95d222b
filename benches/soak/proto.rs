//! What the parent, the server child and the client children agree on: the ports' kinds and
//! roles, a request and its answer, and the counters a client reports.

use std::fmt::Write as _;

/// Ports in the fleet.
pub(crate) const PORTS: usize = 1000;

/// How a port is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A sync [`serialtwin::Device`] in a fleet with lanes, unpaced: served by a lane.
    Lane,
    /// The same at 9600 8N1, paced: lent to a lane while quiet, paced replies on its task.
    Lane9600,
    /// An async device (`Awaiting`), unpaced: its own task.
    Async,
    /// The same at 2400 8N1, paced.
    Async2400,
    /// A sync device in a `Fleet::without_lanes()`, unpaced: its own task.
    Task,
    /// The same at 9600 8N1, paced.
    Task9600,
}

impl Kind {
    /// Every kind, in the order the ports are laid out.
    pub(crate) const ALL: [Self; 6] = [
        Self::Lane,
        Self::Lane9600,
        Self::Async,
        Self::Async2400,
        Self::Task,
        Self::Task9600,
    ];

    /// The kind's name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Lane => "lane",
            Self::Lane9600 => "lane-9600",
            Self::Async => "async",
            Self::Async2400 => "async-2400",
            Self::Task => "task",
            Self::Task9600 => "task-9600",
        }
    }

    /// How many of the [`PORTS`] are of this kind.
    pub(crate) const fn ports(self) -> usize {
        match self {
            Self::Lane => 350,
            Self::Lane9600 | Self::Async => 150,
            Self::Async2400 => 50,
            Self::Task => 200,
            Self::Task9600 => 100,
        }
    }

    /// The paced line's baud rate, if paced.
    pub(crate) fn baud(self) -> Option<u32> {
        match self {
            Self::Lane9600 | Self::Task9600 => Some(9600),
            Self::Async2400 => Some(2400),
            Self::Lane | Self::Async | Self::Task => None,
        }
    }

    /// The kind's index in [`Kind::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The kind of port `port`: the kinds in blocks, in [`Kind::ALL`]'s order.
    pub(crate) fn of(port: usize) -> Self {
        let mut start = 0;
        for kind in Self::ALL {
            start += kind.ports();
            if port < start {
                return kind;
            }
        }
        Self::Task9600
    }
}

const _: () = {
    let mut total = 0;
    let mut i = 0;
    while i < Kind::ALL.len() {
        total += Kind::ALL[i].ports();
        i += 1;
    }
    assert!(total == PORTS);
};

/// Who talks to a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A client that is never killed: polls, reopens now and then; every answer owed.
    Steady,
    /// A client that is killed now and then (mid-request), and replaced.
    Killable,
    /// A client on ports that get faults and unplugs; its answers are owed only between a
    /// `clear` (and the resync after it) and the next fault.
    Faulted,
}

impl Role {
    /// The role of port `port`: by its last digit, so every kind has every role (7 in 10
    /// steady, 2 killable, 1 faulted).
    pub(crate) fn of(port: usize) -> Self {
        match port % 10 {
            7 | 8 => Self::Killable,
            9 => Self::Faulted,
            _ => Self::Steady,
        }
    }

    /// The role's name, on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Killable => "killable",
            Self::Faulted => "faulted",
        }
    }

    /// The role named `name`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        [Self::Steady, Self::Killable, Self::Faulted]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// The port's name (and its link's file name).
pub(crate) fn port_name(port: usize) -> String {
    format!("p{port:04}")
}

/// The request's payload for sequence number `seq`: 0 to 40 letters, different for each.
fn payload(seq: u64, out: &mut Vec<u8>) {
    let len = (seq * 7 + 3) % 41;
    for j in 0..len {
        // Always below 26.
        out.push(b'a' + u8::try_from((seq + j) % 26).unwrap_or(0));
    }
}

/// Request number `seq`: `Q <seq> <payload>\r\n`.
pub(crate) fn request(seq: u64) -> Vec<u8> {
    let mut r = format!("Q {seq} ").into_bytes();
    payload(seq, &mut r);
    r.extend_from_slice(b"\r\n");
    r
}

/// The answer port `name` owes to request `seq`: `R <name> <seq> <payload>\r\n` (the device
/// answers `Q <rest>` with `R <its name> <rest>`).
pub(crate) fn answer(name: &str, seq: u64) -> Vec<u8> {
    let mut r = format!("R {name} {seq} ").into_bytes();
    payload(seq, &mut r);
    r.extend_from_slice(b"\r\n");
    r
}

/// What one client counted for the ports of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Requests written in full while owed an answer.
    pub(crate) owed: u64,
    /// Owed requests answered correctly, byte for byte.
    pub(crate) answered: u64,
    /// Owed requests answered wrongly (bytes that differ, too many or too few).
    pub(crate) wrong: u64,
    /// Owed requests not answered in time (or whose port hung up on them).
    pub(crate) missed: u64,
    /// Bytes that came on a port where no answer was owed (not during a fault).
    pub(crate) stray: u64,
    /// Requests written in full while exposed to faults (no answer owed).
    pub(crate) exposed: u64,
    /// Exposed requests answered correctly anyway.
    pub(crate) exposed_ok: u64,
    /// Closes and reopens of a port.
    pub(crate) reopens: u64,
    /// Opens of a port owed answers that failed (retried).
    pub(crate) open_errors: u64,
}

impl Counts {
    const FIELDS: usize = 9;

    fn fields(&self) -> [u64; Self::FIELDS] {
        [
            self.owed,
            self.answered,
            self.wrong,
            self.missed,
            self.stray,
            self.exposed,
            self.exposed_ok,
            self.reopens,
            self.open_errors,
        ]
    }

    fn from_fields(f: &[u64]) -> Self {
        Self {
            owed: f[0],
            answered: f[1],
            wrong: f[2],
            missed: f[3],
            stray: f[4],
            exposed: f[5],
            exposed_ok: f[6],
            reopens: f[7],
            open_errors: f[8],
        }
    }

    /// Add `other` to these.
    pub(crate) fn add(&mut self, other: &Self) {
        let (a, b) = (self.fields(), other.fields());
        let mut sum = [0; Self::FIELDS];
        for i in 0..Self::FIELDS {
            sum[i] = a[i] + b[i];
        }
        *self = Self::from_fields(&sum);
    }

    /// Every request written in full, owed or exposed.
    pub(crate) fn requests(&self) -> u64 {
        self.owed + self.exposed
    }

    /// Every correct answer received, owed or not.
    pub(crate) fn answers(&self) -> u64 {
        self.answered + self.exposed_ok
    }
}

/// A client's counts, one [`Counts`] per [`Kind`].
pub(crate) type PerKind = [Counts; Kind::ALL.len()];

/// `per_kind` as one line's words (after the line's verb).
pub(crate) fn format_counts(per_kind: &PerKind) -> String {
    let mut s = String::new();
    for c in per_kind {
        for f in c.fields() {
            let _ = write!(s, " {f}");
        }
    }
    s
}

/// The words [`format_counts`] wrote.
pub(crate) fn parse_counts(words: &str) -> Option<PerKind> {
    let numbers: Vec<u64> = words
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if numbers.len() != Counts::FIELDS * Kind::ALL.len() {
        return None;
    }
    let mut per_kind = PerKind::default();
    for (i, c) in per_kind.iter_mut().enumerate() {
        *c = Counts::from_fields(&numbers[i * Counts::FIELDS..(i + 1) * Counts::FIELDS]);
    }
    Some(per_kind)
}

/// A small seeded random source (splitmix64), so that a run can be repeated.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
