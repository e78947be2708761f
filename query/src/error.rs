//! The query crate's error type, and which errors are the caller's fault.

use datafusion::error::DataFusionError;

/// Everything that can go wrong planning, running or serving a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL is not a read-only query (DDL, DML, COPY, SET, ...).
    #[error("only read-only queries (SELECT, WITH, EXPLAIN) may run: {0}")]
    Forbidden(String),
    /// The SQL does not parse or does not plan (unknown table or column, type errors).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The query failed while running because of what it asked for (a bad CIDR, a cast
    /// that does not hold, division by zero).
    #[error("query failed: {0}")]
    QueryFailed(String),
    /// The SQL is past a bound of `limits.rs` (length, nesting, CTEs, set operations).
    #[error("query too complex: {0}")]
    TooComplex(String),
    /// As many queries as allowed are running or waiting; try again shortly.
    #[error("too many queries are running; try again shortly")]
    Busy,
    /// The query ran longer than the configured timeout and was cancelled.
    #[error("query timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The query needed more memory than the configured limit.
    #[error("query exceeded the memory limit: {0}")]
    ResourcesExhausted(String),
    /// The result grew past `query.max_result_mib` before it was complete.
    #[error("the result is larger than {0} MiB (`query.max_result_mib`); select fewer or smaller columns, or fewer rows")]
    ResultTooLarge(usize),
    /// A request parameter is malformed.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// The configuration is invalid (no API keys, unreadable keys file, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading the lake or writing output failed; not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Sorts a DataFusion error into the caller's fault or ours. Planning errors are about
    /// the SQL and their text helps the investigator fix it; I/O and Parquet errors name
    /// files and internals and stay in the logs.
    pub fn from_datafusion(error: DataFusionError) -> Error {
        let root = error.find_root();
        match root {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => Error::InvalidQuery(root.message().into()),
            DataFusionError::ResourcesExhausted(message) => {
                Error::ResourcesExhausted(message.clone())
            }
            DataFusionError::Execution(message) => Error::QueryFailed(message.clone()),
            DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
                arrow_schema::ArrowError::CastError(_)
                | arrow_schema::ArrowError::ComputeError(_)
                | arrow_schema::ArrowError::DivideByZero
                | arrow_schema::ArrowError::ArithmeticOverflow(_)
                | arrow_schema::ArrowError::ParseError(_)
                | arrow_schema::ArrowError::InvalidArgumentError(_) => {
                    Error::QueryFailed(arrow.to_string())
                }
                _ => Error::Internal(root.to_string()),
            },
            _ => Error::Internal(root.to_string()),
        }
    }

    /// Whether the error is about the request (shown to the caller) rather than a fault of
    /// the server (logged, and answered with a generic message).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Error::Internal(_) | Error::Config(_))
    }
}

impl From<DataFusionError> for Error {
    fn from(error: DataFusionError) -> Error {
        Error::from_datafusion(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_errors_are_the_callers_and_io_errors_are_internal() {
        let plan = Error::from(DataFusionError::Plan("table 'x' not found".into()));
        assert!(matches!(plan, Error::InvalidQuery(_)), "{plan:?}");
        assert!(plan.is_client_error());
        let io = Error::from(DataFusionError::IoError(std::io::Error::other(
            "disk /lake",
        )));
        assert!(matches!(io, Error::Internal(_)), "{io:?}");
        assert!(!io.is_client_error());
    }

    #[test]
    fn context_wrapped_errors_are_classified_by_their_root() {
        let wrapped = DataFusionError::Context(
            "while planning".into(),
            Box::new(DataFusionError::Execution("bad cidr".into())),
        );
        assert!(matches!(Error::from(wrapped), Error::QueryFailed(m) if m == "bad cidr"));
    }
}
