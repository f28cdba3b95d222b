//! The IEEE 488.2 status model of a SCPI instrument: the Standard Event Status Register and
//! its enable mask, the status byte and its service-request enable, and the error queue.
//!
//! Facts (instruments.md §1.2, §1.3; IEEE 488.2 §11; scpi-parser `libscpi/src/error.c`): an
//! error sets the ESR bit of its class (-1xx command error CME 32, -2xx execution error EXE
//! 16, -3xx and positive codes device-dependent DDE 8, -4xx query error QYE 4) and joins the
//! FIFO queue; a full queue's newest entry becomes -350 and later errors are dropped until
//! there is room, their class bit set all the same (scpi-parser `SCPI_ErrorPushEx`). An
//! overflow also sets DDE, the bit instruments.md's table gives -350 (scpi-parser sets none
//! for it). `*ESR?` reads the ESR and clears it. The status byte has bit 2 while the
//! queue holds errors, bit 4 (MAV) while output waits, bit 5 (ESB) when `ESR & ESE` is not 0
//! and bit 6 (MSS) when `STB & SRE & 0xBF` is not 0; reading it clears nothing. `*SRE`
//! ignores its bit 6. `*CLS` clears the ESR and the queue, not ESE and SRE; `*RST` touches
//! none of them.

use std::collections::VecDeque;

use super::header::ScpiError;

/// ESR bit 0: operation complete (`*OPC`).
pub const OPC: u8 = 1;
/// ESR bit 2: query error (-4xx).
pub const QYE: u8 = 4;
/// ESR bit 3: device-dependent error (-3xx and positive codes).
pub const DDE: u8 = 8;
/// ESR bit 4: execution error (-2xx).
pub const EXE: u8 = 16;
/// ESR bit 5: command error (-1xx).
pub const CME: u8 = 32;

/// STB bit 2: the error queue is not empty.
pub const STB_ERRORS: u8 = 4;
/// STB bit 4: message available (output waits to be read).
pub const STB_MAV: u8 = 16;
/// STB bit 5: event summary, `ESR & ESE` not 0.
pub const STB_ESB: u8 = 32;
/// STB bit 6: master summary status.
pub const STB_MSS: u8 = 64;

/// The registers and the error queue.
#[derive(Clone, Debug)]
pub struct Status {
    /// The Standard Event Status Register.
    esr: u8,
    /// Its enable mask (`*ESE`).
    ese: u8,
    /// The service-request enable mask (`*SRE`), bit 6 always clear.
    sre: u8,
    /// Errors, oldest first.
    errors: VecDeque<ScpiError>,
    /// How many errors the queue holds, -350 included.
    depth: usize,
}

impl Status {
    /// A status model with an error queue of `depth` entries (at least 1), everything clear
    /// as at power-on.
    #[must_use]
    pub fn new(depth: usize) -> Self {
        Self {
            esr: 0,
            ese: 0,
            sre: 0,
            errors: VecDeque::new(),
            depth: depth.max(1),
        }
    }

    /// The ESR bit an error of `code` sets.
    #[must_use]
    pub fn class_bit(code: i16) -> u8 {
        match code {
            -199..=-100 => CME,
            -299..=-200 => EXE,
            -499..=-400 => QYE,
            0 => 0,
            _ => DDE,
        }
    }

    /// Set `error`'s ESR bit (the event happened, queued or not) and queue it; a full queue's
    /// newest entry becomes -350 (setting DDE) and the error is dropped.
    pub fn push(&mut self, error: ScpiError) {
        self.esr |= Self::class_bit(error.code);
        if self.errors.len() < self.depth {
            self.errors.push_back(error);
        } else {
            // Lost: the queue overflowed (again), which is a device-dependent event.
            self.esr |= DDE;
            if let Some(last) = self.errors.back_mut() {
                *last = ScpiError::QUEUE_OVERFLOW;
            }
        }
    }

    /// `SYSTem:ERRor[:NEXT]?`: the oldest error, removed, or `0,"No error"`.
    pub fn next_error(&mut self) -> String {
        self.errors
            .pop_front()
            .unwrap_or(ScpiError::new(0, "No error"))
            .to_string()
    }

    /// `SYSTem:ERRor:COUNt?`: how many errors wait.
    #[must_use]
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// `*CLS`: the ESR and the error queue cleared (the enables kept).
    pub fn clear(&mut self) {
        self.esr = 0;
        self.errors.clear();
    }

    /// `*OPC`: everything this synchronous instrument was told is done already.
    pub fn operation_complete(&mut self) {
        self.esr |= OPC;
    }

    /// `*ESR?`: the register, cleared by the reading.
    pub fn read_esr(&mut self) -> u8 {
        std::mem::take(&mut self.esr)
    }

    /// `*ESE n`.
    pub fn set_ese(&mut self, mask: u8) {
        self.ese = mask;
    }

    /// `*ESE?`.
    #[must_use]
    pub fn ese(&self) -> u8 {
        self.ese
    }

    /// `*SRE n` (its bit 6 ignored).
    pub fn set_sre(&mut self, mask: u8) {
        self.sre = mask & !STB_MSS;
    }

    /// `*SRE?`.
    #[must_use]
    pub fn sre(&self) -> u8 {
        self.sre
    }

    /// `*STB?`, `output_waiting` saying whether a reply is queued for the client (MAV).
    #[must_use]
    pub fn stb(&self, output_waiting: bool) -> u8 {
        let mut stb = 0;
        if !self.errors.is_empty() {
            stb |= STB_ERRORS;
        }
        if output_waiting {
            stb |= STB_MAV;
        }
        if self.esr & self.ese != 0 {
            stb |= STB_ESB;
        }
        if stb & self.sre & !STB_MSS != 0 {
            stb |= STB_MSS;
        }
        stb
    }
}
