//! Where a lake lives: a local directory (`./authtrail-data`, `file:///srv/lake`) or a
//! prefix of an object store (`s3://bucket/prefix`, `gs://bucket/prefix`,
//! `az://container/prefix`), and how it is named in messages without credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::ObjectStore;
use url::Url;

use crate::error::Error;
use crate::remote::RemoteLake;
use crate::Result;

/// A lake's place: a directory on a local filesystem (written with fsync and rename), or
/// a prefix of an object store (written with conditional creates).
#[derive(Clone)]
pub enum LakeLocation {
    /// A local directory.
    Local(PathBuf),
    /// A prefix of an object store.
    Remote(Arc<RemoteLake>),
}

impl LakeLocation {
    /// Parses `--lake` or `lake.path`: an `s3://`, `gs://`, `az://` (`abfs://`,
    /// `abfss://`) or `file://` URL, or a plain path.
    ///
    /// An object store takes its credentials and endpoint from the environment as its
    /// provider's tools do (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`; `GOOGLE_*`; `AZURE_*`), and `options` (the
    /// config's `[lake.storage]`, keys as `object_store` names them, e.g. `aws_region`)
    /// override those. Errors show the URL without its user information.
    pub fn parse(text: &str, options: &BTreeMap<String, String>) -> Result<LakeLocation> {
        let Some((scheme, _)) = text.split_once("://").filter(|(scheme, _)| {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())
        }) else {
            if !options.is_empty() {
                return Err(Error::Location(
                    "`lake.storage` options apply to an object store URL, not a local path"
                        .to_owned(),
                ));
            }
            return Ok(LakeLocation::Local(PathBuf::from(text)));
        };
        let url = Url::parse(text).map_err(|error| {
            Error::Location(format!("lake URL `{}`: {error}", redact_text(text)))
        })?;
        let shown = redact(&url);
        let store: Arc<dyn ObjectStore> = match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                if !options.is_empty() {
                    return Err(Error::Location(
                        "`lake.storage` options apply to an object store URL, not `file://`"
                            .to_owned(),
                    ));
                }
                let path = url.to_file_path().map_err(|()| {
                    Error::Location(format!("lake URL `{shown}` is not a local path"))
                })?;
                return Ok(LakeLocation::Local(path));
            }
            "s3" | "s3a" => {
                let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
                for (key, value) in options {
                    let key: AmazonS3ConfigKey = parse_key(key)?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().map_err(|error| configure(&shown, error))?)
            }
            "gs" => {
                let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
                for (key, value) in options {
                    let key: GoogleConfigKey = parse_key(key)?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().map_err(|error| configure(&shown, error))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                for (key, value) in options {
                    let key: AzureConfigKey = parse_key(key)?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().map_err(|error| configure(&shown, error))?)
            }
            other => {
                return Err(Error::Location(format!(
                    "lake URL `{shown}`: unsupported scheme `{other}` (use s3://, gs://, \
                     az://, file:// or a local path)"
                )))
            }
        };
        let remote = RemoteLake::new(store, &url, shown)?;
        Ok(LakeLocation::Remote(Arc::new(remote)))
    }

    /// The directory of a local lake; `None` on an object store.
    pub fn local_root(&self) -> Option<&Path> {
        match self {
            LakeLocation::Local(root) => Some(root),
            LakeLocation::Remote(_) => None,
        }
    }

    /// The object store of a remote lake; `None` for a local directory.
    pub fn remote(&self) -> Option<&RemoteLake> {
        match self {
            LakeLocation::Local(_) => None,
            LakeLocation::Remote(remote) => Some(remote),
        }
    }

    /// Whether anything of a lake is there: a local directory exists, or an object store
    /// lists at least one object below the lake's prefix.
    pub fn exists(&self) -> Result<bool> {
        match self {
            LakeLocation::Local(root) => Ok(root.is_dir()),
            LakeLocation::Remote(remote) => remote.has_objects(),
        }
    }
}

impl fmt::Display for LakeLocation {
    /// The path, or the URL without user information, query or fragment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeLocation::Local(root) => write!(f, "{}", root.display()),
            LakeLocation::Remote(remote) => f.write_str(remote.shown()),
        }
    }
}

impl fmt::Debug for LakeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LakeLocation({self})")
    }
}

impl From<PathBuf> for LakeLocation {
    fn from(root: PathBuf) -> LakeLocation {
        LakeLocation::Local(root)
    }
}

impl From<&Path> for LakeLocation {
    fn from(root: &Path) -> LakeLocation {
        LakeLocation::Local(root.to_path_buf())
    }
}

/// A config key of one provider; a wrong key is named, its value never shown.
fn parse_key<K: std::str::FromStr>(key: &str) -> Result<K> {
    key.parse().map_err(|_| {
        Error::Location(format!(
            "`lake.storage`: `{}` is not an option of this object store",
            key.escape_debug()
        ))
    })
}

fn configure(shown: &str, error: object_store::Error) -> Error {
    Error::Location(format!(
        "lake URL `{shown}`: {}",
        redact_text(&error.to_string())
    ))
}

/// The URL as messages show it: scheme, host, port and path; user information (which may
/// hold a secret), query and fragment left out.
pub(crate) fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() || shown.password().is_some() {
        // Cannot fail for the URLs with a host this is called with; if it did, nothing
        // of the original is shown.
        if shown.set_username("***").is_err() || shown.set_password(None).is_err() {
            return format!("{}://***", url.scheme());
        }
    }
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// `text` with the user information of any URL in it replaced: for text that failed to
/// parse as a URL, and for errors of the object store that may quote one.
pub(crate) fn redact_text(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, after) = rest.split_at(start + 3);
        shown.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                shown.push_str("***");
                shown.push_str(&authority[at..]);
            }
            None => shown.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    shown.push_str(rest);
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_options() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn plain_paths_and_file_urls_are_local_directories() {
        let local = LakeLocation::parse("./authtrail-data", &no_options()).unwrap();
        assert_eq!(local.local_root(), Some(Path::new("./authtrail-data")));
        let file = LakeLocation::parse("file:///srv/lake", &no_options()).unwrap();
        assert_eq!(file.local_root(), Some(Path::new("/srv/lake")));
    }

    #[test]
    fn an_s3_url_is_a_remote_lake_with_its_prefix() {
        let remote = LakeLocation::parse("s3://bucket/lake/prod", &no_options()).unwrap();
        let remote = remote.remote().expect("remote");
        assert_eq!(remote.prefix().as_ref(), "lake/prod");
        assert_eq!(remote.store_url().as_str(), "s3://bucket/");
        assert_eq!(remote.shown(), "s3://bucket/lake/prod");
    }

    #[test]
    fn credentials_in_a_url_never_reach_a_message() {
        let location =
            LakeLocation::parse("s3://AKIDEXAMPLE:s3cr3t@bucket/lake", &no_options()).unwrap();
        let shown = location.to_string();
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );
        let error = LakeLocation::parse("ftp://user:s3cr3t@host/lake", &no_options())
            .unwrap_err()
            .to_string();
        assert!(error.contains("unsupported scheme `ftp`"), "{error}");
        assert!(
            !error.contains("s3cr3t") && !error.contains("user"),
            "{error}"
        );
        let unparsable = LakeLocation::parse("s3://user:s3cr3t@[bad/lake", &no_options())
            .unwrap_err()
            .to_string();
        assert!(!unparsable.contains("s3cr3t"), "{unparsable}");
    }

    #[test]
    fn unknown_storage_options_are_named_without_their_value() {
        let options = BTreeMap::from([("aws_secret_acces_key".to_owned(), "s3cr3t".to_owned())]);
        let error = LakeLocation::parse("s3://bucket/lake", &options)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`aws_secret_acces_key`"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
        let local = LakeLocation::parse("/srv/lake", &options).unwrap_err();
        assert!(local.to_string().contains("not a local path"), "{local}");
    }
}
