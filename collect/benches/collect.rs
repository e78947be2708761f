//! The collector on loopback into the embedded broker (issue 15): records/s at full
//! speed, then request latency at half that rate.
//!
//! 1. Throughput: `CLIENTS` (default 4) HTTP clients post bodies of `BATCH` (default
//!    1,000) Okta records (JSON lines, ~420 bytes each) to `/api/v1/collect/okta` in a
//!    loop for `SECONDS` (default 10, after 2 s of warm-up); only records answered 200
//!    (acknowledged by the broker) count.
//! 2. Latency: requests of `LATENCY_BATCH` (default 100) records sent on a fixed
//!    schedule at `LATENCY_RATE` records/s (default half of phase 1), each timed from its
//!    scheduled start (no coordinated omission) to its 200; p50, p99, max.
//!
//! Everything shares one machine: the clients, the collector (axum + librdkafka) and the
//! embedded broker (which fsyncs each produce request) with `PARTITIONS` (default 4)
//! partitions; the producer's `linger` is `LINGER_MS` (default 5, the collector's). `cargo bench -p authtrail-collect --bench collect`. Results:
//! `docs/benchmarks.md`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authtrail_broker::{Broker, BrokerConfig};
use authtrail_collect::{router, CollectConfig, Collector};
use bytes::Bytes;
use hdrhistogram::Histogram;

const KEY: &str = "bench-collector-key-0001";
const TOPIC: &str = "okta-events";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// `count` bodies of `batch` distinct Okta records each, as JSON lines.
fn bodies(count: usize, batch: usize) -> Vec<Bytes> {
    (0..count)
        .map(|body| {
            let mut text = String::with_capacity(batch * 450);
            for record in 0..batch {
                text.push_str(&format!(
                    concat!(
                        r#"{{"uuid":"b{}-r{}","published":"2026-01-05T10:00:00.000Z","eventType":"user.session.start","#,
                        r#""actor":{{"id":"00u{}","type":"User","alternateId":"user{}@example.com","displayName":"User {}"}},"#,
                        r#""client":{{"ipAddress":"203.0.113.{}","userAgent":{{"rawUserAgent":"Mozilla/5.0 (X11; Linux x86_64)"}}}},"#,
                        r#""authenticationContext":{{"externalSessionId":"idx{}"}},"outcome":{{"result":"SUCCESS"}},"severity":"INFO"}}"#,
                        "\n"
                    ),
                    body, record, record, record % 500, record % 500, record % 250, record
                ));
            }
            Bytes::from(text)
        })
        .collect()
}

async fn post(client: &reqwest::Client, url: &str, body: Bytes) -> bool {
    match client.post(url).bearer_auth(KEY).body(body).send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            let _ = response.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

fn main() {
    let seconds = env_number("SECONDS", 10);
    let clients = env_number("CLIENTS", 4) as usize;
    let batch = env_number("BATCH", 1000) as usize;
    let latency_batch = env_number("LATENCY_BATCH", 100) as usize;
    let partitions = env_number("PARTITIONS", 4) as i32;

    let dir = tempfile::tempdir().unwrap();
    let mut broker_config = BrokerConfig::new(dir.path().join("broker"), TOPIC, partitions);
    broker_config.max_bytes = 16 << 30;
    let broker = Broker::start(broker_config).unwrap();
    let config = CollectConfig {
        linger: Duration::from_millis(env_number("LINGER_MS", 5)),
        rate_per_key: u32::MAX,
        rate_burst: u32::MAX,
        ..CollectConfig::default()
    };
    let collector =
        Arc::new(Collector::new(config, &broker.bootstrap_servers(), &[KEY.to_owned()]).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(collector)).await });
        format!("http://{address}/api/v1/collect/okta")
    });
    let client = reqwest::Client::new();

    // 1. Throughput.
    let pool = Arc::new(bodies(16, batch));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let run = |duration: Duration, count: bool| {
        let deadline = Instant::now() + duration;
        runtime.block_on(async {
            let tasks: Vec<_> = (0..clients)
                .map(|client_index| {
                    let (client, url, pool) = (client.clone(), url.clone(), pool.clone());
                    let (acknowledged, failed) = (acknowledged.clone(), failed.clone());
                    tokio::spawn(async move {
                        let mut next = client_index;
                        while Instant::now() < deadline {
                            let body = pool[next % pool.len()].clone();
                            next += clients;
                            let ok = post(&client, &url, body).await;
                            if count && ok {
                                acknowledged.fetch_add(batch as u64, Ordering::Relaxed);
                            } else if count {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    };
    run(Duration::from_secs(2), false);
    let started = Instant::now();
    run(Duration::from_secs(seconds), true);
    let elapsed = started.elapsed().as_secs_f64();
    let rate = acknowledged.load(Ordering::Relaxed) as f64 / elapsed;
    let body_bytes = pool[0].len();
    println!(
        "throughput: {rate:.0} records/s acknowledged ({:.1} MB/s of JSON; {clients} clients, {batch} records = {body_bytes} bytes per request, {partitions} partitions), {} requests not answered 200",
        rate * body_bytes as f64 / batch as f64 / 1e6,
        failed.load(Ordering::Relaxed)
    );

    // 2. Latency at half the rate, requests on a fixed schedule.
    let target = env_number("LATENCY_RATE", (rate / 2.0) as u64).max(1) as f64;
    let small = Arc::new(bodies(64, latency_batch));
    let interval = Duration::from_secs_f64(latency_batch as f64 / target);
    let requests = (seconds as f64 / interval.as_secs_f64()) as usize;
    let histogram = runtime.block_on(async {
        let start = Instant::now() + Duration::from_millis(100);
        let tasks: Vec<_> = (0..requests)
            .map(|index| {
                let (client, url) = (client.clone(), url.clone());
                let body = small[index % small.len()].clone();
                let scheduled = start + interval * index as u32;
                tokio::spawn(async move {
                    tokio::time::sleep_until(scheduled.into()).await;
                    let ok = post(&client, &url, body).await;
                    (ok, scheduled.elapsed())
                })
            })
            .collect();
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        let mut failures = 0;
        for task in tasks {
            let (ok, latency) = task.await.unwrap();
            if !ok {
                failures += 1;
            }
            histogram.record(latency.as_micros() as u64).unwrap();
        }
        assert_eq!(failures, 0, "every request of the latency run answered 200");
        histogram
    });
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "latency at {target:.0} records/s ({requests} requests of {latency_batch} records, one every {:.2} ms): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        interval.as_secs_f64() * 1000.0,
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    drop(broker);
}
