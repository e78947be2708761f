//! What the tests of every authtrail crate share (a dev-dependency only): waiting for an
//! outcome, the Parquet files of a lake, and an S3-compatible server ([`S3Server`]).
//!
//! [`wait_until`] is the one polling loop of the workspace's tests: the helpers that wait
//! for rows in a lake, a line in a log, a webhook delivery or an HTTP answer all call it,
//! so each says what it waits for and nothing else. Its deadline turns a hang into a
//! failure naming what was last seen; it measures nothing (timings belong in benches).

mod s3;

pub use s3::{S3Server, S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY};

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Ok`, for at most `timeout`, and returns the value.
/// `Err` says what was seen instead; the last one is in the failure message. Polls
/// quickly at first, then every 100 ms.
///
/// ```
/// let mut polls = 0;
/// let value = authtrail_testkit::wait_until("the third poll", std::time::Duration::from_secs(5), || {
///     polls += 1;
///     if polls == 3 { Ok(polls) } else { Err(format!("poll {polls}")) }
/// });
/// assert_eq!(value, 3);
/// ```
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last seen: {seen}"
            ),
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// [`wait_until`] for a condition with nothing to report but whether it holds.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_until(what, timeout, || {
        condition()
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    })
}

/// Waits until something accepts TCP connections at `address` (a broker or server a
/// test started), at most `timeout`.
pub fn wait_for_listener(address: impl ToSocketAddrs + std::fmt::Debug, timeout: Duration) {
    let what = format!("a listener on {address:?}");
    wait_for(&what, timeout, || TcpStream::connect(&address).is_ok());
}

/// The Parquet files below `dir` (a lake, or one of its tables), sorted; none when it
/// does not exist.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "parquet") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "waiting for never; last seen: still 0")]
    fn a_condition_that_never_holds_fails_with_what_was_seen() {
        wait_until::<()>("never", Duration::from_millis(30), || Err("still 0".into()));
    }
}
