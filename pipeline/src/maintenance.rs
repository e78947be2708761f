//! Lake maintenance (retention and compaction) on its own thread while the stages run.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use authtrail_model::time::now_micros;
use authtrail_store::{Lake, MaintenanceConfig};
use tokio_util::sync::CancellationToken;

/// Runs retention and compaction every `maintenance.interval` on its own thread (off with
/// `0s`), until `stop` is cancelled. A run that fails (another `authtrail maintain` holds
/// the lock, a full disk) is logged and tried again next interval.
pub fn spawn_maintenance(
    mut lake: Lake,
    maintenance: &MaintenanceConfig,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    let maintenance = maintenance.clone();
    if maintenance.interval.is_zero() {
        return None;
    }
    let thread = std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || {
            let tick = Duration::from_millis(200);
            let mut next = Instant::now() + maintenance.interval;
            while !stop.is_cancelled() {
                if Instant::now() < next {
                    std::thread::sleep(tick);
                    continue;
                }
                match lake.maintain(&maintenance, now_micros()) {
                    Ok(report) => tracing::info!(?report, "lake maintenance done"),
                    Err(error) => tracing::warn!(%error, "lake maintenance failed"),
                }
                next = Instant::now() + maintenance.interval;
            }
        });
    match thread {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "could not start the maintenance thread");
            None
        }
    }
}
