//! A real HTTP receiver (axum on 127.0.0.1) with scripted answers, an independent
//! Standard Webhooks signature check, and helpers to build responders and alerts.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use authtrail_model::{Alert, Severity};
use authtrail_respond::{Action, Entry, Outbox, RespondConfig, State, WebhookConfig};
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// 32 bytes of key, `whsec_`-encoded.
pub const SECRET: &str = "whsec_UExBTlRFRC1zZWNyZXQta2V5LTAxMjM0NTY3ODlhYg==";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    pub at: Instant,
}

/// How the receiver answers: a status and an optional `Retry-After`.
#[derive(Debug, Clone)]
pub struct Reply(pub u16, pub Option<&'static str>);

#[derive(Default)]
struct Inner {
    deliveries: Mutex<Vec<Delivery>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
}

/// The receiver: runs on its own runtime thread until dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn receive(
    AxumState(inner): AxumState<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    inner.deliveries.lock().unwrap().push(Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
        at: Instant::now(),
    });
    let scripted = inner.script.lock().unwrap().pop_front();
    let Reply(status, retry_after) = scripted
        .or_else(|| inner.default.lock().unwrap().clone())
        .unwrap_or(Reply(200, None));
    let mut response = (StatusCode::from_u16(status).unwrap(), "answer").into_response();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", value.parse().unwrap());
    }
    response
}

impl Receiver {
    /// A receiver on a free port.
    pub fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// A receiver on `addr` (to bring one up where a previous one was down).
    pub fn start_on(addr: SocketAddr) -> Receiver {
        let inner = Arc::new(Inner::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let state = inner.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .route("/hook", axum::routing::post(receive))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = ready.recv().unwrap();
        Receiver {
            addr,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers these first, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().unwrap().extend(replies);
    }

    /// Answers this once the script is used up (200 unless set).
    pub fn answer(&self, reply: Reply) {
        *self.inner.default.lock().unwrap() = Some(reply);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.deliveries.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// HMAC-SHA256 written out from RFC 2104 (not the `hmac` crate the responder uses).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Checks a delivery's signature the way a receiver would.
pub fn verify(delivery: &Delivery, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut message = format!("{}.{}.", delivery.id, delivery.timestamp).into_bytes();
    message.extend_from_slice(&delivery.body);
    let expected = format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &message)));
    delivery.signature.split(' ').any(|s| s == expected)
}

pub fn alert(id: &str) -> Alert {
    Alert {
        id: id.into(),
        detector: "token_replay".into(),
        severity: Severity::High,
        time: 1_795_456_800_000_000,
        principal: "svc:payments".into(),
        token_id: Some(format!("jti-{id}")),
        source_ip: Some("203.0.113.9".parse().unwrap()),
        target_service: Some("payments".into()),
        key: format!("jti-{id}"),
        summary: "token used from two networks".into(),
        evidence_ids: vec!["e-1".into(), "e-2".into()],
        attack_technique: "T1550.001".into(),
        suppressed_count: 0,
    }
}

/// A `revoke_token` webhook to `url` with quick retries, its secret in `dir/secret`.
pub fn webhook(dir: &Path, url: &str) -> WebhookConfig {
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let mut config = WebhookConfig::new("idp", url, Action::RevokeToken);
    config.secret_file = Some(secret_file);
    config.retry_initial = Duration::from_millis(20);
    config.retry_max_interval = Duration::from_millis(200);
    config.breaker_cooldown = Duration::from_millis(200);
    config
}

pub fn respond_config(webhooks: Vec<WebhookConfig>) -> RespondConfig {
    RespondConfig {
        webhooks,
        drain_timeout: Duration::from_secs(2),
        ..RespondConfig::default()
    }
}

pub fn wait_until(what: &str, check: impl FnMut() -> bool) {
    authtrail_testkit::wait_for(what, Duration::from_secs(30), check);
}

/// The outbox entries of the lake at `root`, read as `authtrail alerts` does.
pub fn entries(root: &Path) -> Vec<Entry> {
    Outbox::read_entries(&authtrail_respond::outbox_dir(root)).unwrap()
}

/// How many entries are in `state`.
pub fn count(root: &Path, state: State) -> usize {
    entries(root).iter().filter(|e| e.state == state).count()
}

/// The runtime responders deliver on in these tests (the binary gives its own).
pub fn runtime() -> tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .thread_name("authtrail-respond")
                .enable_all()
                .build()
                .expect("build the test runtime")
        })
        .handle()
        .clone()
}
