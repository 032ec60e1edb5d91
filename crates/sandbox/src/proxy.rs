//! A seeded HTTP fault proxy on loopback, in front of a real registry: it forwards requests
//! faithfully (method, headers including `Range` and `Authorization`, status, headers and
//! streamed body of the answer) and, with a given probability per request, injects a fault
//! instead: a connection reset before answering, a 500/502/503, a 429 with `Retry-After: 0`
//! or `1`, a stall before answering, or a body cut short (the connection closed mid-body).
//! It counts requests and faults per kind, so tests can say what they survived.
//!
//! Deterministic for a seed as far as a concurrent client allows: whether a request is faulted,
//! and how, depends on the seed, the request (method, path, `Range`) and how many times that
//! same request was seen before, not on the order in which parallel requests arrive.
//!
//! One request per connection: every answer says `Connection: close`, so a fault never hits a
//! pooled connection the client would silently retry on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One fault, as injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The connection is reset (RST) after the request is read, before any answer.
    Reset,
    /// An error status (500, 502 or 503) with a registry-style error body.
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    TooMany { retry_after: u64 },
    /// The answer is forwarded after this long.
    Stall(Duration),
    /// The answer's head and only `keep` bytes of its body (a seeded cut when `None`), then
    /// the connection is closed. A body-less answer is reset instead.
    Truncate { keep: Option<u64> },
}

impl Fault {
    /// The name counts are kept under: `reset`, `500`, `502`, `503`, `429`, `stall`, `truncate`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Reset => "reset",
            Fault::Status(500) => "500",
            Fault::Status(502) => "502",
            Fault::Status(503) => "503",
            Fault::Status(_) => "5xx",
            Fault::TooMany { .. } => "429",
            Fault::Stall(_) => "stall",
            Fault::Truncate { .. } => "truncate",
        }
    }
}

/// What the proxy saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    /// Faults injected, by [`Fault::kind`].
    pub faults: BTreeMap<&'static str, u64>,
}

impl Counts {
    pub fn injected(&self) -> u64 {
        self.faults.values().sum()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        write!(
            f,
            "{} requests, {} faulted ({})",
            self.requests,
            self.injected(),
            kinds.join(", ")
        )
    }
}

/// One request as seen: `METHOD path`, its `Range` header, and the fault it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    seed: u64,
    rate: f64,
    stall: Duration,
}

#[derive(Default)]
struct Tallies {
    /// Times each request identity was seen, for the per-request draw.
    seen: HashMap<String, u64>,
    scripted: VecDeque<Fault>,
    counts: Counts,
    log: Vec<Seen>,
}

struct State {
    upstream: String,
    config: Mutex<Config>,
    tallies: Mutex<Tallies>,
}

/// The proxy; cheap to clone. Its threads live as long as the process.
#[derive(Clone)]
pub struct FaultProxy {
    addr: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// Listens on a free loopback port in front of `upstream` (`host:port`), faulting a
    /// `rate` (0.0 to 1.0) of requests as `seed` draws them; stalls last `stall`.
    pub fn start(upstream: &str, seed: u64, rate: f64, stall: Duration) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let proxy = FaultProxy {
            addr: listener.local_addr()?.to_string(),
            state: Arc::new(State {
                upstream: upstream.to_string(),
                config: Mutex::new(Config { seed, rate, stall }),
                tallies: Mutex::default(),
            }),
        };
        let state = proxy.state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || {
                    let _ = state.serve(conn);
                });
            }
        });
        Ok(proxy)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Starts over with another seed and rate: counts, log and per-request draws reset.
    pub fn reseed(&self, seed: u64, rate: f64) {
        let mut config = lock(&self.state.config);
        config.seed = seed;
        config.rate = rate;
        *lock(&self.state.tallies) = Tallies::default();
    }

    /// Injects `fault` into the next request, whatever it asks, before any drawn fault.
    pub fn fault_next(&self, fault: Fault) {
        lock(&self.state.tallies).scripted.push_back(fault);
    }

    pub fn counts(&self) -> Counts {
        lock(&self.state.tallies).counts.clone()
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.tallies).log.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request head as read from the client.
struct Head {
    method: String,
    path: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl State {
    fn serve(&self, client: TcpStream) -> io::Result<()> {
        client.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut reader = BufReader::new(client.try_clone()?);
        let Some(head) = read_request_head(&mut reader)? else {
            return Ok(());
        };
        let (fault, rng, index) = self.decide(&head);
        match fault {
            Some(Fault::Reset) => reset(client),
            Some(Fault::Status(code)) => answer(client, &head, code, None),
            Some(Fault::TooMany { retry_after }) => answer(client, &head, 429, Some(retry_after)),
            Some(Fault::Stall(d)) => {
                std::thread::sleep(d);
                self.forward(reader, client, &head, None)
            }
            Some(Fault::Truncate { keep }) => {
                let cut = Cut { keep, rng, index };
                self.forward(reader, client, &head, Some(cut))
            }
            None => self.forward(reader, client, &head, None),
        }
    }

    /// Draws (or takes from the script) this request's fault, and counts it.
    fn decide(&self, head: &Head) -> (Option<Fault>, Rng, usize) {
        let config = *lock(&self.config);
        let mut t = lock(&self.tallies);
        let range = head.header("range").map(str::to_string);
        let key = format!(
            "{} {} {}",
            head.method,
            head.path,
            range.as_deref().unwrap_or("")
        );
        let n = t.seen.entry(key.clone()).or_insert(0);
        let mut rng = Rng::new(config.seed, &key, *n);
        *n += 1;
        let fault = match t.scripted.pop_front() {
            Some(f) => Some(f),
            None if rng.unit() < config.rate => Some(draw(&mut rng, config.stall)),
            None => None,
        };
        // A body-less answer cannot be cut; a HEAD is reset instead.
        let fault = match fault {
            Some(Fault::Truncate { .. }) if head.method == "HEAD" => Some(Fault::Reset),
            f => f,
        };
        t.counts.requests += 1;
        if let Some(f) = fault {
            *t.counts.faults.entry(f.kind()).or_insert(0) += 1;
        }
        t.log.push(Seen {
            method: head.method.clone(),
            path: head.path.clone(),
            range,
            fault,
        });
        (fault, rng, t.log.len() - 1)
    }

    /// Counts the request at `index` of the log as reset after all: its answer had no body
    /// to cut.
    fn cut_became_reset(&self, index: usize) {
        let mut t = lock(&self.tallies);
        if let Some(n) = t.counts.faults.get_mut("truncate") {
            *n -= 1;
        }
        *t.counts.faults.entry("reset").or_insert(0) += 1;
        t.counts.faults.retain(|_, n| *n > 0);
        if let Some(seen) = t.log.get_mut(index) {
            seen.fault = Some(Fault::Reset);
        }
    }

    fn forward(
        &self,
        mut reader: BufReader<TcpStream>,
        mut client: TcpStream,
        head: &Head,
        cut: Option<Cut>,
    ) -> io::Result<()> {
        let mut upstream = TcpStream::connect(&self.upstream)?;
        upstream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut text = format!("{} {} {}\r\n", head.method, head.path, head.version);
        for (k, v) in &head.headers {
            if !hop_by_hop(k) {
                text.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        text.push_str("Connection: close\r\n\r\n");
        upstream.write_all(text.as_bytes())?;
        copy_request_body(&mut reader, &mut upstream, head)?;
        upstream.flush()?;
        let mut answer = BufReader::new(upstream);
        let (status_line, headers) = read_response_head(&mut answer)?;
        let mut text = status_line;
        for (k, v) in &headers {
            if !hop_by_hop(k) {
                text.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        text.push_str("Connection: close\r\n\r\n");
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .filter(|_| head.method != "HEAD");
        match (cut, length) {
            (Some(cut), Some(len)) if len > 0 => {
                client.write_all(text.as_bytes())?;
                let keep = cut
                    .keep
                    .unwrap_or_else(|| cut.rng.clone().below(len))
                    .min(len - 1);
                io::copy(&mut answer.by_ref().take(keep), &mut client)?;
                client.flush()?;
                client.shutdown(Shutdown::Both)
            }
            (Some(cut), _) => {
                self.cut_became_reset(cut.index);
                reset(client)
            }
            (None, _) => {
                client.write_all(text.as_bytes())?;
                io::copy(&mut answer, &mut client)?;
                client.flush()?;
                client.shutdown(Shutdown::Write)
            }
        }
    }
}

/// Where a truncation cuts: given, or drawn from the request's generator.
struct Cut {
    keep: Option<u64>,
    rng: Rng,
    /// The request's place in the log.
    index: usize,
}

/// A fault kind and its parameter, drawn; the kinds equally likely.
fn draw(rng: &mut Rng, stall: Duration) -> Fault {
    match rng.below(7) {
        0 => Fault::Reset,
        1 => Fault::Status(500),
        2 => Fault::Status(502),
        3 => Fault::Status(503),
        4 => Fault::TooMany {
            retry_after: rng.below(2),
        },
        5 => Fault::Stall(stall),
        _ => Fault::Truncate { keep: None },
    }
}

/// Headers that belong to one connection, not to the message.
fn hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection", "upgrade"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Resets the connection: SO_LINGER with a zero timeout makes close send RST, not FIN.
fn reset(conn: TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the descriptor is open (owned by `conn`, dropped after this call), and the
    // option value is a live `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    drop(conn);
    Ok(())
}

/// An error answer in the registry's JSON shape.
fn answer(
    mut conn: TcpStream,
    head: &Head,
    status: u16,
    retry_after: Option<u64>,
) -> io::Result<()> {
    let body = format!(
        r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected fault: HTTP {status}"}}]}}"#
    );
    let mut text = format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(s) = retry_after {
        text.push_str(&format!("Retry-After: {s}\r\n"));
    }
    text.push_str("\r\n");
    if head.method != "HEAD" {
        text.push_str(&body);
    }
    conn.write_all(text.as_bytes())?;
    conn.flush()?;
    conn.shutdown(Shutdown::Write)
}

fn read_request_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::other(format!(
            "bad request line `{}`",
            line.trim()
        )));
    };
    let (method, path, version) = (method.to_string(), path.to_string(), version.to_string());
    Ok(Some(Head {
        method,
        path,
        version,
        headers: read_headers(r)?,
    }))
}

fn read_response_head(r: &mut impl BufRead) -> io::Result<(String, Vec<(String, String)>)> {
    let mut status = String::new();
    if r.read_line(&mut status)? == 0 {
        return Err(io::Error::other("the upstream closed without answering"));
    }
    let status = format!("{}\r\n", status.trim_end());
    Ok((status, read_headers(r)?))
}

fn read_headers(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// Copies the request body: `Content-Length` bytes, or a chunked body as it is, chunk by chunk.
fn copy_request_body(r: &mut impl BufRead, w: &mut impl Write, head: &Head) -> io::Result<()> {
    if head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            w.write_all(size_line.as_bytes())?;
            let hex = size_line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(hex, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size `{hex}`")))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut t = String::new();
                    r.read_line(&mut t)?;
                    w.write_all(t.as_bytes())?;
                    if t.trim_end().is_empty() {
                        return Ok(());
                    }
                }
            }
            io::copy(&mut r.take(size + 2), w)?;
        }
    }
    let length: u64 = head
        .header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    io::copy(&mut r.take(length), w).map(|_| ())
}

/// SplitMix64, seeded by the proxy's seed, the request's identity and its occurrence.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, key: &str, occurrence: u64) -> Rng {
        // FNV-1a of the key: stable across processes, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Rng(seed ^ h ^ occurrence.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faulty::{FaultServer, Reply};
    use crate::http;

    #[test]
    fn draws_depend_on_the_seed_and_the_request_not_on_arrival_order() {
        let a: Vec<u64> = (0..4).map(|n| Rng::new(7, "GET /v2/a", n).next()).collect();
        let b: Vec<u64> = (0..4).map(|n| Rng::new(7, "GET /v2/a", n).next()).collect();
        assert_eq!(a, b);
        assert_ne!(
            Rng::new(7, "GET /v2/a", 0).next(),
            Rng::new(8, "GET /v2/a", 0).next()
        );
        assert_ne!(
            Rng::new(7, "GET /v2/a", 0).next(),
            Rng::new(7, "GET /v2/b", 0).next()
        );
    }

    #[test]
    fn forwards_faithfully_and_faults_about_the_rate_asked() {
        let up = FaultServer::start().unwrap();
        up.route(
            "/v2/x",
            Reply::ok("text/plain", b"hello").header("X-Kept", "yes"),
        );
        let proxy = FaultProxy::start(up.addr(), 1, 0.0, Duration::ZERO).unwrap();
        let r = http::request(
            proxy.addr(),
            "GET",
            "/v2/x",
            &[("Range", "bytes=1-".into())],
            b"",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.header("x-kept"), Some("yes"));
        assert_eq!(proxy.seen()[0].range.as_deref(), Some("bytes=1-"));

        proxy.reseed(42, 0.3);
        let mut faulted = 0;
        for i in 0..400 {
            let path = format!("/v2/x?{i}");
            let ok = http::request(proxy.addr(), "GET", &path, &[], b"")
                .is_ok_and(|r| r.status == 404 && r.body.is_empty());
            faulted += usize::from(!ok);
        }
        let counts = proxy.counts();
        assert_eq!(counts.requests, 400);
        // Stalls (zero here) answer normally; every other kind shows.
        let visible = counts.injected() - counts.faults.get("stall").copied().unwrap_or(0);
        assert_eq!(faulted as u64, visible, "{counts}");
        assert!((80..=160).contains(&counts.injected()), "{counts}");
        assert!(counts.faults.len() >= 6, "{counts}");
    }

    #[test]
    fn a_truncated_body_stops_where_asked() {
        let up = FaultServer::start().unwrap();
        up.route("/v2/x", Reply::ok("text/plain", &[7u8; 1000]));
        let proxy = FaultProxy::start(up.addr(), 1, 0.0, Duration::ZERO).unwrap();
        proxy.fault_next(Fault::Truncate { keep: Some(300) });
        let mut s = TcpStream::connect(proxy.addr()).unwrap();
        s.write_all(b"GET /v2/x HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Content-Length: 1000"), "{text}");
        let body = raw.split(|&b| b == b'\n').next_back().unwrap();
        assert_eq!(body.len(), 300);
        assert_eq!(proxy.counts().faults.get("truncate"), Some(&1));
    }
}
