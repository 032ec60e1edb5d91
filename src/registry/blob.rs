//! A blob as a synchronous `Read`, fetched in growing HTTP ranges and hashed as it streams.
//!
//! Ranges are what make "read only until the file is found" cheap on the wire, not just in
//! memory: a plain GET lets the registry push up to the socket buffers' worth (megabytes on
//! loopback) before the client hangs up. The first window is small (16 KiB, about what a
//! payload's compressed `image-references` takes); after it, the reader asks for what the
//! caller's [`BlobReader::hint`] says it still needs, else for twice the last window, up to
//! 8 MiB, so reading a whole layer costs a handful of requests. A registry that ignores `Range`
//! (answers 200) is simply streamed.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use super::transport::{Held, Route, describe, said};
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
        };
        r.request()?;
        Ok(r)
    }

    /// Asks for the next window (or the whole blob when it is smaller than the window).
    fn request(&mut self) -> Result<(), RegistryError> {
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
        let (route, url) = (&self.route, &self.url);
        let held = self.inner.rt.block_on(async {
            let held = t
                .send(route, Method::GET, url, None, false, header.as_deref())
                .await?;
            let status = held.response.status();
            if !status.is_success() {
                let body = held.response.bytes().await.unwrap_or_default();
                return Err(status_error(route, url, status, said(&body)));
            }
            Ok(held)
        })?;
        let partial = held.response.status() == StatusCode::PARTIAL_CONTENT;
        if ranged && !partial && self.read > 0 {
            return Err(RegistryError::Malformed {
                reference: self.route.source.to_string(),
                tried: self.url.clone(),
                message: "the registry stopped honouring byte ranges mid-blob".into(),
            });
        }
        self.range_end = partial.then_some(end);
        if hinted <= self.read || self.read == 0 {
            self.window = (self.window * 2).min(MAX_WINDOW);
        }
        self.held = Some(held);
        Ok(())
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
            match next {
                Err(_) => return Err(self.fail(io::ErrorKind::TimedOut, "timed out".into())),
                Ok(Err(e)) => return Err(self.fail(io::ErrorKind::Other, describe(&e))),
                Ok(Ok(Some(chunk))) => {
                    if self.read + chunk.len() as u64 > self.size {
                        self.held = None;
                        return Err(self.fail(
                            io::ErrorKind::InvalidData,
                            format!("the blob is larger than its {} bytes", self.size),
                        ));
                    }
                    self.hasher.update(&chunk);
                    self.read += chunk.len() as u64;
                    self.inner
                        .transport
                        .received
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    self.chunk = chunk;
                    return Ok(true);
                }
                Ok(Ok(None)) => {
                    self.held = None;
                    if let Some(end) = self.range_end
                        && self.read < self.size
                    {
                        if self.read != end {
                            return Err(self.fail(
                                io::ErrorKind::UnexpectedEof,
                                format!("the range ended at byte {} instead of {end}", self.read),
                            ));
                        }
                        self.request()
                            .map_err(|e| self.fail(io::ErrorKind::Other, e.to_string()))?;
                        continue;
                    }
                    return self.check().map(|()| false);
                }
            }
        }
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
