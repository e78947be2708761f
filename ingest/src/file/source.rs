//! Reading JSON lines with bounded memory and handing them to the pipeline in batches.

use std::io::BufRead;
use std::path::Path;

use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use authtrail_model::records::split_records;

use crate::message::{Input, RawMessage, SOURCE_BATCH};
use crate::stats::IngestStats;
use crate::{Error, Result};

/// The source name of a file: `file.` and the file's name, e.g. `file.events.jsonl`.
pub fn file_source_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "input".into(), |name| name.to_string_lossy());
    format!("file.{name}")
}

/// Splits a byte stream into lines without ever holding more than `keep_bytes` of one line:
/// an oversized line is kept as its head plus its full length, so the pipeline can reject
/// it as too large without the reader buffering it whole.
pub struct LineReader<R> {
    reader: R,
    keep_bytes: usize,
}

/// One line: its kept bytes (without the line break) and its full length.
pub struct Line {
    pub bytes: Vec<u8>,
    pub size: usize,
}

impl<R: BufRead> LineReader<R> {
    /// Reads `reader`, keeping at most `keep_bytes` of any line.
    pub fn new(reader: R, keep_bytes: usize) -> Self {
        LineReader { reader, keep_bytes }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        let mut line = Line {
            bytes: Vec::new(),
            size: 0,
        };
        let mut saw_any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                break;
            }
            saw_any = true;
            let (chunk, consumed, done) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..end], end + 1, true),
                None => (available, available.len(), false),
            };
            let room = self.keep_bytes.saturating_sub(line.bytes.len());
            line.bytes
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            line.size += chunk.len();
            self.reader.consume(consumed);
            if done {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        if line.bytes.last() == Some(&b'\r') && line.size == line.bytes.len() {
            line.bytes.pop();
            line.size -= 1;
        }
        Ok(Some(line))
    }
}

/// Where a file's messages go: its label (for errors), source name and partition, and how
/// many bytes of an oversized line to keep.
pub struct FileInput<'a> {
    pub label: &'a str,
    pub source: Arc<str>,
    pub partition: i32,
    pub keep_bytes: usize,
}

/// The largest native document (a JSON array, a pretty-printed `EventList`) read whole;
/// bigger inputs are JSON lines, which stream.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024 * 1024;

/// Reads every line of `reader` into the pipeline, offsets = line numbers. Blank lines
/// carry no data and are only counted. Stops early (without error) when `stop` is
/// cancelled.
pub fn read_lines(
    reader: impl BufRead,
    input: &FileInput<'_>,
    output: &SyncSender<Input>,
    stats: &IngestStats,
    stop: &CancellationToken,
) -> Result<()> {
    let mut lines = DataLines::new(reader, input, stats, stop);
    let mut batch = Batch::new(input, output);
    while let Some((line_number, line)) = lines.next()? {
        batch.push(line_number, line.bytes, line.size)?;
    }
    batch.finish()
}

/// Reads native records into the pipeline, offsets = the records' ordinals: JSON lines
/// whose lines may each be a record, an array of records or a list object (`EventList`);
/// or, when the first line is not a whole JSON value (a pretty-printed document), the
/// whole input (up to [`MAX_DOCUMENT_BYTES`]) split the same way. A line that is not JSON
/// is one record (its adapter rejects it, with the reason).
pub fn read_records(
    reader: impl BufRead,
    input: &FileInput<'_>,
    output: &SyncSender<Input>,
    stats: &IngestStats,
    stop: &CancellationToken,
) -> Result<()> {
    let mut lines = DataLines::new(reader, input, stats, stop);
    let mut batch = Batch::new(input, output);
    let mut ordinal: i64 = 0;
    let mut first = true;
    while let Some((_, line)) = lines.next()? {
        let whole_line = line.size == line.bytes.len();
        if first
            && whole_line
            && serde_json::from_slice::<serde::de::IgnoredAny>(&line.bytes).is_err()
        {
            return read_document(line.bytes, lines, batch);
        }
        first = false;
        match whole_line
            .then(|| split_records(&line.bytes, usize::MAX).ok())
            .flatten()
        {
            Some(records) if records.len() != 1 || records[0].len() != line.bytes.len() => {
                for record in records {
                    ordinal += 1;
                    batch.push(ordinal, record.to_vec(), record.len())?;
                }
            }
            // One record, an oversized line (kept as its head), or not JSON: as it is.
            _ => {
                ordinal += 1;
                batch.push(ordinal, line.bytes, line.size)?;
            }
        }
    }
    batch.finish()
}

/// The rest of a pretty-printed document after its `first` line, split into records.
fn read_document(
    first: Vec<u8>,
    mut lines: DataLines<'_, impl BufRead>,
    mut batch: Batch<'_>,
) -> Result<()> {
    let mut document = first;
    while let Some((_, line)) = lines.next()? {
        if document.len() + line.size + 1 > MAX_DOCUMENT_BYTES || line.size != line.bytes.len() {
            return Err(Error::Read {
                path: lines.input.label.to_owned(),
                source: std::io::Error::other(format!(
                    "a JSON document over {} MiB: write it as JSON lines (one record per line), which stream",
                    MAX_DOCUMENT_BYTES >> 20
                )),
            });
        }
        document.push(b'\n');
        document.extend_from_slice(&line.bytes);
    }
    match split_records(&document, usize::MAX) {
        Ok(records) => {
            for (index, record) in records.into_iter().enumerate() {
                batch.push(index as i64 + 1, record.to_vec(), record.len())?;
            }
        }
        // Not JSON at all: one record, rejected by the adapter with the parser's reason.
        Err(_) => {
            let size = document.len();
            batch.push(1, document, size)?;
        }
    }
    batch.finish()
}

/// A file's lines that carry data, with their line numbers: blank lines are counted and
/// skipped, and the input ends early (without error) when `stop` is cancelled.
struct DataLines<'a, R> {
    lines: LineReader<R>,
    number: i64,
    input: &'a FileInput<'a>,
    stats: &'a IngestStats,
    stop: &'a CancellationToken,
}

impl<'a, R: BufRead> DataLines<'a, R> {
    fn new(
        reader: R,
        input: &'a FileInput<'a>,
        stats: &'a IngestStats,
        stop: &'a CancellationToken,
    ) -> Self {
        DataLines {
            lines: LineReader::new(reader, input.keep_bytes),
            number: 0,
            input,
            stats,
            stop,
        }
    }

    fn next(&mut self) -> Result<Option<(i64, Line)>> {
        while !self.stop.is_cancelled() {
            let line = self.lines.next_line().map_err(|source| Error::Read {
                path: self.input.label.to_owned(),
                source,
            })?;
            let Some(line) = line else {
                return Ok(None);
            };
            self.number += 1;
            if line.size == line.bytes.len() && line.bytes.iter().all(u8::is_ascii_whitespace) {
                IngestStats::add(&self.stats.blank_lines, 1);
                continue;
            }
            return Ok(Some((self.number, line)));
        }
        Ok(None)
    }
}

/// Messages on their way to the pipeline, sent [`SOURCE_BATCH`] at a time.
struct Batch<'a> {
    messages: Vec<RawMessage>,
    source: Arc<str>,
    partition: i32,
    output: &'a SyncSender<Input>,
}

impl<'a> Batch<'a> {
    fn new(input: &FileInput<'_>, output: &'a SyncSender<Input>) -> Self {
        Batch {
            messages: Vec::with_capacity(SOURCE_BATCH),
            source: input.source.clone(),
            partition: input.partition,
            output,
        }
    }

    fn push(&mut self, offset: i64, payload: Vec<u8>, size: usize) -> Result<()> {
        self.messages.push(RawMessage {
            source: self.source.clone(),
            partition: self.partition,
            offset,
            timestamp: None,
            payload: Some(payload),
            size,
        });
        if self.messages.len() == SOURCE_BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        let full = std::mem::replace(&mut self.messages, Vec::with_capacity(SOURCE_BATCH));
        self.output
            .send(Input::Messages(full))
            .map_err(|_| Error::PipelineGone)
    }

    fn finish(mut self) -> Result<()> {
        if !self.messages.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], keep: usize) -> Vec<(Vec<u8>, usize)> {
        let mut reader = LineReader::new(std::io::BufReader::with_capacity(4, input), keep);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push((line.bytes, line.size));
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_crlf() {
        assert_eq!(
            lines(b"ab\r\ncd\n\nef", 100),
            [
                (b"ab".to_vec(), 2),
                (b"cd".to_vec(), 2),
                (b"".to_vec(), 0),
                (b"ef".to_vec(), 2)
            ]
        );
    }

    #[test]
    fn keeps_only_the_head_of_an_oversized_line_but_counts_all_of_it() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nnext\n");
        let read = lines(&input, 16);
        assert_eq!(read[0], (vec![b'x'; 16], 10_000));
        assert_eq!(read[1], (b"next".to_vec(), 4));
    }

    #[test]
    fn names_file_sources_after_the_file() {
        assert_eq!(
            file_source_name(Path::new("/tmp/x/events.jsonl")),
            "file.events.jsonl"
        );
    }
}
