//! A loopback HTTP/1.1 server for tests that records what reached it.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as a test server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) auth: bool,
}

/// A loopback HTTP/1.1 server: answers every request with `answer(target)` (status and
/// extra header lines) and records the request's method, target and whether `Authorization`
/// came.
pub(crate) struct TestServer {
    pub(crate) port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub(crate) async fn start(
        answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (answer, log) = (Arc::new(answer), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let (answer, log) = (answer.clone(), log.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let method = head.split(' ').next().unwrap_or_default().to_string();
                    let target = head.split(' ').nth(1).unwrap_or_default().to_string();
                    let auth = head
                        .lines()
                        .any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
                    log.lock().unwrap().push(Seen {
                        method,
                        target: target.clone(),
                        auth,
                    });
                    let (status, extra) = answer(&target);
                    // The body is always "ok"; an answer may announce another length (a body
                    // cut short).
                    let length = if extra.to_ascii_lowercase().contains("content-length:") {
                        ""
                    } else {
                        "content-length: 2\r\n"
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\n{extra}{length}connection: close\r\n\r\nok"
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        Self { port, seen, task }
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
