//! Reading JSON lines with bounded memory and handing them to the pipeline in batches.

use std::io::BufRead;
use std::path::Path;

use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

/// Reads every line of `reader` into the pipeline as source `source`, partition
/// `partition`, offsets = line numbers. Blank lines carry no data and are only counted.
/// Stops early (without error) when `stop` is cancelled.
#[allow(clippy::too_many_arguments)]
pub fn read_lines(
    reader: impl BufRead,
    label: &str,
    source: Arc<str>,
    partition: i32,
    keep_bytes: usize,
    output: &SyncSender<Input>,
    stats: &IngestStats,
    stop: &CancellationToken,
) -> Result<()> {
    let mut lines = LineReader::new(reader, keep_bytes);
    let mut batch = Vec::with_capacity(SOURCE_BATCH);
    let mut line_number: i64 = 0;
    while !stop.is_cancelled() {
        let Some(line) = lines.next_line().map_err(|source| Error::Read {
            path: label.to_owned(),
            source,
        })?
        else {
            break;
        };
        line_number += 1;
        if line.size == line.bytes.len() && line.bytes.iter().all(u8::is_ascii_whitespace) {
            IngestStats::add(&stats.blank_lines, 1);
            continue;
        }
        batch.push(RawMessage {
            source: source.clone(),
            partition,
            offset: line_number,
            timestamp: None,
            payload: Some(line.bytes),
            size: line.size,
        });
        if batch.len() == SOURCE_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(SOURCE_BATCH));
            output
                .send(Input::Messages(full))
                .map_err(|_| Error::PipelineGone)?;
        }
    }
    if !batch.is_empty() {
        output
            .send(Input::Messages(batch))
            .map_err(|_| Error::PipelineGone)?;
    }
    Ok(())
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
