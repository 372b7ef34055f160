//! `coinsphere-ml healthcheck`: a minimal HTTP/1.1 GET so that the container image needs no
//! curl. Exits 0 on status 200 and 1 on anything else (another status, no answer, a timeout).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// Only `http://host[:port][/path]` is supported.
    #[error("unsupported URL {0:?}: expected http://host[:port][/path]")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("cannot reach {url}: {source}")]
    Io {
        /// The URL probed.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The answer is not HTTP.
    #[error("{url} did not answer HTTP: {line:?}")]
    NotHttp {
        /// The URL probed.
        url: String,
        /// The first line received.
        line: String,
    },
    /// The service answered with another status than 200.
    #[error("{url} answered {status}")]
    Status {
        /// The URL probed.
        url: String,
        /// The status.
        status: u16,
    },
}

/// `coinsphere-ml healthcheck`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// URL to probe (default: the readiness probe on this machine's PORT).
    #[arg(long, env = "HEALTHCHECK_URL")]
    pub url: Option<String>,
    /// Port of the local service, when --url is not given.
    #[arg(long, env = "PORT", default_value_t = crate::settings::defaults::PORT)]
    pub port: u16,
    /// Seconds before giving up.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}

/// Splits `http://host[:port][/path]` into `host:port` and the path.
fn split_url(url: &str) -> Result<(String, String), HealthcheckError> {
    let bad = || HealthcheckError::Url(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || path.contains(char::is_whitespace) {
        return Err(bad());
    }
    let host_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((host_port, path.to_owned()))
}

/// GETs `url` and returns the status code.
///
/// # Errors
/// Any [`HealthcheckError`] but `Status`.
pub fn probe(url: &str, timeout: Duration) -> Result<u16, HealthcheckError> {
    let (host_port, path) = split_url(url)?;
    let io = |source| HealthcheckError::Io {
        url: url.to_owned(),
        source,
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| HealthcheckError::Url(url.to_owned()))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port.as_str(), |(h, _)| h);
    // One buffer, one write: `write!` on a raw stream sends each formatted piece separately,
    // and a server that answers after the first piece and closes turns the rest into EPIPE.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: coinsphere-ml-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() {
        match stream.read(&mut head[n..]).map_err(io)? {
            0 => break,
            k => n += k,
        }
        if head[..n].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|s| s.parse::<u16>().ok()),
    ) {
        (Some(v), Some(status)) if v.starts_with("HTTP/") => Ok(status),
        _ => Err(HealthcheckError::NotHttp {
            url: url.to_owned(),
            line,
        }),
    }
}

/// Runs the probe; `Ok` only on 200.
///
/// # Errors
/// Any [`HealthcheckError`]; the binary then exits with status 1.
pub fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}/health/ready", args.port));
    let status = probe(&url, Duration::from_secs(args.timeout_secs.max(1)))?;
    if status != 200 {
        return Err(HealthcheckError::Status { url, status }.into());
    }
    println!("{url}: 200");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer.as_bytes());
        });
        format!("http://127.0.0.1:{port}/health/ready")
    }

    #[test]
    fn urls_are_split_into_address_and_path() {
        assert_eq!(
            split_url("http://localhost:8000/health/ready").unwrap(),
            ("localhost:8000".into(), "/health/ready".into())
        );
        assert_eq!(
            split_url("http://example").unwrap(),
            ("example:80".into(), "/".into())
        );
        assert!(split_url("https://x/").is_err());
        assert!(split_url("http:///x").is_err());
    }

    #[test]
    fn the_status_line_is_read_and_anything_but_http_is_an_error() {
        let t = Duration::from_secs(2);
        assert_eq!(
            probe(&serve_once("HTTP/1.1 200 OK\r\n\r\n"), t).unwrap(),
            200
        );
        assert_eq!(
            probe(&serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n"), t).unwrap(),
            503
        );
        assert!(matches!(
            probe(&serve_once("SSH-2.0\r\n"), t),
            Err(HealthcheckError::NotHttp { .. })
        ));
        // Nothing listens on a port just released.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(probe(&format!("http://127.0.0.1:{port}/"), t).is_err());
    }
}
