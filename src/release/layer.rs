//! Reading files out of an image layer while downloading as little of it as possible: the
//! compression is told by magic bytes (gzip, zstd or none, whatever the media type says), tar
//! entries are read in order, and reading stops as soon as every wanted file is found.
//!
//! A layer is attacker-controlled input, so the amount any entry may decompress to is capped,
//! and so is the ratio between what is decompressed and what was downloaded: a compression bomb
//! fails after a bounded amount of work, with a message saying so.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tarball::{self, HeaderLimits, Pending};

/// Caps on what a layer may make us do: the one set of limits every layer reader takes, this
/// one for release payloads and DTKs ([`Limits::RELEASE`]) and `verify --deep`'s scanner
/// (`verify::scan`, [`Limits::DEEP`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes allowed per downloaded byte, beyond `slack`.
    pub ratio: u64,
    pub slack: u64,
    /// Largest entry that may be skipped over.
    pub entry_max: u64,
    /// Largest GNU long-name or long-link header (a path; Linux allows 4 KiB).
    pub long_name_max: u64,
    /// Largest PAX extended header (paths, times, extended attributes).
    pub pax_max: u64,
    /// Largest wanted file (a real `image-references` is about 100 KiB).
    pub wanted_max: u64,
    /// Largest module read (real ones are kilobytes to tens of megabytes).
    pub module_max: u64,
    /// Bytes of names kept between layers: module paths and `vermagic`s, whiteouts.
    pub kept_max: usize,
}

impl Limits {
    /// What the resolver allows a release payload's or a DTK's layer.
    pub const RELEASE: Limits = Limits {
        ratio: 200,
        slack: 256 << 20,
        entry_max: 4 << 30,
        long_name_max: 64 << 10,
        pax_max: 1 << 20,
        wanted_max: 16 << 20,
        module_max: 64 << 20,
        kept_max: 16 << 20,
    };

    /// What one image's layers may make `verify --deep` do: the same, with less slack.
    pub const DEEP: Limits = Limits {
        slack: 64 << 20,
        ..Limits::RELEASE
    };

    /// The caps on extension headers, for [`tarball::extension`].
    pub fn headers(&self) -> HeaderLimits {
        HeaderLimits {
            long_name_max: self.long_name_max,
            pax_max: self.pax_max,
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
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
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
        tarball::check_ratio(
            self.out,
            self.compressed.get(),
            self.limits.ratio,
            self.limits.slack,
        )?;
        Ok(n)
    }
}

fn classify(e: io::Error) -> LayerError {
    if let Some(b) = e.get_ref().and_then(|r| r.downcast_ref::<tarball::Bomb>()) {
        return LayerError::TooLarge(b.0.clone());
    }
    if let Some(o) = e
        .get_ref()
        .and_then(|r| r.downcast_ref::<tarball::Oversized>())
    {
        return LayerError::TooLarge(o.0.clone());
    }
    if crate::registry::TransferError::is_transfer(&e) {
        LayerError::Read(e)
    } else {
        LayerError::Format(format!("the layer is not a readable tar archive: {e}"))
    }
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
    let (mut buffered, compressed) = tarball::counted(blob);
    // Filled first so that a read error is classified as one, not as bad compression.
    buffered.fill_buf().map_err(classify)?;
    let decoded =
        decoder(buffered).map_err(|e| LayerError::Format(format!("bad zstd stream: {e}")))?;
    let target = Rc::new(Cell::new(0));
    let guarded = Guarded {
        inner: decoded,
        compressed,
        out: 0,
        limits,
        target: target.clone(),
        hint,
    };
    let mut archive = tar::Archive::new(guarded);
    let mut found = BTreeMap::new();
    // Raw entries: extension headers are read here, each within its cap (`crate::tarball`).
    let mut pending = Pending::default();
    for entry in archive.entries().map_err(classify)?.raw(true) {
        let mut entry = entry.map_err(classify)?;
        if tarball::extension(&mut entry, &mut pending, limits.headers()).map_err(classify)? {
            continue;
        }
        let (name, size) =
            tarball::path_and_size(&entry, std::mem::take(&mut pending)).map_err(classify)?;
        if wanted.contains(&name.as_str()) && entry.header().entry_type().is_file() {
            // Where this entry's data ends; when more files are wanted, allow for a small one
            // right after it (the payload's `release-metadata` follows `image-references`).
            let more = if found.len() + 1 < wanted.len() {
                4096
            } else {
                0
            };
            target.set(entry.raw_file_position() + size.div_ceil(512) * 512 + more);
            let data = read_wanted(&mut entry, &name, size, limits)?;
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

/// A wanted file's bytes, refused over [`Limits::wanted_max`].
fn read_wanted<R: Read>(
    entry: &mut R,
    name: &str,
    size: u64,
    limits: Limits,
) -> Result<Vec<u8>, LayerError> {
    if size > limits.wanted_max {
        return Err(LayerError::TooLarge(format!(
            "`{name}` is {size} bytes; refusing anything over {} MiB",
            limits.wanted_max >> 20
        )));
    }
    let mut data = Vec::with_capacity(size as usize);
    entry
        .take(limits.wanted_max + 1)
        .read_to_end(&mut data)
        .map_err(classify)?;
    Ok(data)
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
            let got = scan(blob.as_slice(), &["etc/f.json"], Limits::RELEASE, None).unwrap();
            assert_eq!(got["etc/f.json"], b"{}");
        }
    }

    #[test]
    fn stops_at_the_last_wanted_file() {
        let t = tarball(&[("a", b"1".to_vec()), ("b", b"2".to_vec())]);
        // Truncate after the first entry: the scan must not need the rest.
        let got = scan(&t[..1024], &["a"], Limits::RELEASE, None).unwrap();
        assert_eq!(got["a"], b"1");
    }

    #[test]
    fn a_bomb_fails_fast() {
        let t = tarball(&[("zeros", vec![0u8; 64 << 20]), ("f", b"x".to_vec())]);
        let bomb = gz(&t);
        let limits = Limits {
            slack: 1 << 20,
            ..Limits::RELEASE
        };
        match scan(bomb.as_slice(), &["f"], limits, None) {
            Err(LayerError::TooLarge(m)) => assert!(m.contains("compression bomb"), "{m}"),
            other => panic!("{other:?}"),
        }
        let big = tarball(&[("f", vec![b'x'; 2 << 20])]);
        let limits = Limits {
            wanted_max: 1 << 20,
            ..Limits::RELEASE
        };
        assert!(matches!(
            scan(big.as_slice(), &["f"], limits, None),
            Err(LayerError::TooLarge(_))
        ));
    }

    #[test]
    fn an_oversized_extension_header_is_refused_before_it_is_read() {
        for kind in [
            tar::EntryType::GNULongName,
            tar::EntryType::XHeader,
            tar::EntryType::GNULongLink,
        ] {
            // A header that claims 3 GiB of long name, then nothing: the old reader kept such a
            // name whole (bounded only by the ratio guard).
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_path("././@LongLink").unwrap();
            h.set_size(3 << 30);
            h.set_cksum();
            let mut t = h.as_bytes().to_vec();
            t.extend_from_slice(&[0u8; 4096]);
            match scan(gz(&t).as_slice(), &["f"], Limits::RELEASE, None) {
                Err(LayerError::TooLarge(m)) => assert!(m.contains("header"), "{m}"),
                other => panic!("{kind:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn long_names_and_pax_paths_name_the_wanted_file() {
        let long = format!("{}/f.json", "d".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"{}"[..]).unwrap();
        let t = b.into_inner().unwrap();
        let got = scan(t.as_slice(), &[long.as_str()], Limits::RELEASE, None).unwrap();
        assert_eq!(got[&long], b"{}");
    }

    #[test]
    fn a_long_name_over_the_readers_cap_is_refused() {
        let long = format!("{}/f.json", "d".repeat(150));
        let t = tarball(&[(long.as_str(), b"{}".to_vec())]);
        let limits = Limits {
            long_name_max: 64,
            ..Limits::RELEASE
        };
        let err = scan(t.as_slice(), &[long.as_str()], limits, None).unwrap_err();
        assert!(err.to_string().contains("GNU long-name header"), "{err}");
    }

    #[test]
    fn each_reader_keeps_its_limits() {
        let (release, deep) = (Limits::RELEASE, Limits::DEEP);
        assert_eq!((release.slack, deep.slack), (256 << 20, 64 << 20));
        for l in [release, deep] {
            assert_eq!((l.ratio, l.entry_max), (200, 4 << 30));
            assert_eq!((l.long_name_max, l.pax_max), (64 << 10, 1 << 20));
            assert_eq!(
                (l.wanted_max, l.module_max, l.kept_max),
                (16 << 20, 64 << 20, 16 << 20)
            );
        }
    }

    #[test]
    fn garbage_is_a_format_error() {
        let got = scan(
            &b"this is not a tar archive at all, just text"[..],
            &["f"],
            Limits::RELEASE,
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
            Limits::RELEASE,
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
