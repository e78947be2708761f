//! The ground truth: which events belong to which attack or look-alike. Kept in a file
//! of its own (JSON lines), never inside the events: a detector must not see labels.

use std::io::{BufRead, Write};
use std::time::Duration;

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::scenario::ScenarioKind;
use crate::Result;

/// Whether a scenario is an attack (alerts wanted) or benign (no alert wanted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Attack,
    Benign,
}

/// The first line: what was generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthMeta {
    /// The generator's seed.
    pub seed: u64,
    /// Event time of the stream's start and end, Unix microseconds.
    pub start: Micros,
    pub end: Micros,
    /// The learning period the scenarios were placed after; the detectors should be
    /// configured with the same `new_service_edge.learning`.
    #[serde(with = "humantime_serde")]
    pub learning: Duration,
    /// Events generated.
    pub events: u64,
}

/// One scenario of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthScenario {
    pub scenario: ScenarioKind,
    pub label: Label,
    /// The detectors that should fire on an attack (empty for a look-alike).
    pub expect: Vec<String>,
    /// For a look-alike, the detector (or report section) it resembles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookalike_of: Option<String>,
    /// The report sections that must list the situation (`trust.tokenless`,
    /// `privilege.dormant`, ...); see README, "Generated traffic and evaluation".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<String>,
    /// The service or client the situation is about, for the trust and privilege
    /// situations and their look-alikes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The principal of its first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Event time of its first and last event (absent when none was generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Micros>,
    /// Ids of its events, in stream order.
    pub event_ids: Vec<String>,
}

/// A stream's ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub meta: TruthMeta,
    pub scenarios: Vec<TruthScenario>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Meta(TruthMeta),
    Scenario(TruthScenario),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum LineRef<'a> {
    Meta(&'a TruthMeta),
    Scenario(&'a TruthScenario),
}

impl Truth {
    /// Writes the truth as JSON lines: the meta line, then one line per scenario.
    pub fn write_jsonl(&self, mut out: impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut out, &LineRef::Meta(&self.meta))?;
        out.write_all(b"\n")?;
        for scenario in &self.scenarios {
            serde_json::to_writer(&mut out, &LineRef::Scenario(scenario))?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Reads a truth file written by [`write_jsonl`](Truth::write_jsonl); `what` names it
    /// in errors.
    pub fn read_jsonl(input: impl BufRead, what: &str) -> Result<Self> {
        let mut meta = None;
        let mut scenarios = Vec::new();
        for (at, line) in input.lines().enumerate() {
            let line = line.map_err(|source| Error::Read {
                what: what.to_owned(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let error = |message: String| Error::Truth {
                what: what.to_owned(),
                line: at + 1,
                message,
            };
            match serde_json::from_str::<Line>(&line).map_err(|e| error(e.to_string()))? {
                Line::Meta(m) if meta.is_none() => meta = Some(m),
                Line::Meta(_) => return Err(error("a second `meta` line".into())),
                Line::Scenario(s) => scenarios.push(s),
            }
        }
        let meta = meta.ok_or_else(|| Error::Truth {
            what: what.to_owned(),
            line: 0,
            message: "no `meta` line".into(),
        })?;
        Ok(Truth { meta, scenarios })
    }
}
