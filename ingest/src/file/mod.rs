//! File sources: a file or standard input, one contract event per line, or native
//! records (JSON lines, arrays, list objects) of an adapted format.
//!
//! A contract line's offset is its line number (from 1); a native record's, its ordinal. A file source is named after the file, so
//! ingesting the same file again resumes after the last line already in the lake; stdin
//! cannot be re-read, so each run gets a fresh partition of the `stdin` source.

mod source;

pub use source::{
    file_source_name, read_lines, read_records, FileInput, LineReader, MAX_DOCUMENT_BYTES,
};
