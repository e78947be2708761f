//! `[query]` and `[api]` configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::api::ConnectionLimits;
use crate::Error;

/// `[query]`: limits every query runs under (CLI and HTTP API).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// A query running longer than this is cancelled. Default 60s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Most rows the HTTP API returns for one query (a request's `limit` may lower it).
    /// Default 100000.
    pub max_rows: usize,
    /// Memory the engine may use for joins, sorts and aggregations across running queries,
    /// in MiB; a query needing more fails instead of exhausting the host. Default 4096.
    pub memory_limit_mib: usize,
    /// Threads (DataFusion target partitions) one query uses, and threads of the query
    /// pool; 0 means one per CPU. Default 0.
    pub threads: usize,
    /// Queries running at once; more wait in the queue. Default 4.
    pub concurrency: usize,
    /// Queries waiting for a place beyond `concurrency`; more are refused (HTTP 503).
    /// Default 16.
    pub queue: usize,
    /// Most one function call may build for one batch (`repeat`, `range`, `||` and the
    /// other functions that can amplify their input), in MiB. Default 64.
    pub max_function_output_mib: usize,
    /// Most a result held in memory to be answered (the HTTP API, reports) may take, in
    /// MiB of Arrow data; a query whose result grows past it fails with a clear error
    /// instead of holding, and then encoding, an unbounded answer. Streamed output
    /// (`authtrail query`, exports) is not held and not capped. Default 256.
    pub max_result_mib: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: Duration::from_secs(60),
            max_rows: 100_000,
            memory_limit_mib: 4096,
            threads: 0,
            concurrency: 4,
            queue: 16,
            max_function_output_mib: 64,
            max_result_mib: 256,
        }
    }
}

/// `[api]`: the HTTP API's listener and its bearer keys.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on; `--listen` overrides it. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Environment variable holding API keys, comma-separated. Default `AUTHTRAIL_API_KEYS`.
    pub keys_env: String,
    /// File holding API keys, one per line (blank lines and `#` comments ignored).
    /// Keys from the file and the environment are both accepted.
    pub keys_file: Option<PathBuf>,
    /// Time a client has to send a request's headers. Default 10s.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A connection with no bytes either way for this long is closed. Default 30s more
    /// than the query timeout, at least 60s.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Connections open at once. Default 512.
    pub max_connections: usize,
    /// Connections open at once from one IP address. Default 64.
    pub max_connections_per_peer: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            keys_env: "AUTHTRAIL_API_KEYS".into(),
            keys_file: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: None,
            max_connections: 512,
            max_connections_per_peer: 64,
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only where keys come from, never keys: this struct holds none.
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("keys_env", &self.keys_env)
            .field("keys_file", &self.keys_file)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_peer", &self.max_connections_per_peer)
            .finish()
    }
}

/// Keys shorter than this are refused: a bearer key is the only thing between the network
/// and the whole audit trail.
pub const MIN_KEY_LEN: usize = 16;

impl ApiConfig {
    /// The listener's limits, for queries that may take `query_timeout` to answer.
    pub fn connection_limits(&self, query_timeout: Duration) -> ConnectionLimits {
        let idle_timeout = self
            .idle_timeout
            .unwrap_or((query_timeout + Duration::from_secs(30)).max(Duration::from_secs(60)));
        ConnectionLimits {
            header_timeout: self.header_timeout,
            idle_timeout,
            max_connections: self.max_connections.max(1),
            max_per_peer: self.max_connections_per_peer.max(1),
        }
    }

    /// Collects the API keys from `keys_file` and the `keys_env` variable. At least one key
    /// is required: the API never runs open.
    pub fn load_keys(&self) -> Result<Vec<String>, Error> {
        self.load_keys_with(|name| std::env::var(name).ok())
    }

    /// [`ApiConfig::load_keys`] with the environment read through `env`.
    fn load_keys_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        if let Some(path) = &self.keys_file {
            let text = std::fs::read_to_string(path).map_err(|error| {
                Error::Config(format!("reading `keys_file` `{}`: {error}", path.display()))
            })?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        if let Some(value) = env(&self.keys_env) {
            keys.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .map(str::to_owned),
            );
        }
        if keys.is_empty() {
            return Err(Error::Config(format!(
                "no API keys: set `{}` (comma-separated) or `api.keys_file`",
                self.keys_env
            )));
        }
        if keys.iter().any(|key| key.len() < MIN_KEY_LEN) {
            return Err(Error::Config(format!(
                "API keys must be at least {MIN_KEY_LEN} characters"
            )));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# ops team\nfile-key-0123456789abcdef\n\n").unwrap();
        let env = "AUTHTRAIL_TEST_KEYS_FILE_AND_ENV";
        let config = ApiConfig {
            keys_env: env.into(),
            keys_file: Some(file),
            ..ApiConfig::default()
        };
        let keys = config
            .load_keys_with(|name| (name == env).then(|| "env-key-0123456789abcdef, ".into()))
            .unwrap();
        assert_eq!(
            keys,
            ["file-key-0123456789abcdef", "env-key-0123456789abcdef"]
        );
    }

    #[test]
    fn no_keys_or_short_keys_are_refused() {
        let config = ApiConfig {
            keys_env: "AUTHTRAIL_TEST_KEYS_UNSET".into(),
            ..ApiConfig::default()
        };
        let error = config.load_keys_with(|_| None).unwrap_err().to_string();
        assert!(error.contains("no API keys"), "{error}");
        let error = config
            .load_keys_with(|_| Some("short".into()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("at least 16"), "{error}");
    }
}
