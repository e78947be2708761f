//! A lake on an object store, driven from the store's synchronous API.
//!
//! `object_store` is async; the lake's callers (the pipeline's writer thread, `verify`,
//! `maintain`) are not. Every request runs on one small tokio runtime owned by this module
//! and the calling thread waits for its answer, so the lake behaves the same whether or
//! not its caller happens to be inside a runtime of its own.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};

use authtrail_model::Micros;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

use crate::error::Error;
use crate::Result;

/// Requests in flight at once when many objects are read (manifest records for `verify`).
const READ_CONCURRENCY: usize = 16;

/// An object store and the prefix the lake lives under.
pub struct RemoteLake {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// `scheme://bucket/`, the URL the store is registered under for queries.
    store_url: Url,
    /// The lake's URL without user information, for messages.
    shown: String,
    /// Requests sent through this lake (a listing counts once, however many pages).
    requests: AtomicU64,
}

/// One object found by a listing: its lake-relative path and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) path: String,
    pub(crate) size: u64,
    /// When it was last written, µs since the epoch.
    pub(crate) modified: Micros,
}

impl RemoteLake {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, url: &Url, shown: String) -> Result<Self> {
        let prefix = ObjectPath::from_url_path(url.path())
            .map_err(|error| Error::Location(format!("lake URL `{shown}`: {error}")))?;
        let host = url.host_str().unwrap_or_default();
        let store_url = Url::parse(&format!("{}://{host}/", url.scheme()))
            .map_err(|error| Error::Location(format!("lake URL `{shown}`: {error}")))?;
        Ok(RemoteLake {
            store,
            prefix,
            store_url,
            shown,
            requests: AtomicU64::new(0),
        })
    }

    /// The object store, for a query engine to read the lake through.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The URL the store answers for (`s3://bucket/`): a query engine registers
    /// [`object_store`](Self::object_store) under it.
    pub fn store_url(&self) -> &Url {
        &self.store_url
    }

    /// The lake's prefix inside the store (empty for a bucket's root).
    pub fn prefix(&self) -> &ObjectPath {
        &self.prefix
    }

    /// The URL of the directory `relative` (`events`) below the lake, ending in `/`.
    pub fn dir_url(&self, relative: &str) -> Url {
        let mut url = self.store_url.clone();
        let mut path: String = self
            .prefix
            .parts()
            .map(|part| format!("/{}", part.as_ref()))
            .collect();
        path.push('/');
        path.push_str(relative.trim_matches('/'));
        path.push('/');
        url.set_path(&path);
        url
    }

    /// The lake's URL as messages show it (no user information).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Requests this process sent to the store through the lake (a listing counts once,
    /// however many pages it took), for benchmarks and diagnostics.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self, requests: usize) {
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
    }

    fn object(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .filter(|part| !part.is_empty())
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    fn relative(&self, path: &ObjectPath) -> Option<String> {
        let parts: Vec<String> = path
            .prefix_match(&self.prefix)?
            .map(|part| part.as_ref().to_owned())
            .collect();
        Some(parts.join("/"))
    }

    fn error(&self, relative: &str) -> impl FnOnce(object_store::Error) -> Error {
        let path = format!("{}/{relative}", self.shown.trim_end_matches('/'));
        move |source| Error::Store {
            path,
            message: crate::location::redact_text(&source.to_string()),
        }
    }

    /// Writes `bytes` at `relative`, replacing what was there.
    pub(crate) fn put(&self, relative: &str, bytes: &[u8]) -> Result<()> {
        self.count(1);
        let store = self.store.clone();
        let path = self.object(relative);
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        block_on(async move { store.put(&path, payload).await.map(drop) })
            .map_err(self.error(relative))
    }

    /// Creates `relative` with `bytes` only if no object has that name; `Ok(false)` when
    /// one had it first.
    pub(crate) fn create(&self, relative: &str, bytes: &[u8]) -> Result<bool> {
        self.count(1);
        let store = self.store.clone();
        let path = self.object(relative);
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        let options = PutOptions::from(PutMode::Create);
        match block_on(async move { store.put_opts(&path, payload, options).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(error) => Err(self.error(relative)(error)),
        }
    }

    /// The object at `relative`, or `None` when there is none.
    pub(crate) fn get(&self, relative: &str) -> Result<Option<Bytes>> {
        self.count(1);
        let store = self.store.clone();
        let path = self.object(relative);
        let got = block_on(async move {
            match store.get(&path).await {
                Ok(result) => result.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(error),
            }
        });
        got.map_err(self.error(relative))
    }

    /// Whether an object is at `relative` (a HEAD request).
    pub(crate) fn exists(&self, relative: &str) -> Result<bool> {
        self.count(1);
        let store = self.store.clone();
        let path = self.object(relative);
        let found = block_on(async move {
            match store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(error) => Err(error),
            }
        });
        found.map_err(self.error(relative))
    }

    /// The objects at `relatives`, read concurrently, in the same order (`None` for one
    /// that is gone).
    pub(crate) fn get_many(&self, relatives: &[String]) -> Result<Vec<Option<Bytes>>> {
        self.count(relatives.len());
        let store = self.store.clone();
        let paths: Vec<ObjectPath> = relatives.iter().map(|path| self.object(path)).collect();
        let got = block_on(async move {
            futures::stream::iter(paths.into_iter().map(|path| {
                let store = store.clone();
                async move {
                    match store.get(&path).await {
                        Ok(result) => result.bytes().await.map(Some),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(error) => Err(error),
                    }
                }
            }))
            .buffered(READ_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await
        });
        got.map_err(self.error("(manifest records)"))
    }

    /// Deletes the objects at `relatives`; one already gone is no error.
    pub(crate) fn delete(&self, relatives: &[String]) -> Result<()> {
        for relative in relatives {
            self.count(1);
            let store = self.store.clone();
            let path = self.object(relative);
            let deleted = block_on(async move {
                match store.delete(&path).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(()),
                    other => other,
                }
            });
            deleted.map_err(self.error(relative))?;
        }
        Ok(())
    }

    /// Every object below the directory `relative` (all its levels), sorted by path.
    pub(crate) fn list(&self, relative: &str) -> Result<Vec<Listed>> {
        self.count(1);
        let store = self.store.clone();
        let prefix = self.object(relative);
        let listed =
            block_on(async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await })
                .map_err(self.error(relative))?;
        let mut found: Vec<Listed> = listed
            .into_iter()
            .filter_map(|meta| {
                Some(Listed {
                    path: self.relative(&meta.location)?,
                    size: meta.size,
                    modified: meta.last_modified.timestamp_micros(),
                })
            })
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Whether any object lies below the lake's prefix.
    pub(crate) fn has_objects(&self) -> Result<bool> {
        self.count(1);
        let store = self.store.clone();
        let prefix = self.prefix.clone();
        let first = block_on(async move {
            let mut listing = store.list(Some(&prefix));
            listing.try_next().await
        });
        Ok(first.map_err(self.error(""))?.is_some())
    }
}

/// Runs `future` on the object store runtime and waits for it on the calling thread.
fn block_on<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("authtrail-lake-io")
            .enable_all()
            .build()
            .expect("the lake's I/O runtime starts")
    });
    let (sender, receiver) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        // The receiver only goes away if the waiting thread panicked.
        let _ = sender.send(future.await);
    });
    receiver
        .recv()
        .expect("the lake's I/O runtime runs every request to its end")
}
