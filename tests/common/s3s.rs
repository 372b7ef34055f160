//! An `s3s-fs` process (an S3-protocol server from crates.io) over a temporary directory, for
//! the object-store tests and benchmark: `S3S_FS` names the binary, else it is looked up on
//! `PATH` and in `~/.cargo/bin`. It runs without credentials (its anonymous mode) and clients
//! skip signing, so that a test can also send raw requests. Each includer uses part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coinsphere_ml::store::objects::ObjectBlobs;
use object_store::aws::AmazonS3Builder;

pub const BUCKET: &str = "coinsphere-test";
pub const PREFIX: &str = "models";

/// An `s3s-fs` process serving a temporary directory, killed when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    port: u16,
    root: tempfile::TempDir,
}

fn s3s_fs_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("S3S_FS") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
}

impl S3Server {
    /// Starts the server; `None` (the caller skips, saying so) when s3s-fs is not installed,
    /// unless `COINSPHERE_REQUIRE_S3=1`.
    pub fn start(test: &str) -> Option<Self> {
        let Some(binary) = s3s_fs_binary() else {
            if std::env::var("COINSPHERE_REQUIRE_S3").is_ok_and(|v| v == "1") {
                panic!("s3s-fs is required (COINSPHERE_REQUIRE_S3=1) and not installed");
            }
            super::pg::skipped(&format!(
                "{test}: no s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary --locked)"
            ));
            return None;
        };
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            root,
        })
    }

    /// A client of the bucket, keys under [`PREFIX`].
    pub fn blobs(&self) -> ObjectBlobs {
        let s3 = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_skip_signature(true)
            .build()
            .unwrap();
        ObjectBlobs::new(Arc::new(s3), PREFIX).unwrap()
    }

    /// The environment a replica needs to use this server (`ObjectBlobs::from_env`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MODEL_STORE", format!("s3://{BUCKET}/{PREFIX}")),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_SKIP_SIGNATURE", "true".into()),
        ]
    }

    /// The keys of the bucket's objects, as files under the server's directory.
    pub fn keys(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    let key = path.strip_prefix(base).unwrap();
                    out.push(key.to_string_lossy().into_owned());
                }
            }
        }
        let bucket = self.root.path().join(BUCKET);
        let mut keys = Vec::new();
        walk(&bucket, &bucket, &mut keys);
        keys.sort();
        keys
    }

    /// A raw, unsigned PUT of `key` announcing `announced` bytes and sending `body`. A complete
    /// one returns the status line; a short one waits until the server is writing it, then
    /// hangs up (as a replica dying mid-upload) and returns `None`.
    pub fn raw_put(&self, key: &str, announced: usize, body: &[u8]) -> Option<String> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            conn,
            "PUT /{BUCKET}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {announced}\r\n\
             Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        conn.write_all(body).unwrap();
        conn.flush().unwrap();
        if body.len() < announced {
            std::thread::sleep(Duration::from_millis(300));
            conn.shutdown(std::net::Shutdown::Both).unwrap();
            return None;
        }
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer.lines().next().map(str::to_owned)
    }

    /// Files of the server outside the bucket that are not metadata: its temp files.
    pub fn temp_files(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp."))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
