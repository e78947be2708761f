//! The real broker (a tansu process, or with `BROKER=embedded` authtrail's embedded broker
//! in the bench's own process, as `authtrail run` has it), topics, a producer keyed by
//! principal, and the plain consumer that shows what the transport alone can do.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// A tansu broker with in-memory storage on a free port, killed when dropped; or the
/// embedded broker, stopped when dropped.
pub struct Broker {
    pub address: String,
    child: Option<Child>,
    embedded: Option<authtrail_broker::Broker>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.embedded.take());
    }
}

/// The topics the bench uses, created up front in the embedded broker (it creates topics
/// only at start).
const TOPICS: [&str; 2] = ["e2e", "latency"];

fn tansu() -> PathBuf {
    std::env::var_os("AUTHTRAIL_TANSU").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").expect("HOME is set"))
                .join(".cache/authtrail-tools/bin/tansu")
        },
        PathBuf::from,
    )
}

impl Broker {
    /// `BROKER=embedded`: the embedded broker; otherwise tansu.
    pub fn start(log_dir: &Path, partitions: i32) -> Broker {
        if std::env::var("BROKER").is_ok_and(|kind| kind == "embedded") {
            return Broker::embedded(log_dir, partitions);
        }
        Broker::tansu(log_dir)
    }

    /// Which broker this is, for the report.
    pub fn name(&self) -> &'static str {
        if self.embedded.is_some() {
            "the embedded broker"
        } else {
            "tansu"
        }
    }

    fn embedded(log_dir: &Path, partitions: i32) -> Broker {
        let mut config =
            authtrail_broker::BrokerConfig::new(log_dir.join("broker"), TOPICS[0], partitions);
        config.topics = TOPICS.iter().map(|t| (t.to_string(), partitions)).collect();
        // The whole day of traffic stays (the plain consumer never commits).
        config.max_bytes = 64 << 30;
        let embedded = authtrail_broker::Broker::start(config).unwrap();
        Broker {
            address: embedded.bootstrap_servers(),
            child: None,
            embedded: Some(embedded),
        }
    }

    fn tansu(log_dir: &Path) -> Broker {
        let tansu = tansu();
        assert!(
            tansu.exists(),
            "`{}` is missing: run scripts/install-test-deps.sh (or set AUTHTRAIL_TANSU)",
            tansu.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(log_dir.join("tansu.log")).unwrap();
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let address = format!("127.0.0.1:{port}");
        let broker = Broker {
            address,
            child: Some(child),
            embedded: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&broker.address).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        if self.embedded.is_some() {
            assert!(TOPICS.contains(&topic), "`{topic}` is not created at start");
            return;
        }
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let results = runtime
            .block_on(admin.create_topics(&[new], &AdminOptions::new()))
            .unwrap();
        for result in results {
            result.unwrap();
        }
    }

    pub fn producer(&self) -> ThreadedProducer<DefaultProducerContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "200000")
            .create()
            .unwrap()
    }
}

/// Sends one message keyed by `key`, waiting for room when the local queue is full.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    payload: &str,
) {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((error, _)) => panic!("produce: {error}"),
        }
    }
}

/// Produces `(key, json)` pairs flat out; returns the time taken to deliver all of them.
pub fn produce_all(broker: &Broker, topic: &str, events: &[(String, String)]) -> Duration {
    let producer = broker.producer();
    let started = Instant::now();
    for (key, json) in events {
        send(&producer, topic, key, json);
    }
    producer.flush(Duration::from_secs(300)).unwrap();
    started.elapsed()
}

/// What the plain consumer measured.
pub struct Drained {
    /// From subscribing to the last message.
    pub total: Duration,
    /// From the first message to the last.
    pub streaming: Duration,
    pub bytes: u64,
}

/// A plain consumer (librdkafka, as the pipeline's source uses it) reads `count`
/// messages and does nothing with them: the transport's ceiling on this machine.
pub fn drain(broker: &Broker, topic: &str, count: u64) -> Drained {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .set("group.id", "plain-consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("queued.max.messages.kbytes", "16384")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let started = Instant::now();
    let (mut first, mut seen, mut bytes) = (None, 0u64, 0u64);
    let deadline = started + Duration::from_secs(600);
    while seen < count {
        assert!(
            Instant::now() < deadline,
            "plain consumer stalled at {seen}/{count}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                first.get_or_insert_with(Instant::now);
                seen += 1;
                bytes += message.payload_len() as u64;
            }
            Some(Err(error)) => panic!("plain consumer: {error}"),
            None => {}
        }
    }
    Drained {
        total: started.elapsed(),
        streaming: first.unwrap().elapsed(),
        bytes,
    }
}
