//! The Sigma rules engine on the detection bench's mix of identity events
//! (`detect/benches/detect.rs`: 100k active principals), one core: events/s of the
//! built-in detectors alone, of the rules alone (the starter pack, 100 generated
//! detection rules and 10 generated correlation rules), and of both on each event as the
//! pipeline runs them; the rules' heap bytes at the end.
//!
//! `cargo bench -p authtrail-rules` (env `EVENTS` overrides the event count). The mix is
//! a copy of the detector bench's, so both benches measure the same events.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authtrail_detect::{DetectConfig, Detectors};
use authtrail_model::{Alert, Event};
use authtrail_rules::{Pack, RuleSet, Settings};
use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<mimalloc::MiMalloc> = Cap::new(mimalloc::MiMalloc, usize::MAX);

// The detector bench's mix, the same events.
#[path = "../../detect/benches/common/mix.rs"]
mod mix;

use mix::*;

/// 100 detection rules over the mix's fields, each modifier in turn, and 10
/// correlations over four of them; none is trivially true or false on the mix.
fn generated_rules() -> String {
    let mut yaml = String::new();
    for i in 0..100 {
        let selection = match i % 5 {
            0 => format!("    target_service: backend-{i}\n    outcome: deny"),
            1 => format!("    principal|startswith: 'user:u{i}'\n    auth_method: password"),
            2 => format!(
                "    user_agent|contains: 'okhttp/{}'\n    outcome: failure",
                i % 7
            ),
            3 => format!(
                "    source_ip|cidr: 10.0.{}.0/24\n    outcome: failure",
                i % 100
            ),
            _ => format!("    principal|re: '^svc:s{i}[0-9]$'\n    outcome: deny"),
        };
        let _ = write!(
            yaml,
            "title: generated {i}\nid: gen-{i}\nname: gen_{i}\nlevel: low\nlogsource: {{product: authtrail}}\ndetection:\n  selection:\n{selection}\n  filter:\n    principal: 'user:u1'\n  condition: selection and not filter\n---\n"
        );
    }
    yaml.push_str("title: authn failure\nid: base-failure\nname: base_failure\nlogsource: {product: authtrail, category: authn}\ndetection:\n  selection: {outcome: failure}\n  condition: selection\n---\n");
    yaml.push_str("title: authz deny\nid: base-deny\nname: base_deny\nlogsource: {product: authtrail, category: authz}\ndetection:\n  selection: {outcome: deny}\n  condition: selection\n---\n");
    for i in 0..10 {
        let body = match i % 4 {
            0 => "  type: event_count\n  rules: [base_failure]\n  group-by: [principal]\n  timespan: 5m\n  condition: {gte: 5}",
            1 => "  type: value_count\n  rules: [base_deny]\n  group-by: [principal]\n  timespan: 10m\n  condition: {gte: 3, field: target_service}",
            2 => "  type: temporal_ordered\n  rules: [base_failure, base_deny]\n  group-by: [principal]\n  timespan: 10m",
            _ => "  type: event_count\n  rules: [base_deny]\n  group-by: [source_ip]\n  timespan: 1m\n  condition: {gte: 3}",
        };
        let _ = write!(yaml, "title: correlation {i}\nid: corr-{i}\nname: corr_{i}\nlevel: medium\ncorrelation:\n{body}\n---\n");
    }
    yaml
}

fn pack() -> Pack {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pack");
    let mut sources: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| authtrail_rules::is_rule_file(path))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect();
    sources.push((PathBuf::from("generated.yml"), generated_rules()));
    Pack::from_sources(&sources).unwrap_or_else(|error| panic!("{error}"))
}

/// What one run measured.
struct Run {
    wall: Duration,
    on_cpu: Option<Duration>,
    alerts: u64,
    /// FNV-1a over the alerts' ids in the order raised: a change that keeps it raised
    /// the same alerts in the same order.
    digest: u64,
}

/// Runs `observe` on `events` events of the mix, timing batches of observe calls only.
fn run(events: u64, mut observe: impl FnMut(&Event<'_>, &mut Vec<Alert>)) -> Run {
    let mut world = World::new();
    let mut alerts = Vec::new();
    let mut batch = Vec::with_capacity(4_096);
    let (mut wall, mut cpu, mut raised, mut done) = (Duration::ZERO, Some(Duration::ZERO), 0, 0);
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    while done < events {
        batch.clear();
        let n = 4_096.min(events - done);
        for _ in 0..n {
            batch.push(world.next().into_owned());
        }
        let (start, start_cpu) = (Instant::now(), on_cpu());
        for event in &batch {
            observe(event, &mut alerts);
            raised += alerts.len() as u64;
            for alert in alerts.drain(..) {
                for byte in alert.id.bytes().chain([b'\n']) {
                    digest = (digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        wall += start.elapsed();
        cpu = match (cpu, start_cpu, on_cpu()) {
            (Some(total), Some(start), Some(end)) => Some(total + end.saturating_sub(start)),
            _ => None,
        };
        done += n;
    }
    Run {
        wall,
        on_cpu: cpu,
        alerts: raised,
        digest,
    }
}

fn report(name: &str, events: u64, run: &Run) {
    let rate = |time: Duration| events as f64 / time.as_secs_f64();
    let on_cpu = run
        .on_cpu
        .map_or("n/a".to_owned(), |time| format!("{:.0}", rate(time)));
    println!(
        "{name:<28} {:>10.0} events/s wall, {on_cpu:>10} events/s on CPU, {} alerts (digest {:016x})",
        rate(run.wall),
        run.alerts,
        run.digest
    );
}

fn main() {
    let events: u64 = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let pack = Arc::new(pack());
    println!(
        "{events} events; {} detection and {} correlation rules",
        pack.detections.len(),
        pack.correlations.len()
    );
    let config = DetectConfig::default();
    let settings = Settings {
        allowed_lateness: config.allowed_lateness,
        max_keys: config.max_keys,
        ..Settings::default()
    };

    let mut detectors = Detectors::new(&config).unwrap();
    let builtins = run(events, |event, alerts| detectors.observe(event, alerts));
    report("built-ins", events, &builtins);

    let held_before = ALLOCATOR.allocated();
    let mut rules = RuleSet::new(Arc::clone(&pack), settings);
    let alone = run(events, |event, alerts| rules.observe(event, alerts));
    let held = ALLOCATOR.allocated().saturating_sub(held_before);
    report("rules", events, &alone);
    let stats = rules.stats();
    println!(
        "rules state: {:.1} MiB heap, {} correlation groups, {} evicted, checkpoint {:.1} MiB",
        held as f64 / (1 << 20) as f64,
        stats.groups,
        stats.evicted,
        rules.checkpoint().len() as f64 / (1 << 20) as f64
    );
    drop(rules);

    let mut detectors = Detectors::new(&config).unwrap();
    let mut rules = RuleSet::new(pack, settings);
    let both = run(events, |event, alerts| {
        detectors.observe(event, alerts);
        rules.observe(event, alerts);
    });
    report("built-ins + rules", events, &both);
}
