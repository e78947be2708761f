//! `authtrail demo`: the whole system on one machine, with nothing else installed.
//!
//! It starts `authtrail run` in-process on the embedded Kafka broker, a local webhook
//! receiver that checks every request's Standard Webhooks signature and prints the
//! revocation it asks for, and the traffic generator: the learning period is sent flat out,
//! then the rest (attacks and their benign look-alikes) is replayed faster than real time,
//! so alerts arrive while one watches the web UI. The demo's own files (config, API key,
//! webhook secret) live in `<lake>/_demo/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use authtrail_gen::{
    Format as GenFormat, GenConfig, Generator, KafkaOutput, Label, NativeTopic, Pace,
};
use authtrail_respond::Secret;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, DemoArgs};
use crate::config::Config;

/// Event time the generated stream covers, ending now: the learning period, then the
/// attacks (the generator places them in the window that ends 30 minutes before the end).
const LEARNING: Duration = Duration::from_secs(3_600);
const STREAM: Duration = Duration::from_secs(9_000);

pub fn command(cli: &Cli, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let lake = cli
        .lake
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("authtrail-demo-{}", now.as_secs())));
    let files = lake.join(authtrail_model::lake::DEMO_DIR);
    std::fs::create_dir_all(&files).with_context(|| format!("creating `{}`", files.display()))?;
    let api_key = format!("demo-{}", hex(&random_bytes::<24>()?));
    let keys_file = write_private(&files.join("api-keys"), &api_key)?;
    let secret_text = format!("whsec_{}", STANDARD.encode(random_bytes::<24>()?));
    let secret_file = write_private(&files.join("webhook-secret"), &secret_text)?;

    // The receiver runs on the process's one runtime, beside the stages, until they stop.
    let runtime = authtrail_pipeline::runtime().context("starting the async runtime")?;
    let receiver = Receiver {
        secret: Secret::parse("demo", &secret_text)?,
        received: AtomicU64::default(),
    };
    let receiver = Arc::new(receiver);
    let receiver_address = runtime.block_on(serve_receiver(receiver.clone()))?;

    let config_file = files.join("authtrail.toml");
    let config_text = demo_config(
        &args.listen,
        &keys_file,
        &secret_file,
        &files.join("broker"),
        receiver_address,
    );
    std::fs::write(&config_file, config_text)
        .with_context(|| format!("writing `{}`", config_file.display()))?;
    let config = Config::load(&config_file)?;
    let shutdown = CancellationToken::new();
    crate::signals::install(
        runtime.handle(),
        shutdown.clone(),
        config.run.shutdown_timeout,
    )?;
    let topic = config.kafka.topics[0].clone();
    let running = crate::run::start(
        config,
        &authtrail_store::LakeLocation::Local(lake.clone()),
        runtime,
        shutdown.clone(),
    )?;

    let generated = GenConfig {
        seed: args.seed,
        start: (now - STREAM).as_secs() as i64 * 1_000_000,
        duration: STREAM,
        learning: LEARNING,
        users: args.users,
        ..GenConfig::default()
    };
    let generator = Generator::new(generated.clone())?;
    let replayed = (STREAM - LEARNING).as_secs_f64();
    let output = KafkaOutput {
        brokers: running.brokers.clone(),
        topic,
        pace: Pace::Replay {
            from: generated.start + LEARNING.as_micros() as i64,
            speedup: replayed / args.replay.as_secs_f64().max(1.0),
        },
        settings: Vec::new(),
    };
    print_banner(&running.address, &api_key, &lake, &config_file, args);

    let stop = Arc::new(AtomicBool::new(false));
    let producer = std::thread::Builder::new()
        .name("authtrail-demo-gen".into())
        .spawn({
            let stop = stop.clone();
            move || {
                let mut generator = generator;
                // The identity provider's events travel as Keycloak writes them, to
                // their own topic, and the keycloak adapter maps them back.
                let keycloak = NativeTopic::default_for(GenFormat::Keycloak)
                    .expect("Keycloak has a default topic");
                let sent = authtrail_gen::send_kafka_routed(&mut generator, &output, &[keycloak], &stop)
                    .map(|delivered| delivered.iter().map(|topic| topic.events).sum::<u64>());
                match &sent {
                    Ok(sent) => println!(
                        "demo: the generator is done ({sent} events, {} attacks); the UI stays up until Ctrl-C",
                        generator.truth().scenarios.iter().filter(|scenario| scenario.label == Label::Attack).count()
                    ),
                    Err(error) => eprintln!("demo: the generator stopped: {error}"),
                }
                sent
            }
        })?;
    if let Some(duration) = args.duration {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            shutdown.cancel();
        });
    }
    let totals = running.wait()?;
    // The broker is gone: a producer still sending would only wait for it.
    stop.store(true, Ordering::Relaxed);
    if producer.is_finished() {
        let _ = producer.join();
    }
    println!(
        "demo: stopped cleanly: {} events, {} rejects, {} alerts; {} webhook requests received; the lake stays at `{}`",
        totals.accepted,
        totals.rejected,
        totals.alerts,
        receiver.received.load(Ordering::Relaxed),
        lake.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The demo's configuration: embedded broker with four partitions (as a real topic has
/// several; the detectors keep a watermark per partition, so the learning period sent
/// flat out may run them far apart) keeping its data in the demo's own directory (one
/// directory to delete afterwards), the generator's learning period, and two webhooks
/// to the local receiver.
fn demo_config(
    listen: &str,
    keys_file: &Path,
    secret_file: &Path,
    broker_dir: &Path,
    receiver: std::net::SocketAddr,
) -> String {
    let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let path = |path: &Path| quoted(&path.display().to_string());
    let secret = path(secret_file);
    format!(
        r#"# Written by `authtrail demo`; see authtrail.example.toml for every setting.
[api]
listen = {listen}
keys_file = {keys}

[kafka]
embedded_partitions = 4
embedded_dir = {broker}

# The identity provider's events, as Keycloak's event listeners write them.
[[kafka.sources]]
topic = "keycloak-events"
format = "keycloak"

[detect.new_service_edge]
learning = "{learning}s"

[[respond.webhooks]]
name = "idp-revoke-token"
url = "http://{receiver}/hooks/idp-revoke-token"
secret_file = {secret}
action = "revoke_token"

[[respond.webhooks]]
name = "idp-disable-principal"
url = "http://{receiver}/hooks/idp-disable-principal"
secret_file = {secret}
action = "disable_principal"
min_severity = "high"
"#,
        listen = quoted(listen),
        keys = path(keys_file),
        broker = path(broker_dir),
        learning = LEARNING.as_secs(),
    )
}

fn print_banner(
    address: &std::net::SocketAddr,
    api_key: &str,
    lake: &Path,
    config: &Path,
    args: &DemoArgs,
) {
    let lake = lake.display();
    println!(
        r#"
authtrail demo
  web UI and API  http://{address}/   API key: {api_key}
  lake            {lake}   (config: {config})
  traffic         {users} users; one hour of learning sent flat out, then attacks and
                  benign look-alikes replayed over about {replay} s; revocations the
                  webhooks receive are printed below. The identity provider's
                  events arrive as Keycloak writes them (topic keycloak-events, read
                  by the keycloak adapter); the services' own as contract events

Try:
  curl -s -H 'authorization: Bearer {api_key}' http://{address}/api/v1/alerts
  authtrail query --lake {lake} "SELECT detector, severity, count(*) AS alerts FROM alerts GROUP BY ALL ORDER BY alerts DESC"
  authtrail query --lake {lake} "SELECT principal, count(DISTINCT target_service) AS targets FROM events WHERE kind = 'authz' GROUP BY principal ORDER BY targets DESC LIMIT 10"
  authtrail query --lake {lake} "SELECT attributes['source_type'] AS keycloak_event, kind, count(*) AS events FROM events WHERE attributes['source_format'] = 'keycloak' GROUP BY ALL ORDER BY events DESC"
Stop with Ctrl-C.
"#,
        config = config.display(),
        users = args.users,
        replay = args.replay.as_secs(),
    );
}

/// The local webhook receiver: what an identity provider's revocation endpoint would be.
struct Receiver {
    secret: Secret,
    received: AtomicU64,
}

async fn serve_receiver(receiver: Arc<Receiver>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the webhook receiver")?;
    let address = listener.local_addr()?;
    let app = Router::new()
        .route("/hooks/{name}", post(receive))
        .with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

/// Checks the signature, prints the revocation, answers 204 (401 on a bad signature).
async fn receive(
    State(receiver): State<Arc<Receiver>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |key: &str| headers.get(key).and_then(|value| value.to_str().ok());
    let (Some(id), Some(timestamp), Some(signature)) = (
        header("webhook-id"),
        header("webhook-timestamp").and_then(|value| value.parse::<i64>().ok()),
        header("webhook-signature"),
    ) else {
        println!("demo: webhook {name}: a request without Standard Webhooks headers, refused");
        return StatusCode::BAD_REQUEST;
    };
    let expected = receiver.secret.sign(id, timestamp, &body);
    if !signature.split(' ').any(|candidate| candidate == expected) {
        println!("demo: webhook {name}: bad signature on {id}, refused");
        return StatusCode::UNAUTHORIZED;
    }
    receiver.received.fetch_add(1, Ordering::Relaxed);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let alert = &body["alert"];
    let text = |value: &serde_json::Value| value.as_str().unwrap_or("-").to_owned();
    let token = match alert["token_id"].as_str() {
        Some(token) => format!(", token {token}"),
        None => String::new(),
    };
    println!(
        "demo: webhook {name}: {} for {}{token} ({} {}, alert {})",
        text(&body["action"]),
        text(&alert["principal"]),
        text(&alert["severity"]),
        text(&alert["detector"]),
        text(&alert["id"]),
    );
    StatusCode::NO_CONTENT
}

/// Random bytes from the kernel's CSPRNG (keys and secrets must not be guessable).
fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes `text` to a file only its owner can read.
fn write_private(path: &Path, text: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing `{}`", path.display()))?;
    writeln!(file, "{text}").with_context(|| format!("writing `{}`", path.display()))?;
    Ok(path.to_owned())
}
