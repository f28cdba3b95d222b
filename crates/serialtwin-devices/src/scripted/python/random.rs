//! pyvisa-sim's `RANDOM(min, max, n)` replies: `n` random floats in `[min, max)`, each
//! formatted by what is left of the reply, joined by `, `.
//!
//! pyvisa-sim 0.7.1 (`component.random_response`) finds the directive with the regex
//! `{RANDOM\((\d*.\d*), (\d*.\d*), (\d*)\).*}` (any character where the point is, so `-5`
//! reads), removes every `RANDOM(...)`, and formats the rest with each value. A reply that
//! says `RANDOM` but holds no such directive raises, as do bounds Python's `float()` cannot
//! read; both are kept, so a device file's broken entries stay broken.

use regex::Regex;

use super::{PyFormat, PyValue};

/// A reply holding `RANDOM(...)`.
#[derive(Clone, Debug)]
pub struct RandomReply {
    /// What it gives, or what Python raises on every use.
    built: Result<Built, String>,
}

#[derive(Clone, Debug)]
struct Built {
    min: f64,
    max: f64,
    count: usize,
    format: PyFormat,
}

/// Whether pyvisa-sim treats `reply` as a random one: it says `RANDOM` anywhere.
#[must_use]
pub fn is_random(reply: &str) -> bool {
    reply.contains("RANDOM")
}

impl RandomReply {
    /// Read `reply` as pyvisa-sim does on each use.
    #[must_use]
    pub fn new(reply: &str) -> Self {
        Self {
            built: build(reply),
        }
    }

    /// Why every use raises, if it does.
    #[must_use]
    pub fn broken(&self) -> Option<&str> {
        self.built.as_ref().err().map(String::as_str)
    }

    /// The fewest bytes any reply has (its values' least renderings and the `, ` between
    /// them), when it is not broken.
    #[must_use]
    pub fn least_len(&self) -> Option<usize> {
        let built = self.built.as_ref().ok()?;
        Some(
            built
                .count
                .saturating_mul(built.format.least_len())
                .saturating_add(2 * built.count.saturating_sub(1)),
        )
    }

    /// One reply.
    ///
    /// # Errors
    /// What Python raises, or a refusal of a reply longer than
    /// [`MAX_RENDERED`](super::format::MAX_RENDERED) (each value's text within it, all of
    /// them not); `out` is then left as it was.
    pub fn render(&self, out: &mut String) -> Result<(), String> {
        let built = self.built.as_ref().map_err(Clone::clone)?;
        let mut buf = String::new();
        for i in 0..built.count {
            if i > 0 {
                buf.push_str(", ");
            }
            // random.uniform(a, b): a + (b - a) * random().
            let value = built.min + (built.max - built.min) * fastrand::f64();
            built.format.render(&PyValue::Float(value), &mut buf)?;
            if buf.len() > super::format::MAX_RENDERED {
                return Err(super::format::too_long());
            }
        }
        out.push_str(&buf);
        Ok(())
    }
}

fn build(reply: &str) -> Result<Built, String> {
    let directive =
        Regex::new(r"\{RANDOM\((\d*.\d*), (\d*.\d*), (\d*)\).*\}").map_err(|e| e.to_string())?;
    let Some(found) = directive.captures(reply) else {
        return Err(
            "Exception: pyvisa-sim: Wrong RANDOM directive, see documentation for correct usage."
                .into(),
        );
    };
    let group = |i: usize| found.get(i).map_or("", |m| m.as_str());
    let bound = |text: &str| {
        super::PyType::Float
            .convert(&PyValue::Str(text.to_owned()))
            .map_err(|e| e.to_string())
            .map(|v| match v {
                PyValue::Float(x) => x,
                PyValue::Int(_) | PyValue::Str(_) => f64::NAN,
            })
    };
    let min = bound(group(1))?;
    let max = bound(group(2))?;
    let count = match super::PyType::Int
        .convert(&PyValue::Str(group(3).to_owned()))
        .map_err(|e| e.to_string())?
    {
        PyValue::Int(n) => {
            usize::try_from(n.max(0)).map_err(|_| format!("RANDOM asks for {n} values"))?
        }
        PyValue::Float(_) | PyValue::Str(_) => 0,
    };
    if count > MAX_COUNT {
        return Err(format!(
            "RANDOM asks for {count} values; this gives at most {MAX_COUNT}"
        ));
    }
    let rest = Regex::new(r"RANDOM\((\d*.\d*), (\d*.\d*), (\d*)\)")
        .map_err(|e| e.to_string())?
        .replace_all(reply, "");
    let format = PyFormat::parse(&rest)?;
    Ok(Built {
        min,
        max,
        count,
        format,
    })
}

/// The most values one reply gives: a reply must fit a frame.
const MAX_COUNT: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn values(reply: &str) -> Vec<f64> {
        let mut out = String::new();
        RandomReply::new(reply).render(&mut out).unwrap();
        out.split(", ").map(|v| v.parse().unwrap()).collect()
    }

    #[test]
    fn the_bundled_files_directives() {
        for _ in 0..100 {
            let one = values("{RANDOM(0, 10.5, 1):.2f}");
            assert_eq!(one.len(), 1);
            assert!((0.0..=10.5).contains(&one[0]));
            let five = values("{RANDOM(0, 10.5, 5):.2f}");
            assert_eq!(five.len(), 5);
            assert!(five.iter().all(|v| (0.0..=10.5).contains(v)));
            let negative = values("{RANDOM(-5, 5, 1):.2f}");
            assert!((-5.0..=5.0).contains(&negative[0]));
        }
        let mut out = String::new();
        RandomReply::new("{RANDOM(0, 10.5, 1):.2f}")
            .render(&mut out)
            .unwrap();
        let (whole, decimals) = out.split_once('.').unwrap();
        assert!(!whole.is_empty() && decimals.len() == 2, "{out}");
        // The bundled file's two broken entries raise on every use.
        for broken in ["RANDOM(0, 10.5, 5){:.2f}", "{RANDOM(0, 10.5):.2f}"] {
            assert!(is_random(broken));
            let reply = RandomReply::new(broken);
            assert!(reply.broken().unwrap().contains("Wrong RANDOM"), "{broken}");
            assert!(reply.render(&mut String::new()).is_err());
        }
        assert!(RandomReply::new("{RANDOM(0, 1, 0):.2f}").broken().is_none());
    }

    #[test]
    fn a_reply_is_bounded() {
        // Found by the `pyvisa_sim` fuzz target: 256 values of 65,536 characters each.
        let wide = RandomReply::new("{RANDOM(0, 1, 256):65536.2f}");
        assert!(wide.broken().is_none());
        let mut out = String::from("kept");
        let e = wide.render(&mut out).unwrap_err();
        assert!(e.contains("longer than 1048576 bytes"), "{e}");
        assert_eq!(out, "kept");
        let mut out = String::new();
        RandomReply::new("{RANDOM(0, 1, 15):65536.2f}")
            .render(&mut out)
            .unwrap();
        assert_eq!(out.len(), 15 * 65536 + 14 * 2);
    }
}
