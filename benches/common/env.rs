//! What every bench reads from its environment: numbers and the Python with DuckDB.

use std::path::PathBuf;
use std::str::FromStr;

/// The number in environment variable `name` (`_` separators allowed), else `default`.
pub fn env_number<T: FromStr>(name: &str, default: T) -> T
where
    T::Err: std::fmt::Debug,
{
    std::env::var(name)
        .ok()
        .map(|value| value.replace('_', "").parse().expect("a number"))
        .unwrap_or(default)
}

/// A file of this checkout, by its path relative to the crate. Read at run time: a bench
/// binary built in another clone sharing the target directory (cargo reuses it when the
/// sources are older than it) would otherwise look in that clone.
#[allow(dead_code)] // not every bench reads a file of the checkout
pub fn repo_file(relative: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join(relative)
}

/// The interpreter that has `duckdb`: `AUTHTRAIL_PYTHON`, else the test virtualenv that
/// `scripts/install-test-deps.sh` sets up.
#[allow(dead_code)] // not every bench compares with DuckDB
pub fn python() -> PathBuf {
    std::env::var_os("AUTHTRAIL_PYTHON").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").expect("HOME is set"))
                .join(".cache/authtrail-venv/bin/python")
        },
        PathBuf::from,
    )
}
