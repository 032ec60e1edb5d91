//! Reading files out of an image layer while downloading as little of it as possible: the
//! compression is told by magic bytes (gzip, zstd or none, whatever the media type says), tar
//! entries are read in order, and reading stops as soon as every wanted file is found.
//!
//! A layer is attacker-controlled input, so the amount any entry may decompress to is capped,
//! and so is the ratio between what is decompressed and what was downloaded: a compression bomb
//! fails after a bounded amount of work, with a message saying so.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Caps on what a layer may make us do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest wanted file (a real `image-references` is about 100 KiB).
    pub wanted_max: u64,
    /// Largest entry that may be skipped over.
    pub entry_max: u64,
    /// Decompressed bytes allowed per downloaded byte, beyond `slack`.
    pub ratio: u64,
    pub slack: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wanted_max: 16 << 20,
            entry_max: 4 << 30,
            ratio: 200,
            slack: 256 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Reading the blob failed (network, timeout, digest mismatch).
    #[error("{0}")]
    Read(io::Error),
    /// The layer is not a (compressed) tar archive.
    #[error("{0}")]
    Format(String),
    /// A compression bomb, or a wanted file far larger than any real one.
    #[error("{0}")]
    TooLarge(String),
}

/// Counts bytes passing through a reader into a shared cell.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Fails once the decompressed side outgrows the compressed side by more than the limits allow;
/// and, while a wanted entry is being reached, estimates from the compression ratio so far how
/// far into the blob it ends, for the blob reader's next range.
struct Guarded<R> {
    inner: R,
    compressed: Rc<Cell<u64>>,
    out: u64,
    limits: Limits,
    /// Decompressed offset the scan needs to reach (0: unknown).
    target: Rc<Cell<u64>>,
    hint: Option<Arc<AtomicU64>>,
    /// Bytes read for the current entry's headers, while the tar reader is reading them (it
    /// keeps GNU long names and links and PAX records whole, in memory).
    header: Rc<Cell<Option<u64>>>,
}

/// Most bytes one entry's headers may take (a long name is at most a few KiB).
const HEADER_MAX: u64 = 1 << 20;

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if let Some(h) = self.header.get() {
            let h = h + n as u64;
            if h > HEADER_MAX {
                return Err(io::Error::other(Bomb(format!(
                    "a tar header (long name, long link or PAX records) is over {} MiB",
                    HEADER_MAX >> 20
                ))));
            }
            self.header.set(Some(h));
        }
        let allowed = self
            .compressed
            .get()
            .saturating_mul(self.limits.ratio)
            .saturating_add(self.limits.slack);
        let target = self.target.get();
        if let Some(h) = &self.hint
            && target > self.out
            && self.out > 0
        {
            let ratio = self.compressed.get() as f64 / self.out as f64;
            // 5 % and a little more than the estimate, so one request usually suffices.
            h.store(
                (target as f64 * ratio * 1.05) as u64 + 1024,
                Ordering::Relaxed,
            );
        }
        if self.out > allowed {
            return Err(io::Error::other(Bomb(format!(
                "the layer decompresses to more than {}x its size (a compression bomb?); gave up after {} MiB",
                self.limits.ratio,
                self.out >> 20
            ))));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct Bomb(String);

impl std::fmt::Display for Bomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Bomb {}

fn classify(e: io::Error) -> LayerError {
    if let Some(b) = e.get_ref().and_then(|r| r.downcast_ref::<Bomb>()) {
        return LayerError::TooLarge(b.0.clone());
    }
    if crate::registry::TransferError::is_transfer(&e) {
        LayerError::Read(e)
    } else {
        LayerError::Format(format!("the layer is not a readable tar archive: {e}"))
    }
}

/// `./a/b`, `/a/b` and `a/b` name the same file.
fn clean(name: &str) -> &str {
    name.trim_start_matches("./").trim_start_matches('/')
}

/// The decompressed stream of a layer, the compression told by its magic bytes (gzip, zstd or
/// none), whatever the media type says.
pub fn decoder<'a, B: BufRead + 'a>(mut buffered: B) -> io::Result<Box<dyn Read + 'a>> {
    let magic: Vec<u8> = buffered.fill_buf()?.iter().take(4).copied().collect();
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(super::inflate::LazyGz::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
    } else {
        Box::new(buffered)
    })
}

/// Reads `blob` until every name in `wanted` is found, then stops. Returns the files found
/// (all of them, unless the archive ended first). `hint`, when given, receives estimates of how
/// far into the blob the wanted files end (see `registry::BlobReader::hint`).
pub fn scan<R: Read>(
    blob: R,
    wanted: &[&str],
    limits: Limits,
    hint: Option<Arc<AtomicU64>>,
) -> Result<BTreeMap<String, Vec<u8>>, LayerError> {
    let compressed = Rc::new(Cell::new(0));
    let mut buffered = BufReader::with_capacity(
        64 << 10,
        Counted {
            inner: blob,
            count: compressed.clone(),
        },
    );
    // Filled first so that a read error is classified as one, not as bad compression.
    buffered.fill_buf().map_err(classify)?;
    let decoded =
        decoder(buffered).map_err(|e| LayerError::Format(format!("bad zstd stream: {e}")))?;
    let target = Rc::new(Cell::new(0));
    let header = Rc::new(Cell::new(None));
    let guarded = Guarded {
        inner: decoded,
        compressed,
        out: 0,
        limits,
        target: target.clone(),
        hint,
        header: header.clone(),
    };
    let mut archive = tar::Archive::new(guarded);
    let mut found = BTreeMap::new();
    let mut entries = archive.entries().map_err(classify)?;
    loop {
        // Every entry's data is read or skipped below, so what the tar reader reads in `next`
        // is headers (and padding) only.
        header.set(Some(0));
        let next = entries.next();
        header.set(None);
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(classify)?;
        let size = entry.header().size().map_err(classify)?;
        let path = entry.path_bytes();
        let name = clean(&String::from_utf8_lossy(&path)).to_string();
        if wanted.contains(&name.as_str()) && entry.header().entry_type().is_file() {
            if size > limits.wanted_max {
                return Err(LayerError::TooLarge(format!(
                    "`{name}` is {size} bytes; refusing anything over {} MiB",
                    limits.wanted_max >> 20
                )));
            }
            // Where this entry's data ends; when more files are wanted, allow for a small one
            // right after it (the payload's `release-metadata` follows `image-references`).
            let more = if found.len() + 1 < wanted.len() {
                4096
            } else {
                0
            };
            target.set(entry.raw_file_position() + size.div_ceil(512) * 512 + more);
            let mut data = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(limits.wanted_max + 1)
                .read_to_end(&mut data)
                .map_err(classify)?;
            found.insert(name, data);
            if found.len() == wanted.len() {
                break;
            }
        } else if size > limits.entry_max {
            return Err(LayerError::TooLarge(format!(
                "entry `{name}` claims {size} bytes, over the {} GiB limit",
                limits.entry_max >> 30
            )));
        } else {
            io::copy(&mut entry, &mut io::sink()).map_err(classify)?;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn finds_files_in_every_compression() {
        let t = tarball(&[("a", b"x".to_vec()), ("./etc/f.json", b"{}".to_vec())]);
        for blob in [
            t.clone(),
            gz(&t),
            zstd::encode_all(t.as_slice(), 3).unwrap(),
        ] {
            let got = scan(blob.as_slice(), &["etc/f.json"], Limits::default(), None).unwrap();
            assert_eq!(got["etc/f.json"], b"{}");
        }
    }

    #[test]
    fn stops_at_the_last_wanted_file() {
        let t = tarball(&[("a", b"1".to_vec()), ("b", b"2".to_vec())]);
        // Truncate after the first entry: the scan must not need the rest.
        let got = scan(&t[..1024], &["a"], Limits::default(), None).unwrap();
        assert_eq!(got["a"], b"1");
    }

    #[test]
    fn a_bomb_fails_fast() {
        let t = tarball(&[("zeros", vec![0u8; 64 << 20]), ("f", b"x".to_vec())]);
        let bomb = gz(&t);
        let limits = Limits {
            slack: 1 << 20,
            ..Limits::default()
        };
        match scan(bomb.as_slice(), &["f"], limits, None) {
            Err(LayerError::TooLarge(m)) => assert!(m.contains("compression bomb"), "{m}"),
            other => panic!("{other:?}"),
        }
        let big = tarball(&[("f", vec![b'x'; 2 << 20])]);
        let limits = Limits {
            wanted_max: 1 << 20,
            ..Limits::default()
        };
        assert!(matches!(
            scan(big.as_slice(), &["f"], limits, None),
            Err(LayerError::TooLarge(_))
        ));
    }

    #[test]
    fn a_huge_long_name_is_refused_and_a_long_one_read() {
        let long = format!("release-manifests/{}/f", "d".repeat(300));
        let t = tarball(&[(long.as_str(), b"x".to_vec())]);
        let got = scan(t.as_slice(), &[long.as_str()], Limits::default(), None).unwrap();
        assert_eq!(got[&long], b"x");

        let mut h = tar::Header::new_gnu();
        h.set_path("././@LongLink").unwrap();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(HEADER_MAX + 1);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, io::repeat(b'a').take(HEADER_MAX + 1)).unwrap();
        let bomb = gz(&b.into_inner().unwrap());
        match scan(bomb.as_slice(), &["f"], Limits::default(), None) {
            Err(LayerError::TooLarge(m)) => assert!(m.contains("tar header"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_format_error() {
        let got = scan(
            &b"this is not a tar archive at all, just text"[..],
            &["f"],
            Limits::default(),
            None,
        );
        assert!(matches!(got, Err(LayerError::Format(_))), "{got:?}");
    }

    #[test]
    fn estimates_where_the_wanted_file_ends() {
        let text: String = (0..20_000).map(|i| format!("{i:x}")).collect();
        let t = tarball(&[("refs", text.into_bytes()), ("rest", vec![b'y'; 1 << 20])]);
        let blob = gz(&t);
        let hint = Arc::new(AtomicU64::new(0));
        scan(
            blob.as_slice(),
            &["refs"],
            Limits::default(),
            Some(hint.clone()),
        )
        .unwrap();
        let prefix = gz(&t[..512 + 82_000]).len() as u64;
        let h = hint.load(Ordering::Relaxed);
        assert!(
            h > prefix / 2 && h < prefix * 2,
            "hint {h}, prefix {prefix}"
        );
    }
}
