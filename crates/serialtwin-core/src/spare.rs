//! One spare read buffer and one spare write buffer per thread, lent to the port at work.
//!
//! A port of a big fleet is idle nearly all the time, so it should hold no buffer while idle:
//! 1,000 ports with a read and a write buffer each would spend a few hundred KiB on memory
//! that sits cold. Taking fresh buffers from the allocator for every request costs a handful
//! of allocations and frees per round trip instead, which the benchmark shows as a sizeable
//! share of the serving loop's own work. So each thread keeps one spare of each kind: a port
//! borrows it when it starts reading (or replying) and gives it back as soon as it holds no
//! bytes, and the next port on the thread finds it — allocated and still in the cache.
//!
//! A port that keeps bytes across an await (a partial frame, replies waiting behind a slow
//! handler) simply keeps the buffer; the next port then finds no spare and allocates. A frame
//! a device keeps shares its buffer, so the spare is reused only for the room behind it, and
//! replaced when that runs out.

use std::cell::Cell;

use bytes::BytesMut;

thread_local! {
    static READ: Cell<Option<BytesMut>> = const { Cell::new(None) };
    static WRITE: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// Which of the thread's spares.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Spare {
    /// Received bytes not yet decoded.
    Read,
    /// Encoded replies waiting to be written.
    Write,
}

impl Spare {
    fn slot(self) -> &'static std::thread::LocalKey<Cell<Option<BytesMut>>> {
        match self {
            Self::Read => &READ,
            Self::Write => &WRITE,
        }
    }

    /// Make sure `buf` has room for `additional` more bytes, starting from the thread's spare
    /// if `buf` has no memory of its own.
    pub(crate) fn reserve(self, buf: &mut BytesMut, additional: usize) {
        if buf.capacity() == 0
            && let Some(spare) = self.slot().take()
        {
            *buf = spare;
        }
        buf.reserve(additional);
    }

    /// If `buf` holds no bytes, hand its memory to the thread (replacing an older spare).
    pub(crate) fn give_back(self, buf: &mut BytesMut) {
        if buf.is_empty() && buf.capacity() > 0 {
            self.slot().set(Some(std::mem::take(buf)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_buffer_is_lent_to_the_next_borrower() {
        let mut a = BytesMut::new();
        Spare::Write.reserve(&mut a, 100);
        let memory = a.as_ptr();
        a.extend_from_slice(b"reply");
        // Holding bytes: not given back.
        Spare::Write.give_back(&mut a);
        assert_eq!(&a[..], b"reply");
        a.clear();
        Spare::Write.give_back(&mut a);
        assert_eq!(a.capacity(), 0, "an idle port keeps no memory");

        let mut b = BytesMut::new();
        Spare::Write.reserve(&mut b, 10);
        assert_eq!(b.as_ptr(), memory, "the next port reuses it");
        // The spare is lent, not shared: a third port allocates its own.
        let mut c = BytesMut::new();
        Spare::Write.reserve(&mut c, 10);
        assert_ne!(c.as_ptr(), memory);
    }

    #[test]
    fn a_frame_kept_by_a_device_is_not_overwritten() {
        let mut rx = BytesMut::new();
        Spare::Read.reserve(&mut rx, 64);
        rx.extend_from_slice(b"QPIGS\r");
        let frame = rx.split_to(5).freeze();
        rx.clear();
        Spare::Read.give_back(&mut rx);
        let mut next = BytesMut::new();
        Spare::Read.reserve(&mut next, 64);
        next.extend_from_slice(b"XXXXXXXXXXXX");
        assert_eq!(&frame[..], b"QPIGS");
    }
}
