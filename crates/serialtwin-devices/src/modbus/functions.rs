//! How long a Modbus RTU request is, from its first bytes (`modbus.md` §3; APP §6).
//!
//! A pty carries no timing, so a server cannot wait for 3.5 characters of silence to know
//! that a request has ended: it reads the length off the header, as pymodbus and tokio-modbus
//! do. Most function codes give it, fixed or through a byte count; Diagnostics (FC 8) and codes
//! without an entry here do not, and are cut by a CRC scan instead.

/// The longest RTU ADU: address, a PDU of at most 253 bytes, and the CRC (SL §2.5.1).
pub const MAX_ADU_LEN: usize = 256;

/// What a request's first bytes say about its length (a whole RTU ADU, CRC included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestLen {
    /// The request is this many bytes long (it may be more than [`MAX_ADU_LEN`], when a byte
    /// count claims so: then it is not a request).
    Exact(usize),
    /// The header is not all there: at least this many bytes are needed to tell.
    NeedHeader(usize),
    /// The header does not say. The request is among the lengths `min`, `min + step`,
    /// `min + 2 * step`... up to [`MAX_ADU_LEN`], and the first whose CRC verifies is taken.
    Scan {
        /// The shortest request this code can be.
        min: usize,
        /// The lengths it can take go in steps of this many bytes.
        step: usize,
    },
}

/// The length of the request that starts `adu` (address first), as far as its header says.
///
/// - FC 1–6: 8 bytes. FC 7, 11, 12, 17: 4. FC 22: 10. FC 24: 6.
/// - FC 15/16: 9 + the byte count at `[6]`. FC 20/21: 5 + the byte count at `[2]`.
///   FC 23: 13 + the byte count at `[10]`.
/// - FC 43 with MEI type 14 (read device identification): 7.
/// - FC 8 (Diagnostics): a sub-function (2 bytes) and data of 2 bytes per item (APP §6.8),
///   so 6, 8, 10... bytes: [`RequestLen::Scan`] from 6 in steps of 2.
/// - Any other code (undefined, user-defined, other MEI types, an exception code): at least
///   address, function and CRC: [`RequestLen::Scan`] from 4 in steps of 1.
#[must_use]
pub fn request_len(adu: &[u8]) -> RequestLen {
    let Some(&function) = adu.get(1) else {
        return RequestLen::NeedHeader(2);
    };
    // A byte count at `at`, and the length of everything but the counted bytes.
    let counted = |at: usize, fixed: usize| match adu.get(at) {
        Some(&count) => RequestLen::Exact(fixed + usize::from(count)),
        None => RequestLen::NeedHeader(at + 1),
    };
    match function {
        1..=6 => RequestLen::Exact(8),
        7 | 11 | 12 | 17 => RequestLen::Exact(4),
        8 => RequestLen::Scan { min: 6, step: 2 },
        15 | 16 => counted(6, 9),
        20 | 21 => counted(2, 5),
        22 => RequestLen::Exact(10),
        23 => counted(10, 13),
        24 => RequestLen::Exact(6),
        43 => match adu.get(2) {
            Some(14) => RequestLen::Exact(7),
            Some(_) => RequestLen::Scan { min: 4, step: 1 },
            None => RequestLen::NeedHeader(3),
        },
        _ => RequestLen::Scan { min: 4, step: 1 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_from_the_reference_table() {
        assert_eq!(request_len(&[1]), RequestLen::NeedHeader(2));
        for fc in 1..=6 {
            assert_eq!(request_len(&[1, fc]), RequestLen::Exact(8), "FC {fc}");
        }
        for fc in [7, 11, 12, 17] {
            assert_eq!(request_len(&[1, fc]), RequestLen::Exact(4), "FC {fc}");
        }
        assert_eq!(request_len(&[1, 16, 0, 1, 0, 2]), RequestLen::NeedHeader(7));
        assert_eq!(request_len(&[1, 16, 0, 1, 0, 2, 4]), RequestLen::Exact(13));
        assert_eq!(request_len(&[1, 15, 0, 1, 0, 9, 2]), RequestLen::Exact(11));
        assert_eq!(request_len(&[1, 20]), RequestLen::NeedHeader(3));
        assert_eq!(request_len(&[1, 21, 7]), RequestLen::Exact(12));
        assert_eq!(request_len(&[1, 22]), RequestLen::Exact(10));
        assert_eq!(
            request_len(&[1, 23, 0, 0, 0, 1, 0, 0, 0, 1]),
            RequestLen::NeedHeader(11)
        );
        assert_eq!(
            request_len(&[1, 23, 0, 0, 0, 1, 0, 0, 0, 1, 2]),
            RequestLen::Exact(15)
        );
        assert_eq!(request_len(&[1, 24]), RequestLen::Exact(6));
        assert_eq!(request_len(&[1, 43]), RequestLen::NeedHeader(3));
        assert_eq!(request_len(&[1, 43, 14]), RequestLen::Exact(7));
        assert_eq!(
            request_len(&[1, 43, 13]),
            RequestLen::Scan { min: 4, step: 1 }
        );
        assert_eq!(request_len(&[1, 8]), RequestLen::Scan { min: 6, step: 2 });
        assert_eq!(
            request_len(&[1, 0x41]),
            RequestLen::Scan { min: 4, step: 1 }
        );
    }
}
