//! A Cincinnati-style update graph on loopback: `GET /graph?channel=C&arch=A` with
//! `Accept: application/json` answers the graph set for (C, A), else 404 (406 without the
//! Accept header, as the real service is strict about it).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A running graph server; it lives as long as the process.
#[derive(Clone)]
pub struct GraphServer {
    addr: String,
    graphs: Arc<Mutex<HashMap<(String, String), String>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// A graph's JSON: `nodes` as given (order kept: callers shuffle), a chain of edges.
pub fn graph_json(nodes: &[(&str, &str)]) -> String {
    let nodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(version, payload)| {
            serde_json::json!({
                "version": version,
                "payload": payload,
                "metadata": {
                    "io.openshift.upgrades.graph.release.channels": "candidate-4.16,fast-4.16,stable-4.16",
                    "url": format!("https://access.redhat.com/errata/{version}"),
                },
            })
        })
        .collect();
    let edges: Vec<[usize; 2]> = (1..nodes.len()).map(|i| [i - 1, i]).collect();
    serde_json::to_string(
        &serde_json::json!({"nodes": nodes, "edges": edges, "conditionalEdges": []}),
    )
    .expect("JSON into memory")
}

impl GraphServer {
    pub fn start() -> std::io::Result<GraphServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let server = GraphServer {
            addr,
            graphs: Arc::default(),
            requests: Arc::default(),
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = s.serve(conn);
            }
        });
        Ok(server)
    }

    /// Serves `json` for `channel` and `goarch`.
    pub fn set(&self, channel: &str, goarch: &str, json: String) {
        self.graphs
            .lock()
            .expect("not poisoned")
            .insert((channel.to_string(), goarch.to_string()), json);
    }

    /// The graph URL, as `graph-url` in a matrix.
    pub fn url(&self) -> String {
        format!("http://{}/api/upgrades_info/v1/graph", self.addr)
    }

    /// Request targets seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("not poisoned").clone()
    }

    fn serve(&self, conn: std::net::TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut json_ok = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if lower.starts_with("accept:") && lower.contains("application/json") {
                json_ok = true;
            }
        }
        self.requests
            .lock()
            .expect("not poisoned")
            .push(target.clone());
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap_or("")
                .to_string()
        };
        let body = self
            .graphs
            .lock()
            .expect("not poisoned")
            .get(&(param("channel"), param("arch")))
            .cloned();
        let (status, body) = match (json_ok, body) {
            (false, _) => (
                "406 Not Acceptable",
                "{\"reason\":\"invalid Accept\"}".to_string(),
            ),
            (true, Some(b)) => ("200 OK", b),
            (true, None) => (
                "404 Not Found",
                "{\"reason\":\"unknown channel\"}".to_string(),
            ),
        };
        let mut out = conn;
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        out.flush()
    }
}
