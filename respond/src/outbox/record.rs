//! The outbox log's lines: `<16 hex digits of SHA-256 of the JSON> <JSON>\n`.
//!
//! The checksum tells a line torn by a crash (or damaged on disk) from a good one; a line
//! is only valid with its newline, so a write cut short is never half-applied.

use std::sync::Arc;

use authtrail_model::Alert;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where an alert stands with one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Recorded; not yet attempted, or moved back by `retry` or `release`.
    Pending,
    /// Attempted and failed in a way worth retrying; the next attempt is scheduled.
    Retrying,
    /// The endpoint accepted it (2xx), or a dry run built and signed it.
    Delivered,
    /// Refused (4xx other than 408/429) or retried past the max age; `retry` resends it.
    Dead,
    /// Over the sink's revocation rate limit; waits for `release`.
    Held,
}

impl State {
    /// The name shown by `authtrail alerts`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Retrying => "retrying",
            State::Delivered => "delivered",
            State::Dead => "dead",
            State::Held => "held",
        }
    }

    /// Parses a state name.
    pub fn parse(name: &str) -> Option<State> {
        [
            State::Pending,
            State::Retrying,
            State::Delivered,
            State::Dead,
            State::Held,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }

    /// Whether a delivery task works on entries in this state.
    pub fn is_active(self) -> bool {
        matches!(self, State::Pending | State::Retrying)
    }
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub(crate) enum Record {
    /// An alert for one webhook, recorded before the offsets of its event are committed.
    Alert {
        webhook: String,
        at: i64,
        alert: Arc<Alert>,
    },
    /// A state transition (the last one of a key wins).
    State {
        id: String,
        webhook: String,
        at: i64,
        state: State,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// When the current round of attempts began (max age counts from it).
        since: i64,
        /// Released by an operator: no longer subject to the rate limit.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        released: bool,
        /// When the alert was first recorded.
        created: i64,
    },
}

const SUM_HEX: usize = 16;

fn checksum(json: &[u8]) -> String {
    hex::encode(&Sha256::digest(json)[..SUM_HEX / 2])
}

/// The line for `record`, newline included.
pub(crate) fn encode(record: &Record) -> Vec<u8> {
    let json = serde_json::to_vec(record).expect("records serialize");
    let mut line = Vec::with_capacity(json.len() + SUM_HEX + 2);
    line.extend_from_slice(checksum(&json).as_bytes());
    line.push(b' ');
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// One line (without its newline) back into a record; `Err` says why it is not valid.
pub(crate) fn decode(line: &[u8]) -> Result<Record, String> {
    if line.len() < SUM_HEX + 2 || line[SUM_HEX] != b' ' {
        return Err("no checksum".into());
    }
    let (sum, json) = (&line[..SUM_HEX], &line[SUM_HEX + 1..]);
    if sum != checksum(json).as_bytes() {
        return Err("checksum mismatch".into());
    }
    serde_json::from_slice(json).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let record = Record::State {
            id: "a1".into(),
            webhook: "idp".into(),
            at: 5,
            state: State::Dead,
            attempts: 2,
            error: Some("HTTP 404".into()),
            since: 1,
            released: false,
            created: 1,
        };
        let mut line = encode(&record);
        line.pop();
        assert!(matches!(
            decode(&line),
            Ok(Record::State { attempts: 2, .. })
        ));
        let at = line.len() - 5;
        line[at] ^= 1;
        assert_eq!(decode(&line).unwrap_err(), "checksum mismatch");
        assert!(decode(b"{\"record\":\"state\"}").is_err());
    }
}
