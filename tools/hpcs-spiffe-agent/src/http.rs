//! The JWKS over plain HTTP (`--jwks-listen`), for OpenBao's `jwks_url`.
//!
//! A deliberately tiny HTTP/1.x responder: `GET` or `HEAD /keys` returns
//! the JWKS document; any other path is 404, any other method 405. One
//! request per connection (`Connection: close`), a bounded request head and
//! a per-connection time limit, so a stuck client cannot hold a task for
//! long. Only loopback addresses are accepted by the configuration.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Path the JWKS is served at.
pub const JWKS_PATH: &str = "/keys";

const MAX_REQUEST_HEAD: usize = 8 * 1024;
const CONNECTION_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` until `shutdown` becomes `true`.
pub async fn serve(listener: TcpListener, jwks: Arc<Vec<u8>>, shutdown: watch::Receiver<bool>) {
    let stopped = crate::stop_requested(shutdown);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let jwks = Arc::clone(&jwks);
                    tokio::spawn(async move {
                        // A slow or broken client only loses its own connection.
                        let _ = tokio::time::timeout(CONNECTION_TIME_LIMIT, respond(stream, &jwks)).await;
                    });
                }
                Err(e) => {
                    eprintln!("hpcs-spiffe-agent: JWKS listener: accept failed: {e}");
                    // Back off briefly on errors such as EMFILE instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn respond(mut stream: TcpStream, jwks: &[u8]) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            return write_response(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
                true,
            )
            .await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let request_line = head
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
        .unwrap_or_default();
    let mut fields = request_line.split(' ');
    let (method, target) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", JWKS_PATH) => {
            write_response(&mut stream, "200 OK", "application/json", jwks, true).await
        }
        ("HEAD", JWKS_PATH) => {
            write_response(&mut stream, "200 OK", "application/json", jwks, false).await
        }
        (_, JWKS_PATH) => {
            write_response(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"method not allowed\n",
                true,
            )
            .await
        }
        _ => {
            write_response(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"not found\n",
                true,
            )
            .await
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    send_body: bool,
) -> std::io::Result<()> {
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if send_body {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}
