//! What the tests of every authtrail crate share (a dev-dependency only).
//!
//! [`wait_until`] is the one polling loop of the workspace's tests: the helpers that wait
//! for rows in a lake, a line in a log, a webhook delivery or an HTTP answer all call it,
//! so each says what it waits for and nothing else. Its deadline turns a hang into a
//! failure naming what was last seen; it measures nothing (timings belong in benches).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "waiting for never; last seen: still 0")]
    fn a_condition_that_never_holds_fails_with_what_was_seen() {
        wait_until::<()>("never", Duration::from_millis(30), || Err("still 0".into()));
    }
}
