//! All detectors on a realistic mix of identity events from 100k active principals, one
//! core: events/s through `Detectors::observe`, event-in -> alerts-out latency
//! quantiles, and the memory the detector state takes per active principal.
//!
//! Memory is measured by a counting global allocator: the heap bytes the detectors hold
//! at the end of the run (requested sizes, live allocations only; events are made in
//! batches and dropped, alerts are drained, so neither counts). The growth of the
//! process's resident set is printed next to it (it includes the allocator's own
//! overhead and pages freed but not returned), and the checkpoint size.
//!
//! The run ends with a digest of every alert (id, detector, severity, evidence) and of
//! every table's live / expired / evicted counts: an optimisation must leave it
//! unchanged. With `EXPECT_DIGEST` set the bench exits non-zero when it differs.
//!
//! Throughput is printed twice: per wall-clock second, and per second the thread was
//! on a CPU (the scheduler's accounting), which stays comparable when other processes
//! share the cores.
//!
//! `cargo bench -p authtrail-detect` (env `EVENTS` overrides the event count).

use std::hint::black_box;
use std::time::{Duration, Instant};

use authtrail_detect::{DetectConfig, Detectors};
use cap::Cap;
use hdrhistogram::Histogram;
use sha2::{Digest, Sha256};

/// mimalloc, the allocator the `authtrail` binary ships with, counting the bytes it
/// holds (requested sizes, so mimalloc's own overhead is not included).
#[global_allocator]
static ALLOCATOR: Cap<mimalloc::MiMalloc> = Cap::new(mimalloc::MiMalloc, usize::MAX);

/// Heap bytes held now (requested sizes of live allocations).
fn held_bytes() -> isize {
    ALLOCATOR.allocated() as isize
}

#[path = "common/mix.rs"]
mod mix;

use mix::*;

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let events: u64 = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    // `[detect]` settings as TOML (`DETECT_CONFIG='validation_gap.enabled = false'`), to
    // measure what one detector adds; the shipped defaults without it.
    let config: DetectConfig = match std::env::var("DETECT_CONFIG") {
        Ok(settings) => toml::from_str(&settings).expect("DETECT_CONFIG holds [detect] settings"),
        Err(_) => DetectConfig::default(),
    };
    let mut world = World::new();
    let mut detectors = Detectors::new(&config).expect("default config is valid");
    let mut alerts = Vec::new();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut raised = 0u64;
    let mut by_detector = std::collections::BTreeMap::<String, u64>::new();
    let mut busy = Duration::ZERO;
    let mut busy_on_cpu = Some(Duration::ZERO);

    // Throughput: time batches of observe calls; latency: time every 16th call on its
    // own (an `Instant::now` pair per event would distort the throughput figure).
    let mut digest = Sha256::new();
    let resident_before = resident_bytes();
    let held_before = held_bytes();
    let mut batch = Vec::with_capacity(4_096);
    let mut done = 0u64;
    while done < events {
        batch.clear();
        let n = 4_096.min(events - done);
        for _ in 0..n {
            batch.push(world.next().into_owned());
        }
        let start = Instant::now();
        let start_on_cpu = on_cpu();
        for (i, event) in batch.iter().enumerate() {
            if i % 16 == 0 {
                let one = Instant::now();
                detectors.observe(event, &mut alerts);
                latency
                    .record(one.elapsed().as_nanos().max(1) as u64)
                    .unwrap();
            } else {
                detectors.observe(event, &mut alerts);
            }
            raised += alerts.len() as u64;
            for alert in alerts.drain(..) {
                for field in [
                    alert.id.as_str(),
                    alert.detector.as_str(),
                    alert.severity.as_str(),
                ] {
                    digest.update(field.as_bytes());
                    digest.update([0]);
                }
                for id in &alert.evidence_ids {
                    digest.update(id.as_bytes());
                    digest.update([1]);
                }
                *by_detector.entry(alert.detector).or_default() += 1;
            }
        }
        busy += start.elapsed();
        busy_on_cpu = match (busy_on_cpu, start_on_cpu, on_cpu()) {
            (Some(total), Some(start), Some(end)) => Some(total + end.saturating_sub(start)),
            _ => None,
        };
        done += n;
    }
    drop(batch);
    let held = (held_bytes() - held_before).max(0) as usize;
    let resident_after = resident_bytes();
    let stats = detectors.stats();
    let checkpoint = black_box(detectors.checkpoint());
    for table in &stats.tables {
        let state = table.state;
        digest.update(table.name.as_bytes());
        for count in [state.live_keys as u64, state.expired, state.evicted] {
            digest.update(count.to_le_bytes());
        }
    }
    for count in [
        stats.events,
        stats.late_events,
        stats.alerts,
        stats.suppressed,
    ] {
        digest.update(count.to_le_bytes());
    }
    let digest = hex::encode(&digest.finalize()[..8]);

    let state = resident_after.saturating_sub(resident_before);
    println!("events:              {done}");
    println!(
        "alerts raised:       {raised} (suppressed {})",
        stats.suppressed
    );
    println!(
        "throughput:          {:.0} events/s (one core)",
        done as f64 / busy.as_secs_f64()
    );
    if let Some(on_cpu) = busy_on_cpu {
        println!(
            "throughput on-CPU:   {:.0} events/s (per second this thread ran)",
            done as f64 / on_cpu.as_secs_f64()
        );
    }
    for q in [0.5, 0.99, 0.999] {
        println!(
            "latency p{:<5}       {:.2} µs",
            q * 100.0,
            latency.value_at_quantile(q) as f64 / 1_000.0
        );
    }
    println!(
        "latency max:         {:.2} µs",
        latency.max() as f64 / 1_000.0
    );
    println!(
        "state (heap held):   {:.1} MiB = {:.0} bytes per active principal",
        held as f64 / (1 << 20) as f64,
        held as f64 / PRINCIPALS as f64
    );
    println!(
        "state (RSS growth):  {:.1} MiB = {:.0} bytes per active principal",
        state as f64 / (1 << 20) as f64,
        state as f64 / PRINCIPALS as f64
    );
    println!(
        "checkpoint:          {:.1} MiB = {:.0} bytes per active principal",
        checkpoint.len() as f64 / (1 << 20) as f64,
        checkpoint.len() as f64 / PRINCIPALS as f64
    );
    for table in &stats.tables {
        println!(
            "  {:<26} live {:>8}  expired {:>8}  evicted {:>3}",
            table.name, table.state.live_keys, table.state.expired, table.state.evicted
        );
    }
    println!("alerts by detector:  {by_detector:?}");
    println!("digest:              {digest} (alerts and table counts)");
    if let Ok(expected) = std::env::var("EXPECT_DIGEST") {
        if expected != digest {
            eprintln!("digest {digest} differs from the expected {expected}");
            std::process::exit(1);
        }
    }
}
