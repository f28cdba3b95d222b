//! The PI30 command set: which names each variant knows, and how a request is split into a
//! command and its argument.
//!
//! A request is matched against the variant's command names, longest name first, the rest
//! being the argument: `POPM01` is `POPM` with `01`, `QPIGS2` is `QPIGS2` on PI30MAX but
//! `QPIGS` with a stray `2` on PI30 (which has no QPIGS2, so it is unknown there). Queries take
//! no argument unless their definition has one (`QPGSn`, `QEYyyyy`, ...); setters take any
//! argument and validate it themselves (an invalid one gets `(NAK`, as on a real unit).

pub(crate) mod fmt;
pub(crate) mod query;
pub(crate) mod setter;

use super::config::Variant;

/// Which variants know a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// PI30 and PI30MAX.
    Both,
    /// PI30 only (PI30MAX removes it).
    Pi30,
    /// PI30MAX only.
    Max,
}

/// What a query's argument looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    /// No argument.
    None,
    /// Exactly this many digits.
    Digits(usize),
    /// One or more digits.
    Number,
}

/// A query (answered with data) or a setter (answered `(ACK`/`(NAK`); each variant is the
/// command of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Name {
    Qpi,
    Qid,
    Qsid,
    Qvfw,
    Qvfw2,
    Qvfw3,
    Verfw,
    Qpigs,
    Qpigs2,
    Qpiri,
    Qmod,
    Qpiws,
    Qflag,
    Qdi,
    Qmchgcr,
    Qmuchgcr,
    Qboot,
    Qopm,
    Qpgs,
    Q1,
    Qmn,
    Qgmn,
    Qbms,
    Qt,
    Qet,
    Qey,
    Qem,
    Qed,
    Qlt,
    Qly,
    Qlm,
    Qld,
    Qbeqi,
    Qled,
    Qchpt,
    Qoppt,
    Pop,
    Pcp,
    Pbcv,
    Pbdv,
    Psdv,
    Pcvv,
    Pbft,
    Pbt,
    Pgr,
    F,
    Mchgc,
    Mnchgc,
    Muchgc,
    Popm,
    Ppcp,
    Ppvokc,
    Pspb,
    Pe,
    Pd,
    Poplg,
    Pbatcd,
    Dat,
    Pbatmaxdisc,
    Bta,
    Pf,
    Psave,
    Plede,
    Pleds,
    Pledm,
    Pledb,
    Pledt,
    Pledc,
}

/// One entry of the command table: wire name, command, who knows it, and (for queries) the
/// argument; `None` marks a setter.
type Entry = (&'static str, Name, Scope, Option<Arg>);

/// Every command of mppsolar's `pi30.py` and `pi30max.py`.
const TABLE: &[Entry] = &[
    ("QPI", Name::Qpi, Scope::Both, Some(Arg::None)),
    ("QID", Name::Qid, Scope::Both, Some(Arg::None)),
    ("QSID", Name::Qsid, Scope::Max, Some(Arg::None)),
    ("QVFW", Name::Qvfw, Scope::Both, Some(Arg::None)),
    ("QVFW2", Name::Qvfw2, Scope::Pi30, Some(Arg::None)),
    ("QVFW3", Name::Qvfw3, Scope::Max, Some(Arg::None)),
    ("VERFW", Name::Verfw, Scope::Max, Some(Arg::None)),
    ("QPIGS", Name::Qpigs, Scope::Both, Some(Arg::None)),
    ("QPIGS2", Name::Qpigs2, Scope::Max, Some(Arg::None)),
    ("QPIRI", Name::Qpiri, Scope::Both, Some(Arg::None)),
    ("QMOD", Name::Qmod, Scope::Both, Some(Arg::None)),
    ("QPIWS", Name::Qpiws, Scope::Both, Some(Arg::None)),
    ("QFLAG", Name::Qflag, Scope::Both, Some(Arg::None)),
    ("QDI", Name::Qdi, Scope::Both, Some(Arg::None)),
    ("QMCHGCR", Name::Qmchgcr, Scope::Both, Some(Arg::None)),
    ("QMUCHGCR", Name::Qmuchgcr, Scope::Both, Some(Arg::None)),
    ("QBOOT", Name::Qboot, Scope::Both, Some(Arg::None)),
    ("QOPM", Name::Qopm, Scope::Both, Some(Arg::None)),
    ("QPGS", Name::Qpgs, Scope::Both, Some(Arg::Number)),
    ("Q1", Name::Q1, Scope::Both, Some(Arg::None)),
    ("QMN", Name::Qmn, Scope::Both, Some(Arg::None)),
    ("QGMN", Name::Qgmn, Scope::Both, Some(Arg::None)),
    ("QBMS", Name::Qbms, Scope::Both, Some(Arg::None)),
    ("QT", Name::Qt, Scope::Max, Some(Arg::None)),
    ("QET", Name::Qet, Scope::Max, Some(Arg::None)),
    ("QEY", Name::Qey, Scope::Max, Some(Arg::Digits(4))),
    ("QEM", Name::Qem, Scope::Max, Some(Arg::Digits(6))),
    ("QED", Name::Qed, Scope::Max, Some(Arg::Digits(8))),
    ("QLT", Name::Qlt, Scope::Max, Some(Arg::None)),
    ("QLY", Name::Qly, Scope::Max, Some(Arg::Digits(4))),
    ("QLM", Name::Qlm, Scope::Max, Some(Arg::Digits(6))),
    ("QLD", Name::Qld, Scope::Max, Some(Arg::Digits(8))),
    ("QBEQI", Name::Qbeqi, Scope::Max, Some(Arg::None)),
    ("QLED", Name::Qled, Scope::Max, Some(Arg::None)),
    ("QCHPT", Name::Qchpt, Scope::Max, Some(Arg::None)),
    ("QOPPT", Name::Qoppt, Scope::Max, Some(Arg::None)),
    ("POP", Name::Pop, Scope::Both, None),
    ("PCP", Name::Pcp, Scope::Both, None),
    ("PBCV", Name::Pbcv, Scope::Both, None),
    ("PBDV", Name::Pbdv, Scope::Both, None),
    ("PSDV", Name::Psdv, Scope::Both, None),
    ("PCVV", Name::Pcvv, Scope::Both, None),
    ("PBFT", Name::Pbft, Scope::Both, None),
    ("PBT", Name::Pbt, Scope::Both, None),
    ("PGR", Name::Pgr, Scope::Both, None),
    ("F", Name::F, Scope::Both, None),
    ("MCHGC", Name::Mchgc, Scope::Both, None),
    ("MNCHGC", Name::Mnchgc, Scope::Both, None),
    ("MUCHGC", Name::Muchgc, Scope::Both, None),
    ("POPM", Name::Popm, Scope::Both, None),
    ("PPCP", Name::Ppcp, Scope::Both, None),
    ("PPVOKC", Name::Ppvokc, Scope::Both, None),
    ("PSPB", Name::Pspb, Scope::Both, None),
    ("PE", Name::Pe, Scope::Both, None),
    ("PD", Name::Pd, Scope::Both, None),
    ("POPLG", Name::Poplg, Scope::Both, None),
    ("PBATCD", Name::Pbatcd, Scope::Both, None),
    ("DAT", Name::Dat, Scope::Both, None),
    ("PBATMAXDISC", Name::Pbatmaxdisc, Scope::Both, None),
    ("BTA", Name::Bta, Scope::Both, None),
    ("PF", Name::Pf, Scope::Both, None),
    ("PSAVE", Name::Psave, Scope::Both, None),
    ("PLEDE", Name::Plede, Scope::Max, None),
    ("PLEDS", Name::Pleds, Scope::Max, None),
    ("PLEDM", Name::Pledm, Scope::Max, None),
    ("PLEDB", Name::Pledb, Scope::Max, None),
    ("PLEDT", Name::Pledt, Scope::Max, None),
    ("PLEDC", Name::Pledc, Scope::Max, None),
];

/// A recognised request: the command and its argument (ASCII).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Command<'a> {
    /// Which command.
    pub name: Name,
    /// Everything after the command's name.
    pub arg: &'a str,
    /// A setter (answers `(ACK`/`(NAK`) rather than a query.
    pub setter: bool,
}

/// Whether `variant` knows commands of `scope`.
fn in_scope(scope: Scope, variant: Variant) -> bool {
    match scope {
        Scope::Both => true,
        Scope::Pi30 => variant == Variant::Pi30,
        Scope::Max => variant == Variant::Pi30max,
    }
}

/// Recognise `bytes` as a command of `variant`, or `None` if it is unknown there.
pub(crate) fn parse(bytes: &[u8], variant: Variant) -> Option<Command<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (wire, name, _, arg) = TABLE
        .iter()
        .filter(|(wire, _, scope, _)| in_scope(*scope, variant) && text.starts_with(wire))
        .max_by_key(|(wire, ..)| wire.len())?;
    let rest = &text[wire.len()..];
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let fits = match arg {
        None => true,
        Some(Arg::None) => rest.is_empty(),
        Some(Arg::Digits(n)) => rest.len() == *n && digits(rest),
        Some(Arg::Number) => !rest.is_empty() && rest.len() <= 2 && digits(rest),
    };
    fits.then_some(Command {
        name: *name,
        arg: rest,
        setter: arg.is_none(),
    })
}

/// The wire names `variant` knows (queries, then setters), for documentation and tests.
#[must_use]
pub fn command_names(variant: Variant) -> Vec<&'static str> {
    TABLE
        .iter()
        .filter(|(_, _, scope, _)| in_scope(*scope, variant))
        .map(|(wire, ..)| *wire)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_name_wins() {
        let p = |s: &'static str, v| parse(s.as_bytes(), v).map(|c| (c.name, c.arg));
        assert_eq!(p("POPM01", Variant::Pi30), Some((Name::Popm, "01")));
        assert_eq!(p("POPLG02", Variant::Pi30), Some((Name::Poplg, "02")));
        assert_eq!(p("POP02", Variant::Pi30), Some((Name::Pop, "02")));
        assert_eq!(p("QPIRI", Variant::Pi30), Some((Name::Qpiri, "")));
        assert_eq!(p("QPIGS2", Variant::Pi30max), Some((Name::Qpigs2, "")));
        assert_eq!(p("QPIGS2", Variant::Pi30), None);
        assert_eq!(p("QVFW2", Variant::Pi30max), None);
        assert_eq!(p("QPGS12", Variant::Pi30), Some((Name::Qpgs, "12")));
        assert_eq!(p("QPGS", Variant::Pi30), None);
        assert_eq!(p("QED2025030", Variant::Pi30max), None);
        assert_eq!(p("QED20250305", Variant::Pi30), None);
        assert_eq!(p("QXYZ", Variant::Pi30), None);
    }
}
