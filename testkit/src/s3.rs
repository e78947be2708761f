//! A real S3-compatible server for tests: moto's server mode (`moto_server`, installed in
//! the test virtualenv by `scripts/install-test-deps.sh`), on a free port, with one bucket,
//! killed when dropped. moto honours conditional writes (`If-None-Match: *` answers 412
//! when the key exists), which the lake's commits rely on.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The access key tests sign with (moto accepts any).
pub const S3_ACCESS_KEY_ID: &str = "authtrail-test";
/// The secret key tests sign with.
pub const S3_SECRET_ACCESS_KEY: &str = "authtrail-test-secret";
/// The region tests name.
pub const S3_REGION: &str = "us-east-1";

/// A moto server with one bucket, stopped when dropped.
pub struct S3Server {
    child: Child,
    port: u16,
    bucket: String,
}

impl S3Server {
    /// Starts moto on a free port and creates the bucket `bucket` (3 to 63 lowercase
    /// letters, digits and `-`). Panics with what to install when moto is missing.
    pub fn start(bucket: &str) -> S3Server {
        let program = moto_server();
        // The port is free now; if another process takes it before moto binds, moto exits
        // and the wait below fails naming the port, instead of talking to a stranger.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting `{}`: {error}", program.display()));
        let mut server = S3Server {
            child,
            port,
            bucket: bucket.to_owned(),
        };
        // Creating the bucket is the readiness probe: a port that accepts a connection is not
        // yet a server that answers (moto was seen refusing the next connection on a
        // freshly made virtualenv).
        crate::wait_until(
            &format!("moto on port {port} to create bucket `{bucket}`"),
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!("moto_server exited early ({status}) on port {port}");
                }
                match server.request("PUT", &format!("/{bucket}"))? {
                    200 => Ok(()),
                    status => Err(format!("moto answered {status}")),
                }
            },
        );
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://<bucket>/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix.trim_start_matches('/'))
    }

    /// The object store settings that reach this server (`object_store`'s key names).
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".to_owned()),
            ("aws_access_key_id", S3_ACCESS_KEY_ID.to_owned()),
            ("aws_secret_access_key", S3_SECRET_ACCESS_KEY.to_owned()),
            ("aws_region", S3_REGION.to_owned()),
        ]
    }

    /// The environment a child process (the `authtrail` binary) reaches this server with.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", S3_REGION.to_owned()),
        ]
    }

    /// Sends one request without a body and returns its status (moto needs no signature
    /// to create a bucket).
    fn request(&self, method: &str, path: &str) -> Result<u16, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|error| format!("connect to moto: {error}"))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|error| format!("send to moto: {error}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|error| format!("read moto's answer: {error}"))?;
        response
            .split_whitespace()
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| format!("moto answered {:?}", response.escape_debug().to_string()))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$AUTHTRAIL_MOTO`, else `moto_server` in the test virtualenv.
fn moto_server() -> PathBuf {
    let path = std::env::var_os("AUTHTRAIL_MOTO").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/authtrail-venv/bin/moto_server")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "`{}` is missing: run scripts/install-test-deps.sh (or set AUTHTRAIL_MOTO)",
        path.display()
    );
    path
}
