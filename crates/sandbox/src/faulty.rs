//! A registry-shaped HTTP server on loopback that misbehaves on purpose: canned answers per
//! path, and a queue of failures (5xx, 429 with `Retry-After`) served before them. For the
//! client's retry and digest-verification tests, which a well-behaved registry cannot exercise.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(content_type: &str, body: &[u8]) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.to_vec(),
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

#[derive(Clone, Default)]
pub struct FaultServer {
    addr: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    failures: Arc<Mutex<VecDeque<Reply>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl FaultServer {
    pub fn start() -> std::io::Result<FaultServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let server = FaultServer {
            addr: listener.local_addr()?.to_string(),
            ..FaultServer::default()
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = s.serve(conn);
            }
        });
        Ok(server)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Answers `path` (e.g. `/v2/a/b/manifests/t`) with `reply` from now on.
    pub fn route(&self, path: &str, reply: Reply) {
        self.routes
            .lock()
            .expect("not poisoned")
            .insert(path.to_string(), reply);
    }

    /// Serves `reply` to the next request, whatever it asks, before any route.
    pub fn fail_next(&self, reply: Reply) {
        self.failures.lock().expect("not poisoned").push_back(reply);
    }

    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("not poisoned").clone()
    }

    fn serve(&self, conn: std::net::TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
        }
        self.log
            .lock()
            .expect("not poisoned")
            .push(format!("{method} {path}"));
        let reply = self
            .failures
            .lock()
            .expect("not poisoned")
            .pop_front()
            .or_else(|| {
                self.routes
                    .lock()
                    .expect("not poisoned")
                    .get(&path)
                    .cloned()
            })
            .unwrap_or_else(|| Reply::status(404));
        let mut out = conn;
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if method != "HEAD" {
            out.write_all(&reply.body)?;
        }
        out.flush()
    }
}
