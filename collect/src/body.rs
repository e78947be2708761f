//! A request body as bytes of JSON records: read up to the limit, gunzipped up to the
//! same limit (a small gzip body can inflate to gigabytes).

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;

use crate::error::Refusal;

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// From `Content-Encoding`: absent or `identity`, or `gzip` (`x-gzip`); anything else
    /// is refused with 415.
    pub fn of(headers: &HeaderMap) -> Result<Encoding, Refusal> {
        let Some(value) = headers.get(header::CONTENT_ENCODING) else {
            return Ok(Encoding::Identity);
        };
        let text = String::from_utf8_lossy(value.as_bytes());
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            _ => Err(Refusal::UnsupportedEncoding(text.into_owned())),
        }
    }
}

/// Reads the whole body, at most `limit` bytes as sent.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        // The only error that is the sender's is the length limit; anything else is a
        // connection that broke mid-body, which no status reaches anyway.
        if error
            .into_inner()
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            too_large(limit)
        } else {
            Refusal::BadRequest("the body could not be read".into())
        }
    })
}

/// The body's JSON bytes: `sent` itself, or gunzipped, at most `limit` bytes.
pub fn decode(sent: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes, Refusal> {
    match encoding {
        Encoding::Identity => Ok(sent),
        Encoding::Gzip => {
            let mut inflated = Vec::new();
            // One byte past the limit says whether there was more, without reading it.
            MultiGzDecoder::new(&sent[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(|error| Refusal::BadRequest(format!("invalid gzip body: {error}")))?;
            if inflated.len() > limit {
                return Err(too_large(limit));
            }
            Ok(Bytes::from(inflated))
        }
    }
}

fn too_large(limit: usize) -> Refusal {
    Refusal::TooLarge(format!(
        "the body is larger than {limit} bytes (decompressed)"
    ))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap().into()
    }

    #[test]
    fn gzip_bodies_are_inflated_up_to_the_limit() {
        let json = br#"[{"decision_id":"1"}]"#;
        let inflated = decode(gzip(json), Encoding::Gzip, 1024).unwrap();
        assert_eq!(&inflated[..], json);
        let exactly = decode(gzip(json), Encoding::Gzip, json.len()).unwrap();
        assert_eq!(exactly.len(), json.len());
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b' '; 4 << 20]);
        assert!(
            bomb.len() < 1 << 20,
            "a body under the limit: {}",
            bomb.len()
        );
        let refused = decode(bomb, Encoding::Gzip, 1 << 20).unwrap_err();
        assert!(matches!(refused, Refusal::TooLarge(_)), "{refused:?}");
    }

    #[test]
    fn garbage_under_gzip_is_a_bad_request() {
        let refused = decode(Bytes::from_static(b"not gzip"), Encoding::Gzip, 1024).unwrap_err();
        assert!(matches!(refused, Refusal::BadRequest(_)), "{refused:?}");
    }

    #[test]
    fn unknown_encodings_are_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(Encoding::of(&headers).unwrap(), Encoding::Identity);
        headers.insert(header::CONTENT_ENCODING, "GZIP".parse().unwrap());
        assert_eq!(Encoding::of(&headers).unwrap(), Encoding::Gzip);
        headers.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert!(Encoding::of(&headers).is_err());
    }
}
