//! Credentials a reporter sent where an identifier belongs are kept only as `sha256:<hex>`.
//!
//! A bearer token is a secret: whoever reads it from the lake could present it. Reporters
//! still send them (a gateway copies the `Authorization` header into `token_id`, a service
//! logs the raw JWT as its session), so the parser replaces every recognised credential by
//! the digest of the bare token: trimmed and without its `Bearer` scheme. The same token
//! thus has the same digest however it was presented, and the detectors, which join a
//! token's presentations to its issue by `token_id`, still see one token.
//!
//! Checks run on every event, so each starts with a byte comparison that ordinary values
//! fail: a compact JWS/JWE starts with `ey`, `ew` or `e3` (its header is a JSON object, and
//! `{` encodes as `e`), a bearer value with `b`.

use std::borrow::Cow;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::event::Text;

/// Attribute set to `"true"` on an event whose `token_id` held a credential.
pub const TOKEN_ID_REDACTED_ATTRIBUTE: &str = "token_id_redacted";
/// Attribute set to `"true"` on an event whose `session_id` held a credential.
pub const SESSION_ID_REDACTED_ATTRIBUTE: &str = "session_id_redacted";
/// Appended to an attribute's name to mark that its value held a credential.
pub const REDACTED_SUFFIX: &str = "_redacted";

/// `sha256:<hex>` of a compact JWS (three segments) or JWE (five) given exactly, or `None`.
pub fn jwt_fingerprint(token: &str) -> Option<String> {
    is_compact_jose(token).then(|| fingerprint(token.as_bytes()))
}

/// `sha256:<hex>` of the bare token when `value` presents a credential: a compact JWS or
/// JWE, or `Bearer <anything>` (scheme in any case), with any whitespace around. `None`
/// for anything else, which is kept as it is.
pub fn token_fingerprint(value: &str) -> Option<String> {
    let first = *value.as_bytes().first()?;
    // Fast exit for the usual identifier. Space, controls (`str::trim` strips vertical tab
    // too) and non-ASCII (which may be Unicode whitespace) take the slow path.
    if first.is_ascii() && first > b' ' && !matches!(first, b'e' | b'b' | b'B') {
        return None;
    }
    let last = value.as_bytes()[value.len() - 1];
    let value = if first > b' ' && first.is_ascii() && last > b' ' && last.is_ascii() {
        value // nothing to trim, and `trim` would decode both ends to find out
    } else {
        value.trim()
    };
    if let Some(token) = strip_bearer(value) {
        return (!token.is_empty()).then(|| fingerprint(token.as_bytes()));
    }
    jwt_fingerprint(value)
}

/// Whether an attribute carries an HTTP authorization header, whose value is a credential
/// whatever its shape (`Basic …`, an API key): its name ends in `authorization`, any case.
fn is_authorization_name(name: &str) -> bool {
    const SUFFIX: &str = "authorization";
    name.len() >= SUFFIX.len()
        && name.is_char_boundary(name.len() - SUFFIX.len())
        && name[name.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX)
}

/// Replaces each credential in an event's `token_id`, `session_id` and attributes by its
/// digest and marks it with `<name>_redacted = "true"`.
pub(crate) fn redact_event<'a>(
    token_id: &mut Option<Text<'a>>,
    session_id: &mut Option<Text<'a>>,
    attributes: &mut Vec<(Text<'a>, Text<'a>)>,
) {
    let mut markers: Vec<Text<'a>> = Vec::new();
    for (slot, marker) in [
        (token_id, TOKEN_ID_REDACTED_ATTRIBUTE),
        (session_id, SESSION_ID_REDACTED_ATTRIBUTE),
    ] {
        if let Some(redacted) = slot.as_deref().and_then(redact_value) {
            *slot = Some(Cow::Owned(redacted));
            markers.push(Cow::Borrowed(marker));
        }
    }
    for (name, value) in attributes.iter_mut() {
        let redacted = if is_authorization_name(name) {
            let token = bare_token(value);
            (!token.is_empty()).then(|| fingerprint(token.as_bytes()))
        } else {
            redact_value(value)
        };
        if let Some(redacted) = redacted {
            *value = Cow::Owned(redacted);
            let marker = format!("{name}{REDACTED_SUFFIX}");
            // `attributes.token_id` and the field `token_id` share a marker.
            if !markers.iter().any(|m| *m == marker) {
                markers.push(Cow::Owned(marker));
            }
        }
    }
    if markers.is_empty() {
        return;
    }
    // A reporter's own marker of the same name would be a duplicate key; ours wins.
    attributes.retain(|(name, _)| !markers.contains(name));
    attributes.extend(
        markers
            .into_iter()
            .map(|name| (name, Cow::Borrowed("true"))),
    );
}

/// The value to store instead of `value` when it holds a credential: the digest when it
/// is one, else the value with each credential inside replaced.
fn redact_value(value: &str) -> Option<String> {
    if let Some(digest) = token_fingerprint(value) {
        return Some(digest);
    }
    // A token inside a longer value (`…/callback#access_token=eyJ…`), or anywhere in the
    // JSON text of an unknown field that is an object or array. The shortest JWS that
    // starts `eyJ` (header `{"a":1}`, one-character payload) has 13 characters, so a
    // shorter value (most identifiers) cannot hold one behind other text.
    let bytes = value.as_bytes();
    let json_text = matches!(bytes.first(), Some(b'{' | b'['));
    if json_text || (bytes.len() > 13 && bytes.windows(3).any(|w| w == b"eyJ")) {
        if let Cow::Owned(text) = redact_credentials_in_text(value) {
            return Some(text);
        }
    }
    None
}

/// `text` with every credential found inside it replaced by its digest, in place: a
/// compact JWS/JWE (delimited by characters that cannot be part of one), the token after
/// `Bearer ` (any case), and the string value of a JSON key ending in `authorization`
/// (`"Authorization": "Basic …"`). For text that may not be JSON, such as a rejected
/// message; digests are taken over the bytes as they appear, after trimming and
/// stripping `Bearer`, so an unescaped token hashes as it does in a field.
pub fn redact_credentials_in(text: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut at = 0;
    while at < text.len() {
        match credential_at(text, at) {
            Some((start, end)) => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
                out.extend_from_slice(&text[copied..start]);
                out.extend_from_slice(fingerprint(bare_token_bytes(&text[start..end])).as_bytes());
                copied = end;
                at = end;
            }
            None => at += 1,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.extend_from_slice(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// [`redact_credentials_in`] for text.
pub(crate) fn redact_credentials_in_text(text: &str) -> Cow<'_, str> {
    match redact_credentials_in(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Only ASCII spans between ASCII delimiters are replaced, so this stays UTF-8.
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// The byte range of a credential that starts at `at`, if one does.
fn credential_at(text: &[u8], at: usize) -> Option<(usize, usize)> {
    let previous = at.checked_sub(1).map(|i| text[i]);
    match text[at] {
        // `=` does not join: it ends a URL's parameter name (`?access_token=eyJ…`).
        b'e' if !previous.is_some_and(|b| is_jose_byte(b) && b != b'=') => {
            let run = at + text[at..].iter().take_while(|&&b| is_jose_byte(b)).count();
            // A JWS without signature ends in `.`; a sentence's full stop must not count.
            let candidates = [run, at + trim_end(&text[at..run], b'.')];
            candidates
                .into_iter()
                .find(|&end| std::str::from_utf8(&text[at..end]).is_ok_and(is_compact_jose))
                .map(|end| (at, end))
        }
        b'b' | b'B' if !previous.is_some_and(|b| b.is_ascii_alphanumeric()) => {
            let rest = strip_prefix_ignore_case(&text[at..], b"bearer")?;
            let spaces = rest
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            let start = text.len() - rest.len() + spaces;
            let token = text[start..]
                .iter()
                .take_while(|&&b| is_token68_byte(b))
                .count();
            let padding = text[start + token..]
                .iter()
                .take_while(|&&b| b == b'=')
                .count();
            (spaces > 0 && token > 0).then_some((start, start + token + padding))
        }
        b'a' | b'A' => {
            let rest = strip_prefix_ignore_case(&text[at..], b"authorization\"")?;
            let rest = skip_json_space(rest).strip_prefix(b":")?;
            let rest = skip_json_space(rest).strip_prefix(b"\"")?;
            let start = text.len() - rest.len();
            let end = start + json_string_length(rest);
            (!bare_token_bytes(&text[start..end]).is_empty()).then_some((start, end))
        }
        _ => None,
    }
}

/// Whether `token` is a compact JWS (`header.payload.signature`, signature possibly empty)
/// or JWE (`header.key.iv.ciphertext.tag`, key possibly empty): base64url segments whose
/// header decodes to a JSON object.
fn is_compact_jose(token: &str) -> bool {
    // `{` then `"` or a space encodes as `ey`, then a tab, CR or LF as `ew`, then `}` as
    // `e3`: any other start cannot decode to a JSON object.
    if !matches!(token.as_bytes(), [b'e', b'y' | b'w' | b'3', ..]) {
        return false;
    }
    let mut segments = [""; 5];
    let mut count = 0;
    for segment in token.split('.') {
        if count == segments.len() {
            return false;
        }
        segments[count] = segment;
        count += 1;
    }
    let required: &[usize] = match count {
        3 => &[0, 1],
        5 => &[0, 3],
        _ => return false,
    };
    if required.iter().any(|&i| segments[i].is_empty())
        || !segments[..count]
            .iter()
            .all(|segment| segment.bytes().all(is_base64url_byte))
    {
        return false;
    }
    let Ok(header) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segments[0].trim_end_matches('='))
    else {
        return false;
    };
    // Valid JSON that starts with `{` is an object; checked without building it.
    header.first() == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(&header).is_ok()
}

/// `value` trimmed, without a leading `Bearer` scheme: the token a digest is taken of.
fn bare_token(value: &str) -> &str {
    let value = value.trim();
    strip_bearer(value).unwrap_or(value)
}

fn bare_token_bytes(value: &[u8]) -> &[u8] {
    let value = value.trim_ascii();
    match strip_prefix_ignore_case(value, b"bearer") {
        Some(rest) if rest.first().is_some_and(u8::is_ascii_whitespace) => rest.trim_ascii(),
        _ => value,
    }
}

/// The token after a `Bearer` scheme (any case) and whitespace, from a trimmed value.
fn strip_bearer(value: &str) -> Option<&str> {
    let rest = strip_prefix_ignore_case(value.as_bytes(), b"bearer")?;
    let rest = &value[value.len() - rest.len()..];
    rest.starts_with(char::is_whitespace)
        .then(|| rest.trim_start())
}

fn strip_prefix_ignore_case<'t>(text: &'t [u8], prefix: &[u8]) -> Option<&'t [u8]> {
    (text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &text[prefix.len()..])
}

fn fingerprint(token: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token)))
}

fn is_base64url_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'=')
}

fn is_jose_byte(byte: u8) -> bool {
    is_base64url_byte(byte) || byte == b'.'
}

/// The characters of an RFC 6750 bearer token (`b64token`), before its `=` padding.
fn is_token68_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

fn trim_end(bytes: &[u8], byte: u8) -> usize {
    bytes.len() - bytes.iter().rev().take_while(|&&b| b == byte).count()
}

fn skip_json_space(text: &[u8]) -> &[u8] {
    let spaces = text
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &text[spaces..]
}

/// Bytes up to the closing quote of a JSON string whose opening quote was just read (all
/// of them when the text ends first, as a truncated message may).
fn json_string_length(text: &[u8]) -> usize {
    let mut escaped = false;
    for (i, &byte) in text.iter().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return i,
            _ => {}
        }
    }
    text.len()
}

#[cfg(test)]
mod tests;
