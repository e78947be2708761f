//! Where queries run: a runtime of their own, apart from the pipeline's threads.
//!
//! A hostile query must not take ingest, detection or response down with it. So every
//! query is parsed, planned and executed here, never on the caller's thread:
//! - the threads have deep stacks ([`STACK_BYTES`]; reserved, only touched pages are
//!   committed), so a plan at the limits of [`crate::limits`] cannot overflow them, and
//!   a thread the pipeline needs never runs a planner;
//! - on Linux they run at a lower CPU priority ([`NICENESS`]), so a saturated pool slows
//!   queries, not the pipeline, `/healthz` or `/readyz`;
//! - at most `concurrency` queries run at once and `queue` more wait; beyond that a query
//!   is refused at once ([`Error::Busy`]) instead of piling up;
//! - a query past its deadline is aborted: its task is dropped at its next await point,
//!   and it keeps its place among the `concurrency` running ones until it has stopped,
//!   so a query burning CPU in one long poll cannot make room for more.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::Error;

/// Stack of each query thread: DataFusion plans, optimises and drops plans recursively.
pub const STACK_BYTES: usize = 256 << 20;

/// How much nicer than the pipeline query threads are (Linux `nice` 10).
pub const NICENESS: i32 = 10;

/// The query runtime and its admission limits.
pub struct QueryPool {
    /// `Some` until dropped: a runtime may not be dropped inside another one's task, so
    /// `Drop` shuts it down in the background.
    runtime: Option<Runtime>,
    /// Queries running (one permit each, held until the task has really stopped).
    running: Arc<Semaphore>,
    /// Queries running or waiting to run.
    admitted: Arc<Semaphore>,
}

impl QueryPool {
    /// A pool of `threads` threads running at most `concurrency` queries, with `queue`
    /// more waiting.
    pub fn new(threads: usize, concurrency: usize, queue: usize) -> Result<QueryPool, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .max_blocking_threads(threads.max(1))
            .thread_name("authtrail-query")
            .thread_stack_size(STACK_BYTES)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .map_err(|error| Error::Internal(format!("starting the query runtime: {error}")))?;
        let concurrency = concurrency.max(1);
        Ok(QueryPool {
            runtime: Some(runtime),
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
        })
    }

    /// Starts `job` on the pool. The returned task is aborted when dropped, so a caller
    /// that gives up (a timeout, a closed connection) stops the query too.
    pub fn spawn<T, F>(&self, job: F) -> Result<QueryTask<T>, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Busy)?;
        let running = self.running.clone();
        let runtime = self
            .runtime
            .as_ref()
            .expect("the query runtime runs until dropped");
        let handle = runtime.spawn(async move {
            let _admitted = admitted;
            let _running = running
                .acquire_owned()
                .await
                .map_err(|_| Error::Internal("the query pool is closed".into()))?;
            job.await
        });
        Ok(QueryTask {
            abort: handle.abort_handle(),
            handle,
        })
    }

    /// Runs `job` on the pool and waits for it until `deadline`; past it the job is
    /// aborted and the answer is [`Error::Timeout`] of `timeout`.
    pub async fn run<T, F>(&self, deadline: Instant, timeout: Duration, job: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        self.spawn(job)?.finish(deadline, timeout).await
    }
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A query running on the pool; aborted when dropped.
pub struct QueryTask<T> {
    handle: tokio::task::JoinHandle<Result<T, Error>>,
    abort: AbortHandle,
}

impl<T> QueryTask<T> {
    /// Waits for the task's result until `deadline`.
    pub async fn finish(mut self, deadline: Instant, timeout: Duration) -> Result<T, Error> {
        match tokio::time::timeout_at(deadline, &mut self.handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => {
                tracing::error!("a query panicked: {join}");
                Err(Error::Internal("the query panicked".into()))
            }
            // Cancelled (only an abort cancels it) or past the deadline.
            Ok(Err(_)) | Err(_) => Err(Error::Timeout(timeout)),
        }
    }
}

impl<T> Drop for QueryTask<T> {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// Lowers the calling thread's CPU priority (best effort: an unprivileged process may
/// always lower its own).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(thread), NICENESS) {
            tracing::debug!(%error, "could not lower the query thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(seconds: u64) -> Instant {
        Instant::now() + Duration::from_secs(seconds)
    }

    #[tokio::test]
    async fn queries_beyond_the_queue_are_refused_at_once() {
        let pool = QueryPool::new(1, 1, 1).unwrap();
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let first = pool
            .spawn(async move {
                let _ = wait.await;
                Ok(1)
            })
            .unwrap();
        let second = pool.spawn(async { Ok(2) }).unwrap();
        assert!(matches!(pool.spawn(async { Ok(3) }), Err(Error::Busy)));
        release.send(()).unwrap();
        let timeout = Duration::from_secs(5);
        assert_eq!(first.finish(deadline(5), timeout).await.unwrap(), 1);
        assert_eq!(second.finish(deadline(5), timeout).await.unwrap(), 2);
        // Room again once both are done.
        assert_eq!(
            pool.run(deadline(5), timeout, async { Ok(4) })
                .await
                .unwrap(),
            4
        );
    }

    #[tokio::test]
    async fn a_query_past_its_deadline_is_aborted_and_frees_its_place() {
        let pool = QueryPool::new(1, 1, 0).unwrap();
        let timeout = Duration::from_millis(50);
        let result: Result<(), Error> = pool
            .run(Instant::now() + timeout, timeout, async {
                // Yields between batches like a DataFusion stream does.
                loop {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
        assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
        // The aborted task releases its permit: the next query runs.
        let started = std::time::Instant::now();
        let mut answer = Err(Error::Busy);
        while started.elapsed() < Duration::from_secs(5) {
            answer = pool.run(deadline(5), timeout, async { Ok(7) }).await;
            if answer.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(answer.unwrap(), 7);
    }

    #[tokio::test]
    async fn query_threads_have_deep_stacks() {
        fn depth(n: u64) -> u64 {
            // 4 KiB a frame, 20,000 frames: about 80 MiB, ten times a default stack.
            let frame = std::hint::black_box([1u8; 4096]);
            match n {
                0 => u64::from(frame[0]),
                _ => depth(n - 1) + u64::from(frame[n as usize % 4096]),
            }
        }
        let pool = QueryPool::new(1, 1, 0).unwrap();
        let result = pool
            .run(deadline(30), Duration::from_secs(30), async {
                Ok(depth(20_000))
            })
            .await
            .unwrap();
        assert_eq!(result, 20_001);
    }
}
