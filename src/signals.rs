//! SIGINT and SIGTERM: the first asks for a clean stop within the deadline, a second one
//! exits at once.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::runtime::Handle;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Listens for signals on `runtime` (the process's one runtime). The first SIGINT or
/// SIGTERM cancels `shutdown` (the stages stop consuming, flush, checkpoint, commit and
/// drain webhooks) and arms `deadline` (`run.shutdown_timeout`): past it the process exits
/// with status 1 and whatever is committed. A second signal exits at once with status 130.
pub fn install(
    runtime: &Handle,
    shutdown: CancellationToken,
    deadline: Duration,
) -> anyhow::Result<()> {
    let mut terminate = {
        let _entered = runtime.enter();
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?
    };
    runtime.spawn(async move {
        let mut first = true;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            if !first {
                eprintln!("authtrail: second signal, exiting without flushing");
                std::process::exit(130);
            }
            first = false;
            tracing::info!("stopping (signal again to exit at once)");
            shutdown.cancel();
            arm_deadline(deadline);
        }
    });
    Ok(())
}

/// On a thread of its own, so a runtime busy shutting down cannot hold it up.
fn arm_deadline(deadline: Duration) {
    let started = Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        tracing::error!(deadline = ?deadline, elapsed = ?started.elapsed(), "clean shutdown did not finish within `run.shutdown_timeout`; exiting; uncommitted input is read again at the next start");
        std::process::exit(1);
    });
}
