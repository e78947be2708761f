//! The TCP side: one task per connection reading size-prefixed requests and answering
//! them in order (as a Kafka broker does), plus the timer of the group coordinator.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Shared};
use crate::groups::Coordinator;
use crate::offsets::Offsets;
use crate::storage::Storage;
use crate::{BrokerConfig, Error, Result};

/// librdkafka's `message.max.bytes` tops out at 1 GB; anything near that here is not a
/// Kafka client.
const MAX_REQUEST_BYTES: usize = 128 << 20;

/// A running embedded broker; dropping it stops it.
pub struct Broker {
    address: SocketAddr,
    dir: PathBuf,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
    _lock: File,
}

impl Broker {
    /// Opens the data directory (scanning every log), listens on 127.0.0.1 and serves
    /// on a thread of its own until dropped.
    pub fn start(config: BrokerConfig) -> Result<Broker> {
        if config.max_bytes == 0 || config.segment_bytes == 0 {
            return Err(Error::Config(
                "the size bound and segment size must be positive".into(),
            ));
        }
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let lock = lock_dir(&dir)?;
        let storage = Storage::open(
            &dir.join("logs"),
            &config.topics,
            &config.first_offsets,
            config.segment_bytes,
            config.max_bytes,
        )?;
        let offsets = Offsets::load(&dir.join("groups.json"))?;
        let listener = listen(&dir, config.port)?;
        let address = listener.local_addr().map_err(Error::Runtime)?;
        listener.set_nonblocking(true).map_err(Error::Runtime)?;
        let shared = Arc::new(Shared {
            storage,
            offsets: Mutex::new(offsets),
            coordinator: Coordinator::new(),
            port: i32::from(address.port()),
            // Ids from the clock: never one a producer had before a restart, whose
            // batches (and sequence numbers) the log still holds.
            producer_ids: std::sync::atomic::AtomicI64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |now| now.as_millis() as i64),
            ),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("authtrail-broker")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let stop = CancellationToken::new();
        let thread = std::thread::Builder::new()
            .name("authtrail-broker".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    runtime.block_on(serve(listener, shared, stop));
                    runtime.shutdown_timeout(Duration::from_millis(200));
                }
            })
            .map_err(Error::Runtime)?;
        tracing::info!(%address, dir = %dir.display(), max_bytes = config.max_bytes, "embedded Kafka broker started");
        Ok(Broker {
            address,
            dir,
            stop,
            thread: Some(thread),
            _lock: lock,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.address.to_string()
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One process per data directory: two brokers appending to the same files would
/// corrupt them.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("broker.lock");
    let file = File::create(&path).map_err(Error::io(&path))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| Error::Locked(dir.to_path_buf()))?;
    Ok(file)
}

/// Binds `port`, or with 0 the port this directory's broker had last time (so producers
/// configured with it keep working across restarts), or any free one.
fn listen(dir: &Path, port: u16) -> Result<TcpListener> {
    let remembered = dir.join("port");
    let bound = if port != 0 {
        TcpListener::bind(("127.0.0.1", port)).map_err(|source| Error::Listen {
            address: format!("127.0.0.1:{port}"),
            source,
        })?
    } else {
        let last = std::fs::read_to_string(&remembered)
            .ok()
            .and_then(|text| text.trim().parse::<u16>().ok());
        match last.map(|last| TcpListener::bind(("127.0.0.1", last))) {
            Some(Ok(listener)) => listener,
            _ => TcpListener::bind(("127.0.0.1", 0)).map_err(|source| Error::Listen {
                address: "127.0.0.1:0".into(),
                source,
            })?,
        }
    };
    let port = bound.local_addr().map_err(Error::Runtime)?.port();
    std::fs::write(&remembered, format!("{port}\n")).map_err(Error::io(&remembered))?;
    Ok(bound)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "embedded broker cannot serve its socket");
            return;
        }
    };
    tokio::spawn({
        let shared = shared.clone();
        let stop = stop.clone();
        async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(50));
            while stop.run_until_cancelled(ticks.tick()).await.is_some() {
                shared.coordinator.tick();
            }
        }
    });
    while let Some(accepted) = stop.run_until_cancelled(listener.accept()).await {
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    if let Some(Err(error)) =
                        stop.run_until_cancelled(connection(stream, shared)).await
                    {
                        tracing::debug!(%peer, %error, "embedded broker closed a connection");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "embedded broker: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) -> std::result::Result<(), String> {
    let (mut reader, mut writer) = stream.into_split();
    loop {
        let mut size = [0u8; 4];
        if reader.read_exact(&mut size).await.is_err() {
            return Ok(()); // The client closed the connection.
        }
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|size| *size <= MAX_REQUEST_BYTES)
            .ok_or_else(|| format!("request of {size} bytes"))?;
        let mut frame = vec![0u8; size];
        reader
            .read_exact(&mut frame)
            .await
            .map_err(|error| error.to_string())?;
        if let Some(response) = api::handle(Bytes::from(frame), &shared).await? {
            let mut out = BytesMut::with_capacity(4 + response.len());
            out.extend_from_slice(&(response.len() as i32).to_be_bytes());
            out.extend_from_slice(&response);
            writer
                .write_all(&out)
                .await
                .map_err(|error| error.to_string())?;
        }
    }
}
