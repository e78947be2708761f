//! SQL forensics over authtrail's Parquet lake.
//!
//! [`QueryEngine`] is a DataFusion session whose only tables are the lake's `events`,
//! `alerts` and `rejects` (Hive-partitioned by `date` and `hour`, with Parquet statistics,
//! page index, bloom filters, filter pushdown where a query's filters are selective, and
//! `time` filters pruning partitions). It runs read-only queries only, under a timeout, a
//! row limit and a memory limit, and adds the `cidr_contains(ip, cidr)` function.
//! [`output`] writes results as a table, CSV, JSON, JSON lines or Parquet; [`api`] serves
//! them over HTTP with bearer-key authentication.

pub mod api;
mod cidr;
mod config;
mod distinct;
mod engine;
mod error;
mod guard;
pub mod output;
mod prune;
mod pushdown;
mod utc_trunc;

pub use cidr::{cidr_contains_udf, Cidr};
pub use config::{ApiConfig, QueryConfig, MIN_KEY_LEN};
pub use engine::{lake_tables, QueryEngine, QueryOutput};
pub use error::Error;
