//! SQL forensics over authtrail's Parquet lake.
//!
//! [`QueryEngine`] is a DataFusion session whose only tables are the lake's `events`,
//! `alerts` and `rejects` (Hive-partitioned by `date` and `hour`, with Parquet statistics,
//! page index, bloom filters, filter pushdown where a query's filters are selective, and
//! `time` filters pruning partitions). It runs read-only queries only, under a timeout, a
//! row limit and a memory limit, and adds the `cidr_contains(ip, cidr)` function. Every
//! query runs on a pool of its own (`pool.rs`) after its SQL passed the bounds of
//! `limits.rs`, with the functions that could amplify bounded (`bounded.rs`), so no query
//! can stop the pipeline that shares the process.
//! [`output`] writes results as a table, CSV, JSON, JSON lines or Parquet; [`api`] serves
//! them over HTTP with bearer-key authentication. [`reports`] builds the trust and privilege
//! reports from fixed queries over the same engine.

pub mod api;
mod bounded;
mod cidr;
mod config;
mod distinct;
mod engine;
mod error;
mod guard;
mod limits;
pub mod output;
mod pool;
mod prune;
mod pushdown;
pub mod reports;
mod utc_trunc;
mod yielding;

pub use cidr::{cidr_contains_udf, Cidr};
pub use config::{ApiConfig, QueryConfig, MIN_KEY_LEN};
pub use engine::{QueryEngine, QueryOutput, QueryStream};
pub use error::Error;
pub use limits::{
    MAX_CTES, MAX_EXPRESSIONS, MAX_EXPRESSION_DEPTH, MAX_QUERY_DEPTH, MAX_SET_OPERATIONS,
    MAX_SQL_BYTES, MAX_TABLE_REFERENCES,
};
