//! The read-only DataFusion session over one lake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::Transformed;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::{ApplyOrder, Optimizer, OptimizerConfig, OptimizerRule};
use datafusion::prelude::{SessionConfig, SessionContext};

use authtrail_model::lake::{partition_columns, Table};
use authtrail_store::LakeLocation;
use tokio::time::Instant;

use crate::config::QueryConfig;
use crate::pool::QueryPool;
use crate::{bounded, cidr, distinct, guard, limits, prune, pushdown, utc_trunc, yielding, Error};

/// One of authtrail's optimizer rules: its name, the order DataFusion walks the plan in
/// for it, and its rewrite of one plan node.
#[derive(Debug)]
struct PlanRewrite {
    name: &'static str,
    order: ApplyOrder,
    rewrite: fn(LogicalPlan) -> datafusion::common::Result<Transformed<LogicalPlan>>,
}

impl OptimizerRule for PlanRewrite {
    fn name(&self) -> &str {
        self.name
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(self.order)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> datafusion::common::Result<Transformed<LogicalPlan>> {
        (self.rewrite)(plan)
    }
}

/// DataFusion's optimizer rules plus authtrail's: the count rewrite just before the
/// single-distinct rewrite it enables, then partition pruning (after filter pushdown) and
/// hour and day truncation of UTC timestamps as arithmetic.
fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    let single_distinct = rules
        .iter()
        .position(|rule| rule.name() == distinct::SINGLE_DISTINCT_RULE)
        .unwrap_or(0);
    let count_beside_distinct = PlanRewrite {
        name: "authtrail_count_beside_distinct",
        order: ApplyOrder::TopDown,
        rewrite: distinct::rewrite,
    };
    rules.insert(single_distinct, Arc::new(count_beside_distinct));
    rules.push(Arc::new(PlanRewrite {
        name: "authtrail_time_partition_pruning",
        order: ApplyOrder::BottomUp,
        rewrite: prune::rewrite,
    }));
    rules.push(Arc::new(PlanRewrite {
        name: "authtrail_utc_date_trunc",
        order: ApplyOrder::BottomUp,
        rewrite: utc_trunc::rewrite,
    }));
    rules
}

/// A query's result: at most the requested rows, and whether more were available.
#[derive(Debug)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub truncated: bool,
}

impl QueryOutput {
    /// Rows in the result.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A DataFusion session whose only tables are the lake's, and which runs only queries,
/// each on the query pool (`pool.rs`) under the configured limits. Cloning shares the
/// session and the pool.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    root: PathBuf,
    config: QueryConfig,
    pool: Arc<QueryPool>,
}

impl QueryEngine {
    /// Opens a session over the lake at `root`. Table directories that do not exist yet
    /// are empty tables (a lake before its first alert has no `alerts/`); they are listed
    /// on every query, so files written since are seen.
    pub fn open(root: &Path, config: QueryConfig) -> Result<QueryEngine, Error> {
        QueryEngine::open_at(&LakeLocation::Local(root.to_path_buf()), config)
    }

    /// [`open`](Self::open) for a lake wherever it lives: on an object store, DataFusion
    /// reads the tables through the lake's own store (registered with the session's
    /// runtime under the store's URL), so both share its settings and credentials.
    pub fn open_at(lake: &LakeLocation, config: QueryConfig) -> Result<QueryEngine, Error> {
        let (root, table_urls) = match lake {
            LakeLocation::Local(root) => {
                let root = std::fs::canonicalize(root).map_err(|error| {
                    Error::Config(format!("lake `{}`: {error}", root.display()))
                })?;
                if !root.is_dir() {
                    return Err(Error::Config(format!(
                        "lake `{}` is not a directory",
                        root.display()
                    )));
                }
                let urls = Table::ALL
                    .iter()
                    .map(|table| local_dir_url(&root.join(table.as_str())))
                    .collect::<Result<Vec<_>, Error>>()?;
                (root, urls)
            }
            LakeLocation::Remote(remote) => {
                let urls = Table::ALL
                    .iter()
                    .map(|table| remote.dir_url(table.as_str()))
                    .collect();
                // Only for messages: the URL without credentials.
                (PathBuf::from(remote.shown()), urls)
            }
        };
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut session = SessionConfig::new()
            .with_target_partitions(threads)
            .with_information_schema(false);
        // A recursive CTE builds its working table outside the memory pool and may never
        // end; forensic questions over a lake do not need one.
        session.options_mut().execution.enable_recursive_ctes = false;
        let parquet = &mut session.options_mut().execution.parquet;
        // Late materialisation: evaluate filters while decoding, cheapest first, so the
        // wide columns of a point lookup are only decoded for matching rows. This is the
        // default for plans built through `context()` (the API's lookups); `sql` decides
        // per query (`pushdown.rs`).
        parquet.pushdown_filters = true;
        parquet.reorder_filters = true;
        parquet.enable_page_index = true;
        parquet.bloom_filter_on_read = true;
        // No listing cache: DataFusion keeps a table's file list forever by default, and
        // the lake under `run` gains files every flush. The per-file caches (footers,
        // statistics) stay; they check each file's size and modification time.
        let caches = CacheManagerConfig::default().with_list_files_cache_limit(0);
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(caches)
            .with_memory_limit(config.memory_limit_mib.saturating_mul(1 << 20), 1.0)
            .build_arc()?;
        if let Some(remote) = lake.remote() {
            runtime.register_object_store(remote.store_url(), remote.object_store());
        }
        let state = SessionStateBuilder::new()
            .with_config(session)
            .with_runtime_env(runtime)
            .with_default_features()
            // No CREATE EXTERNAL TABLE factories: nothing may register file-backed tables.
            .with_table_factories(Default::default())
            .with_optimizer_rules(optimizer_rules())
            .with_physical_optimizer_rule(Arc::new(distinct::DistinctOnOnePartitioning))
            .with_physical_optimizer_rule(Arc::new(yielding::YieldingJoins))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_udf(cidr::cidr_contains_udf());
        bounded::bound_functions(&ctx, (config.max_function_output_mib as u128) << 20);
        let string_concat = ctx
            .state()
            .scalar_functions()
            .get(bounded::STRING_CONCAT)
            .cloned()
            .expect("bound_functions registers string_concat");
        ctx.add_analyzer_rule(Arc::new(bounded::StringConcatAsFunction::new(
            string_concat,
        )));
        // Each file's statistics are read from its footer once and kept (keyed by path,
        // size and modification time, so a rewritten file is read again); without the
        // cache every query re-derived them from all files' footers while planning.
        let statistics = ctx.runtime_env().cache_manager.get_file_statistic_cache();
        for (table, url) in Table::ALL.into_iter().zip(table_urls) {
            let listing = listing_table(url, &table.schema())?.with_cache(statistics.clone());
            ctx.register_table(table.as_str(), Arc::new(listing))?;
        }
        let pool = QueryPool::new(threads, config.concurrency, config.queue)?;
        Ok(QueryEngine {
            ctx,
            root,
            config,
            pool: Arc::new(pool),
        })
    }

    /// The lake's root directory (for a lake on object storage, its URL without
    /// credentials, for messages).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The limits queries run under.
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// The session, for building DataFrames with bound parameters (never raw SQL text).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Parses and plans `sql`, refusing anything but a read-only query over the lake and
    /// anything past the bounds of `limits.rs`. Deep plans need the query pool's stacks:
    /// call it there ([`QueryEngine::query`], [`QueryEngine::stream`]).
    async fn sql(&self, sql: &str) -> Result<DataFrame, Error> {
        limits::check_length(sql)?;
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(|error| Error::InvalidQuery(error.find_root().message().into_owned()))?;
        limits::check_statement(&statement)?;
        guard::check_statement(&statement)?;
        let plan = state.statement_to_plan(statement).await?;
        guard::check_plan(&plan)?;
        // The session's default (on) suits the lookups the API builds; a query typed by
        // an investigator gets the choice its filters call for.
        let mut state = state;
        state
            .config_mut()
            .options_mut()
            .execution
            .parquet
            .pushdown_filters = pushdown::filters_on_selective_column(&plan);
        Ok(DataFrame::new(state, plan))
    }

    /// Runs `frame` to completion on the query pool under the configured timeout, keeping
    /// at most `limit` rows (the plan is limited to `limit + 1`, so only the extra row is
    /// read to tell that the result was truncated).
    pub async fn collect(
        &self,
        frame: DataFrame,
        limit: Option<usize>,
    ) -> Result<QueryOutput, Error> {
        let deadline = Instant::now() + self.config.timeout;
        self.pool
            .run(
                deadline,
                self.config.timeout,
                collect(frame, limit, self.config.max_result_mib),
            )
            .await
    }

    /// `sql` planned and collected on the query pool, at most `limit` rows.
    pub async fn query(&self, sql: &str, limit: Option<usize>) -> Result<QueryOutput, Error> {
        let deadline = Instant::now() + self.config.timeout;
        let engine = self.clone();
        let sql = sql.to_owned();
        self.pool
            .run(deadline, self.config.timeout, async move {
                let frame = engine.sql(&sql).await?;
                collect(frame, limit, engine.config.max_result_mib).await
            })
            .await
    }

    /// `sql` planned and run on the query pool, its batches (at most `limit` rows) handed
    /// over one by one, so an export never holds the whole result. The deadline covers
    /// the whole stream.
    pub async fn stream(&self, sql: &str, limit: Option<usize>) -> Result<QueryStream, Error> {
        let deadline = Instant::now() + self.config.timeout;
        let engine = self.clone();
        let sql = sql.to_owned();
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        let (batches_tx, batches) = tokio::sync::mpsc::channel(2);
        let task = self.pool.spawn(async move {
            use futures::StreamExt;
            let mut frame = engine.sql(&sql).await?;
            if let Some(limit) = limit.filter(|_| !is_explain(&frame)) {
                frame = frame.limit(0, Some(limit))?;
            }
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let mut stream = frame.execute_stream().await?;
            if schema_tx.send(schema).is_err() {
                return Ok(());
            }
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(Error::from);
                let failed = batch.is_err();
                if batches_tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
            Ok(())
        })?;
        let timeout = self.config.timeout;
        let schema = match tokio::time::timeout_at(deadline, schema_rx).await {
            Ok(Ok(schema)) => schema,
            // The task ended before it had a schema: its result says why.
            Ok(Err(_)) => {
                return Err(task
                    .finish(deadline, timeout)
                    .await
                    .err()
                    .unwrap_or(Error::Internal("the query ended without a result".into())))
            }
            Err(_) => return Err(Error::Timeout(timeout)),
        };
        Ok(QueryStream {
            schema,
            batches,
            deadline,
            timeout,
            task: Some(task),
        })
    }
}

/// A query's batches as the pool produces them; dropping it cancels the query.
pub struct QueryStream {
    schema: SchemaRef,
    batches: tokio::sync::mpsc::Receiver<Result<RecordBatch, Error>>,
    deadline: Instant,
    timeout: std::time::Duration,
    task: Option<crate::pool::QueryTask<()>>,
}

impl QueryStream {
    /// The result's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The next batch, `None` at the end; past the deadline, [`Error::Timeout`].
    pub async fn next(&mut self) -> Option<Result<RecordBatch, Error>> {
        match tokio::time::timeout_at(self.deadline, self.batches.recv()).await {
            Ok(Some(batch)) => Some(batch),
            Ok(None) => match self.task.take() {
                // The stream ended: the task's own result (planning or execution errors).
                Some(task) => task
                    .finish(self.deadline, self.timeout)
                    .await
                    .err()
                    .map(Err),
                None => None,
            },
            Err(_) => {
                self.task = None;
                Some(Err(Error::Timeout(self.timeout)))
            }
        }
    }
}

/// Whether `frame` is an `EXPLAIN`, which must stay the root of its plan (no limit).
fn is_explain(frame: &DataFrame) -> bool {
    matches!(
        frame.logical_plan(),
        datafusion::logical_expr::LogicalPlan::Explain(_)
            | datafusion::logical_expr::LogicalPlan::Analyze(_)
    )
}

/// Runs `frame` to completion, keeping at most `limit` rows, batch by batch so a result
/// past `max_result_mib` stops the query as soon as it is known to be too large.
async fn collect(
    frame: DataFrame,
    limit: Option<usize>,
    max_result_mib: usize,
) -> Result<QueryOutput, Error> {
    use futures::StreamExt;
    let limit = limit.filter(|_| !is_explain(&frame));
    let frame = match limit {
        Some(limit) => frame.limit(0, Some(limit.saturating_add(1)))?,
        None => frame,
    };
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let max_bytes = max_result_mib.saturating_mul(1 << 20);
    let mut stream = frame.execute_stream().await?;
    let mut batches = Vec::new();
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        bytes = bytes.saturating_add(result_bytes(&batch));
        if bytes > max_bytes {
            return Err(Error::ResultTooLarge(max_result_mib));
        }
        batches.push(batch);
    }
    let (batches, truncated) = match limit {
        Some(limit) => truncate(batches, limit),
        None => (batches, false),
    };
    Ok(QueryOutput {
        schema,
        batches,
        truncated,
    })
}

/// The bytes of Arrow data `batch` holds: its own rows' share of its buffers, so a small
/// slice of a large batch counts small.
fn result_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}

/// Keeps the first `limit` rows; whether any were dropped.
fn truncate(batches: Vec<RecordBatch>, limit: usize) -> (Vec<RecordBatch>, bool) {
    let mut kept = Vec::with_capacity(batches.len());
    let mut left = limit;
    let mut truncated = false;
    for batch in batches {
        if batch.num_rows() <= left {
            left -= batch.num_rows();
            kept.push(batch);
        } else {
            truncated = true;
            if left > 0 {
                kept.push(batch.slice(0, left));
                left = 0;
            }
        }
    }
    (kept, truncated)
}

/// The URL of a local directory. Built from the path, not parsed from text: a lake path
/// with `*` or `?` in it must not turn into a glob.
fn local_dir_url(dir: &Path) -> Result<url::Url, Error> {
    url::Url::from_directory_path(dir)
        .map_err(|()| Error::Config(format!("lake path `{}` is not absolute", dir.display())))
}

/// A Hive-partitioned Parquet listing table over the directory `url`
/// (`date=../hour=../*.parquet`).
fn listing_table(url: url::Url, schema: &SchemaRef) -> Result<ListingTable, Error> {
    let url = ListingTableUrl::try_new(url, None)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            partition_columns()
                .into_iter()
                .map(|(name, data_type)| (name.to_owned(), data_type))
                .collect(),
        );
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(view_types(schema));
    Ok(ListingTable::try_new(config)?)
}

/// The schema with top-level strings and binaries as view types, which is how DataFusion
/// reads Parquet (`schema_force_view_types`); declaring them so avoids a cast per batch.
fn view_types(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let view = match field.data_type() {
                DataType::Utf8 => DataType::Utf8View,
                DataType::Binary => DataType::BinaryView,
                other => other.clone(),
            };
            field.as_ref().clone().with_data_type(view)
        })
        .collect();
    Arc::new(Schema::new(fields))
}
