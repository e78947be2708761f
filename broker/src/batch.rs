//! The record batch (magic 2) header: the only part of a message the broker reads.
//!
//! Layout (big endian): base offset i64, batch length i32 (bytes after this field),
//! partition leader epoch i32, magic i8, crc u32 (CRC-32C of everything after it),
//! attributes i16, last offset delta i32, base timestamp i64, max timestamp i64, then
//! producer id, epoch, base sequence and record count. The CRC does not cover the base
//! offset, so the broker patches it without recomputing anything.

/// Bytes of a batch header.
pub(crate) const HEADER_BYTES: usize = 61;
/// Bytes before the batch length's count starts (base offset and the length itself).
const LENGTH_PREFIX: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
const LAST_DELTA_AT: usize = 23;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;

/// One batch found in a byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchInfo {
    /// Where the batch starts in the range.
    pub position: usize,
    /// Its whole length, header included.
    pub len: usize,
    /// Its base offset as written.
    pub base_offset: i64,
    /// Records it numbers: last offset delta + 1.
    pub offsets: i64,
    /// The newest record's timestamp (milliseconds).
    pub max_timestamp: i64,
    /// The idempotent producer that sent it (-1: none), its epoch and the batch's first
    /// sequence number.
    pub producer: (i64, i16, i32),
}

/// Why bytes are not a valid sequence of batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The bytes end inside a batch.
    Truncated,
    /// A message set of format v0 or v1 (or something else that is not v2).
    OldFormat,
    /// The CRC does not match, or the header is inconsistent.
    Corrupt,
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the batch starting at `position`, checking its format and CRC.
pub(crate) fn parse_one(bytes: &[u8], position: usize) -> Result<BatchInfo, Invalid> {
    let rest = &bytes[position..];
    if rest.len() < LENGTH_PREFIX {
        return Err(Invalid::Truncated);
    }
    let length = i32_at(rest, 8);
    // A v0/v1 message has its magic at the same place; read it before trusting the length.
    if rest.len() > MAGIC_AT && rest[MAGIC_AT] != 2 {
        return Err(Invalid::OldFormat);
    }
    let Ok(length) = usize::try_from(length) else {
        return Err(Invalid::Corrupt);
    };
    let len = LENGTH_PREFIX + length;
    if len < HEADER_BYTES {
        return Err(Invalid::Corrupt);
    }
    if rest.len() < len {
        return Err(Invalid::Truncated);
    }
    let batch = &rest[..len];
    let crc = u32::from_be_bytes(batch[CRC_AT..CRC_FROM].try_into().expect("4 bytes"));
    if crc32c::crc32c(&batch[CRC_FROM..]) != crc {
        return Err(Invalid::Corrupt);
    }
    let last_delta = i32_at(batch, LAST_DELTA_AT);
    if last_delta < 0 {
        return Err(Invalid::Corrupt);
    }
    Ok(BatchInfo {
        position,
        len,
        base_offset: i64_at(batch, 0),
        offsets: i64::from(last_delta) + 1,
        max_timestamp: i64_at(batch, MAX_TIMESTAMP_AT),
        producer: (
            i64_at(batch, PRODUCER_ID_AT),
            i16::from_be_bytes([batch[PRODUCER_EPOCH_AT], batch[PRODUCER_EPOCH_AT + 1]]),
            i32_at(batch, BASE_SEQUENCE_AT),
        ),
    })
}

/// Every batch of `bytes`, which must hold whole batches only.
pub(crate) fn parse_all(bytes: &[u8]) -> Result<Vec<BatchInfo>, Invalid> {
    let mut found = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let batch = parse_one(bytes, position)?;
        position += batch.len;
        found.push(batch);
    }
    if found.is_empty() {
        return Err(Invalid::Truncated);
    }
    Ok(found)
}

/// Writes `base_offset` into the batch at `position`.
pub(crate) fn set_base_offset(bytes: &mut [u8], position: usize, base_offset: i64) {
    bytes[position..position + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets the idempotent producer fields of a test batch (and its CRC).
#[cfg(test)]
pub(crate) fn set_producer(batch: &mut [u8], id: i64, epoch: i16, sequence: i32) {
    batch[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&id.to_be_bytes());
    batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_FROM..]);
    batch[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
}

/// A valid batch of `records` records with the given timestamp, for tests.
#[cfg(test)]
pub(crate) fn test_batch(records: i32, payload_bytes: usize, timestamp: i64) -> Vec<u8> {
    let mut batch = vec![0u8; HEADER_BYTES + payload_bytes];
    let length = (batch.len() - LENGTH_PREFIX) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    batch[MAGIC_AT] = 2;
    batch[LAST_DELTA_AT..LAST_DELTA_AT + 4].copy_from_slice(&(records - 1).to_be_bytes());
    batch[27..35].copy_from_slice(&timestamp.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.to_be_bytes());
    batch[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(-1i64).to_be_bytes());
    batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&(-1i16).to_be_bytes());
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
    batch[57..61].copy_from_slice(&records.to_be_bytes());
    for (i, byte) in batch[HEADER_BYTES..].iter_mut().enumerate() {
        *byte = i as u8;
    }
    let crc = crc32c::crc32c(&batch[CRC_FROM..]);
    batch[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_consecutive_batches() {
        let mut bytes = test_batch(3, 10, 1_000);
        bytes.extend(test_batch(1, 0, 2_000));
        let found = parse_all(&bytes).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].offsets, found[0].max_timestamp), (3, 1_000));
        assert_eq!((found[1].position, found[1].offsets), (71, 1));
    }

    #[test]
    fn patching_the_base_offset_keeps_the_crc_valid() {
        let mut bytes = test_batch(2, 5, 0);
        set_base_offset(&mut bytes, 0, 41);
        assert_eq!(parse_one(&bytes, 0).unwrap().base_offset, 41);
    }

    #[test]
    fn rejects_old_formats_torn_batches_and_bad_crcs() {
        let mut old = test_batch(1, 4, 0);
        old[MAGIC_AT] = 1;
        assert_eq!(parse_all(&old), Err(Invalid::OldFormat));
        let whole = test_batch(1, 4, 0);
        assert_eq!(parse_all(&whole[..40]), Err(Invalid::Truncated));
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(parse_all(&flipped), Err(Invalid::Corrupt));
    }
}
