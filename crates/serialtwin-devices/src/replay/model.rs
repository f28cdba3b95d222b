//! Replay's registry entry: `model = "replay"` serves a capture like any other device.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::{Fallback, OpenError, Replay, ReplayOptions, open};
use crate::registry::{self, Build, BuildError, Built, Model};

/// The `replay` model.
pub static MODEL: Model = Model {
    name: "replay",
    summary: "a recorded device (a capture from `serialtwin tap`): each request gets the \
              replies it got, in recorded order, byte for byte",
    table: "replay",
    example: EXAMPLE,
    framings: &[],
    groups: false,
    max_clock_speed: f64::INFINITY,
    settable: registry::nothing_settable,
    lint: registry::no_lint,
    build,
    units: &[],
};

const EXAMPLE: &str = r#"[[device]]
name = "recorded"
model = "replay"
link = "/tmp/serialtwin/ttyUSB1"
# framing = "pi30"                  # how to cut the capture and frame replies (default: its own)

[device.replay]
capture = "inverter.jsonl"          # written by `serialtwin tap`; relative to this file
fallback = "nak"                    # unseen requests: "silence" (default), "nak" or a frame
timing = false                      # true: each reply after its recorded delay
strict = false                      # true: the recorded order; deviations are logged
cycle = false                       # true: a request's replies start over after the last
"#;

/// `[device.replay]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayConfig {
    /// The capture, relative to the config file.
    capture: Spanned<PathBuf>,
    /// `silence`, `nak` or a frame (escapes allowed).
    fallback: Option<Spanned<String>>,
    #[serde(default)]
    timing: bool,
    #[serde(default)]
    strict: bool,
    #[serde(default)]
    cycle: bool,
}

fn build(b: &Build<'_>) -> Result<Vec<Built>, BuildError> {
    let Some(config) = b.table.deserialize::<ReplayConfig>()? else {
        return Err(b.device_error(
            "model `replay` needs a [device.replay] table naming its capture: \
             capture = \"inverter.jsonl\"",
        ));
    };
    let fallback = match &config.fallback {
        Some(text) => Fallback::parse(text.get_ref())
            .map_err(|e| BuildError::at(text.span(), format!("`fallback`: {e}")))?,
        None => Fallback::Silence,
    };
    let path = b.resolve(config.capture.get_ref());
    let (conversation, framing) = open(&path, b.framing.clone()).map_err(|e| {
        let reason = match e {
            OpenError::Capture(e) => e.to_string(),
            OpenError::NoFraming => format!("{}: {e}: set `framing`", path.display()),
            e => format!("{}: {e}", path.display()),
        };
        BuildError::at(config.capture.span(), reason)
    })?;
    let options = ReplayOptions {
        timing: config.timing,
        fallback,
        strict: config.strict,
        cycle: config.cycle,
    };
    let conversation = Arc::new(conversation);
    Ok((0..b.count)
        .map(|_| {
            Built::new(Replay::new(
                Arc::clone(&conversation),
                framing.clone(),
                options.clone(),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Table;

    #[test]
    fn the_example_builds_from_a_capture_beside_the_config() {
        let dir = std::env::temp_dir().join(format!("replay-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("inverter.jsonl"),
            "{\"type\":\"header\",\"format\":\"serialtwin-capture\",\"version\":1,\
             \"started\":\"2026-06-21T12:00:00.000000Z\",\"framing\":\"crlf\"}\n\
             {\"type\":\"frame\",\"t\":0.1,\"dir\":\"rx\",\"text\":\"PING\"}\n\
             {\"type\":\"frame\",\"t\":0.2,\"dir\":\"tx\",\"text\":\"PONG\\\\r\\\\n\"}\n",
        )
        .unwrap();
        let doc = toml::de::DeTable::parse(EXAMPLE).unwrap().into_inner();
        let device = doc["device"].get_ref().as_array().unwrap()[0].get_ref();
        let mut b = Build::new(Table::new(device.get("replay").unwrap().clone()));
        b.base_dir = Some(&dir);
        b.count = 2;
        let built = build(&b).unwrap();
        assert_eq!(built.len(), 2);
        assert_eq!(built[0].framing.name(), "crlf", "the capture's framing");

        // A capture that is not there: at the `capture` value.
        let text = "capture = 'missing.jsonl'\n";
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir);
        let e = build(&b).unwrap_err();
        assert_eq!(e.at, Some(10..25), "{e}");
        assert!(e.reason.contains("missing.jsonl"), "{e}");
        let text = "capture = 'inverter.jsonl'\nfallback = '\\xZZ'\n";
        let mut b = Build::new(Table::parse(text).unwrap());
        b.base_dir = Some(&dir);
        assert_eq!(build(&b).unwrap_err().at, Some(38..44));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
