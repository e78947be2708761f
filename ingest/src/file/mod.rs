//! JSON-lines sources: a file or standard input, one event per line.
//!
//! A line's offset is its line number (from 1). A file source is named after the file, so
//! ingesting the same file again resumes after the last line already in the lake; stdin
//! cannot be re-read, so each run gets a fresh partition of the `stdin` source.

mod source;

pub use source::{file_source_name, read_lines, LineReader};
