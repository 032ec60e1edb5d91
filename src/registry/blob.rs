//! A blob as a synchronous `Read`, fetched in growing HTTP ranges and hashed as it streams.
//!
//! Ranges are what make "read only until the file is found" cheap on the wire, not just in
//! memory: a plain GET lets the registry push up to the socket buffers' worth (megabytes on
//! loopback) before the client hangs up. The first window is small (16 KiB, about what a
//! payload's compressed `image-references` takes); after it, the reader asks for what the
//! caller's [`BlobReader::hint`] says it still needs, else for twice the last window, up to
//! 8 MiB, so reading a whole layer costs a handful of requests. A registry that ignores `Range`
//! (answers 200) is simply streamed.
//!
//! A body that breaks mid-stream (a reset, a timeout, a connection closed before the length it
//! announced) is resumed from the first byte not yet received, with a `Range` request; where
//! the registry answers such a request with the whole blob, the bytes already received are
//! skipped. Resumes follow the client's retry policy, counted per run of failures without
//! progress: a registry that keeps breaking at the same byte is given up on, one that breaks
//! now and then while delivering is not. The digest is checked over the whole blob either way,
//! over exactly the bytes handed to the caller.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use reqwest::header::CONTENT_RANGE;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use super::body::{error_body, error_summary};
use super::route::{Route, describe};
use super::transport::{Held, Request};
use super::{Descriptor, Inner, RegistryError, status_error};
use crate::domain::Digest;

const FIRST_WINDOW: u64 = 16 << 10;
/// The least a hinted range asks for, so that a low estimate does not cost many round trips.
const MIN_HINTED: u64 = 4 << 10;
const MAX_WINDOW: u64 = 8 << 20;

/// A blob being read from the registry.
///
/// Reading to the end checks the sha256 of everything read against the blob's digest; a
/// mismatch turns the final read into an `InvalidData` error, so a caller that reads to the end
/// never acts on content that does not match. A reader dropped before the end stops the
/// transfer: that saves the download, but the bytes read so far are then *not* verified
/// (nothing can be, short of reading the whole blob). [`BlobReader::verified`] tells which.
pub struct BlobReader {
    route: Route,
    url: String,
    held: Option<Held>,
    chunk: bytes::Bytes,
    hasher: Sha256,
    expected: Digest,
    size: u64,
    /// Bytes received (and hashed) so far; also the next range's start.
    read: u64,
    /// End (exclusive) of the range in flight; `None` when streaming the whole blob.
    range_end: Option<u64>,
    window: u64,
    /// How far into the blob the caller expects to need (0: no idea).
    hint: Arc<AtomicU64>,
    verified: bool,
    /// Bytes still to drop from the response in flight: a restart from byte 0 (the registry
    /// ignored a resume's `Range`) repeats what was already received and hashed.
    skip: u64,
    /// The body's failures since the last progress, where the last one happened (`read`),
    /// and when the first of them happened.
    failures: u32,
    failed_at: u64,
    streak: Instant,
    /// Requests made to resume a broken body.
    resumes: u32,
    /// Last, so that the response above is dropped before the runtime it belongs to.
    inner: Arc<Inner>,
}

impl BlobReader {
    pub(crate) fn open(
        inner: Arc<Inner>,
        route: Route,
        url: String,
        blob: &Descriptor,
    ) -> Result<BlobReader, RegistryError> {
        let mut r = BlobReader {
            inner,
            route,
            url,
            held: None,
            chunk: bytes::Bytes::new(),
            hasher: Sha256::new(),
            expected: blob.digest.clone(),
            size: blob.size,
            read: 0,
            range_end: None,
            window: FIRST_WINDOW,
            hint: Arc::new(AtomicU64::new(0)),
            verified: false,
            skip: 0,
            failures: 0,
            failed_at: 0,
            streak: Instant::now(),
            resumes: 0,
        };
        r.request(false)?;
        Ok(r)
    }

    /// Asks for the next window (or the whole blob when it is smaller than the window), from
    /// the first byte not yet received. A resume asks for the same window size again.
    fn request(&mut self, resume: bool) -> Result<(), RegistryError> {
        let ranged = self.size > self.window || self.read > 0;
        let hinted = self.hint.load(Ordering::Relaxed);
        let end = if hinted > self.read {
            hinted
                .max(self.read + MIN_HINTED)
                .min(self.read + MAX_WINDOW)
        } else {
            self.read + self.window
        }
        .min(self.size);
        let header = ranged.then(|| format!("bytes={}-{}", self.read, end - 1));
        let t = &self.inner.transport;
        let req = Request {
            whole_timeout: false,
            range: header.as_deref(),
            ..Request::new(&self.route, Method::GET, &self.url)
        };
        let held = self.inner.rt.block_on(async {
            let held = t.send(&req).await?;
            let status = held.response.status();
            if !status.is_success() {
                let body = error_body(req.route, req.url, held.response).await?;
                return Err(status_error(
                    req.route,
                    req.url,
                    status,
                    error_summary(&body),
                ));
            }
            Ok(held)
        })?;
        if held.response.status() == StatusCode::PARTIAL_CONTENT {
            self.range_end = Some(self.partial_end(&held, header.is_some(), end)?);
            self.skip = 0;
        } else {
            // The whole blob from its start: stream it, dropping what was already received.
            self.range_end = None;
            self.skip = self.read;
        }
        if !resume && (hinted <= self.read || self.read == 0) {
            self.window = (self.window * 2).min(MAX_WINDOW);
        }
        self.held = Some(held);
        Ok(())
    }

    /// Where a 206 answer ends (exclusive): its `Content-Range`, which must start at the first
    /// byte not yet received, else the end asked for.
    fn partial_end(&self, held: &Held, asked: bool, end: u64) -> Result<u64, RegistryError> {
        let malformed = |message: String| RegistryError::Malformed {
            reference: self.route.source.to_string(),
            tried: self.url.clone(),
            message,
        };
        if !asked {
            return Err(malformed(
                "a partial answer to a request for the whole blob".into(),
            ));
        }
        let Some(value) = held.response.headers().get(CONTENT_RANGE) else {
            return Ok(end);
        };
        let text = value.to_str().unwrap_or_default();
        match parse_content_range(text) {
            Some((first, last)) if first == self.read && last < self.size => Ok(last + 1),
            _ => Err(malformed(format!(
                "asked for bytes from {}, got `Content-Range: {text}`",
                self.read
            ))),
        }
    }

    /// A handle through which the caller tells how far into the blob (in bytes from its start)
    /// it expects to need to read; the next range request stops there instead of doubling the
    /// last window. Zero, the initial value, means "no idea".
    pub fn hint(&self) -> Arc<AtomicU64> {
        self.hint.clone()
    }

    /// Compressed bytes received so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Requests made so far to resume a body that broke mid-stream.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// Whether the blob was read to its end and matched its digest.
    pub fn verified(&self) -> bool {
        self.verified
    }

    /// Reads and hashes what is left, so that the digest gets checked.
    pub fn finish(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    fn fail(&self, kind: io::ErrorKind, what: String) -> io::Error {
        TransferError::io(
            kind,
            format!(
                "reading `{}` from `{}`: {what}",
                self.route.source, self.url
            ),
        )
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        loop {
            let Some(held) = self.held.as_mut() else {
                return Ok(false);
            };
            let timeout = self.inner.transport.timeout;
            let next = self
                .inner
                .rt
                .block_on(async { tokio::time::timeout(timeout, held.response.chunk()).await });
            let (kind, broken) = match next {
                Err(_) => (io::ErrorKind::TimedOut, "timed out".to_string()),
                Ok(Err(e)) => (io::ErrorKind::Other, describe(&e)),
                Ok(Ok(Some(chunk))) => match self.take(chunk)? {
                    Some(chunk) => {
                        self.chunk = chunk;
                        return Ok(true);
                    }
                    None => continue,
                },
                Ok(Ok(None)) => {
                    self.held = None;
                    if self.read == self.size {
                        return self.check().map(|()| false);
                    }
                    if self.range_end == Some(self.read) {
                        self.request(false)
                            .map_err(|e| self.fail(io::ErrorKind::Other, e.to_string()))?;
                        continue;
                    }
                    let why = format!("the body ended at byte {} of {}", self.read, self.size);
                    (io::ErrorKind::UnexpectedEof, why)
                }
            };
            self.resume(kind, broken)?;
        }
    }

    /// Counts, drops what a restarted stream repeats, and hashes a chunk received; `None` when
    /// nothing of it is new.
    fn take(&mut self, mut chunk: bytes::Bytes) -> io::Result<Option<bytes::Bytes>> {
        self.inner
            .transport
            .received
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if self.skip > 0 {
            let n = self.skip.min(chunk.len() as u64);
            let _ = chunk.split_to(n as usize);
            self.skip -= n;
        }
        if chunk.is_empty() {
            return Ok(None);
        }
        if self.read + chunk.len() as u64 > self.size {
            self.held = None;
            return Err(self.fail(
                io::ErrorKind::InvalidData,
                format!("the blob is larger than its {} bytes", self.size),
            ));
        }
        self.hasher.update(&chunk);
        self.read += chunk.len() as u64;
        Ok(Some(chunk))
    }

    /// After the body broke (`why`): waits as the retry policy says and asks for the rest, or
    /// gives up when the failures since the last progress have spent the budget.
    fn resume(&mut self, kind: io::ErrorKind, why: String) -> io::Result<()> {
        self.held = None;
        if self.failures == 0 || self.read > self.failed_at {
            self.failures = 0;
            self.streak = Instant::now();
        }
        self.failed_at = self.read;
        let policy = self.inner.transport.policy;
        let Some(wait) = policy.wait(self.failures, None, self.streak) else {
            let tries = self.failures + 1;
            return Err(self.fail(kind, format!("{why} ({tries} times without progress)")));
        };
        self.failures += 1;
        self.resumes += 1;
        // The timer is made inside the runtime: `sleep` needs its time driver.
        self.inner
            .rt
            .block_on(async { tokio::time::sleep(wait).await });
        self.request(true)
            .map_err(|e| self.fail(io::ErrorKind::Other, format!("{why}; resuming: {e}")))
    }

    fn check(&mut self) -> io::Result<()> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if actual != self.expected.as_str() || self.read != self.size {
            return Err(self.fail(
                io::ErrorKind::InvalidData,
                format!(
                    "got {} bytes with digest `{actual}`, expected {} bytes with `{}`; the content was not used",
                    self.read, self.size, self.expected
                ),
            ));
        }
        self.verified = true;
        Ok(())
    }
}

/// The error inside the `io::Error`s a [`BlobReader`] returns: the transfer failed or the
/// digest did not match. Decoders wrapping the reader pass it through, so callers can tell a
/// failed download from bad content with [`TransferError::is_transfer`].
#[derive(Debug)]
pub struct TransferError(String);

impl TransferError {
    fn io(kind: io::ErrorKind, message: String) -> io::Error {
        io::Error::new(kind, TransferError(message))
    }

    /// Whether `e` came from the transfer rather than from what was read.
    pub fn is_transfer(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|r| r.is::<TransferError>())
    }
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TransferError {}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`): the first and last byte.
fn parse_content_range(text: &str) -> Option<(u64, u64)> {
    let range = text.trim().strip_prefix("bytes ")?.split('/').next()?;
    let (first, last) = range.split_once('-')?;
    let (first, last) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    (first <= last).then_some((first, last))
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use driver_matrix_sandbox::faulty::{FaultServer, Reply};
    use driver_matrix_sandbox::proxy::{Fault, FaultProxy};
    use driver_matrix_sandbox::{Pusher, Registry, oci};

    use super::*;
    use crate::domain::ImageRef;

    use crate::registry::Client;

    fn client(addr: &str) -> Client {
        crate::registry::test_client(addr)
    }

    /// Reads `blob` of `repo` through `proxy` to the end.
    fn read_all(proxy: &FaultProxy, repo: &str, blob: &[u8]) -> (Vec<u8>, BlobReader) {
        let r: ImageRef = format!("{}/{repo}:t", proxy.addr()).parse().unwrap();
        let desc = Descriptor {
            media_type: "application/octet-stream".into(),
            digest: oci::sha256(blob).parse().unwrap(),
            size: blob.len() as u64,
        };
        let mut reader = client(proxy.addr()).blob_reader(&r, &desc).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        (out, reader)
    }

    /// The `Range` headers of the blob GETs the proxy saw.
    fn ranges(proxy: &FaultProxy) -> Vec<Option<String>> {
        proxy
            .seen()
            .into_iter()
            .filter(|s| s.method == "GET" && s.path.contains("/blobs/"))
            .map(|s| s.range)
            .collect()
    }

    #[test]
    fn a_body_cut_short_resumes_from_the_last_byte_where_ranges_are_honoured() {
        let registry = Registry::shared();
        let repo = format!("unit{}/resume", std::process::id());
        let blob = oci::noise(100_000, 3);
        Pusher::new(registry.addr()).blob(&repo, &blob).unwrap();
        let proxy = FaultProxy::start(registry.addr(), 0, 0.0, Duration::ZERO).unwrap();
        // The first window is cut after 5000 bytes, the resume is reset once, then cut again.
        proxy.fault_next(Fault::Truncate { keep: Some(5000) });
        proxy.fault_next(Fault::Reset);
        proxy.fault_next(Fault::Truncate { keep: Some(1000) });
        let (out, reader) = read_all(&proxy, &repo, &blob);
        assert!(out == blob && reader.verified());
        assert_eq!(reader.resumes(), 2);
        let seen = ranges(&proxy);
        assert_eq!(seen[0].as_deref(), Some("bytes=0-16383"));
        // The resume asks for the next window (32 KiB) from the first byte not received; the
        // reset is retried by the transport with the same range.
        assert_eq!(seen[1].as_deref(), Some("bytes=5000-37767"));
        assert_eq!(seen[2].as_deref(), Some("bytes=5000-37767"));
        assert_eq!(seen[3].as_deref(), Some("bytes=6000-38767"));
    }

    #[test]
    fn a_body_cut_short_restarts_and_skips_where_ranges_are_ignored() {
        let blob = oci::noise(3000, 4);
        let digest = oci::sha256(&blob);
        let up = FaultServer::start().unwrap();
        up.route(
            &format!("/v2/a/b/blobs/{digest}"),
            Reply::ok("application/octet-stream", &blob),
        );
        let proxy = FaultProxy::start(up.addr(), 0, 0.0, Duration::ZERO).unwrap();
        proxy.fault_next(Fault::Truncate { keep: Some(1200) });
        proxy.fault_next(Fault::Truncate { keep: Some(700) });
        let (out, reader) = read_all(&proxy, "a/b", &blob);
        assert!(out == blob && reader.verified());
        // A small blob is asked for whole; the resumes ask from byte 1200 and get it all again:
        // the second is cut before byte 1200, without progress, the third completes.
        assert_eq!(reader.resumes(), 2);
        assert_eq!(
            ranges(&proxy),
            [
                None,
                Some("bytes=1200-2999".into()),
                Some("bytes=1200-2999".into())
            ]
        );
    }

    #[test]
    fn a_body_that_keeps_breaking_at_the_same_byte_is_given_up_on() {
        let blob = oci::noise(3000, 5);
        let digest = oci::sha256(&blob);
        let up = FaultServer::start().unwrap();
        up.route(
            &format!("/v2/a/b/blobs/{digest}"),
            Reply::ok("application/octet-stream", &blob),
        );
        let proxy = FaultProxy::start(up.addr(), 0, 0.0, Duration::ZERO).unwrap();
        for _ in 0..10 {
            proxy.fault_next(Fault::Truncate { keep: Some(100) });
        }
        let r: ImageRef = format!("{}/a/b:t", proxy.addr()).parse().unwrap();
        let desc = Descriptor {
            media_type: "application/octet-stream".into(),
            digest: digest.parse().unwrap(),
            size: blob.len() as u64,
        };
        let mut reader = client(proxy.addr()).blob_reader(&r, &desc).unwrap();
        let e = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(TransferError::is_transfer(&e), "{e}");
        assert!(e.to_string().contains("4 times without progress"), "{e}");
        assert!(!reader.verified());
        assert_eq!(ranges(&proxy).len(), 4, "one try and three resumes");
    }
}
