//! Reading the tar stream of an image layer without trusting its headers: a GNU long-name,
//! long-link or PAX extension header is read only up to a cap (checked against its claimed size
//! before a byte is read), and its `path`, `size` and link target (`linkpath`) records are folded
//! into the entry that follows. The resolver's layer reader (`release::layer`) and `verify --deep`'s scanner
//! (`verify::scan`) both read layers this way, with `tar::Archive::entries().raw(true)`.

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

/// Caps on extension headers.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimits {
    /// Largest GNU long-name or long-link header (a path; Linux allows 4 KiB).
    pub long_name_max: u64,
    /// Largest PAX extended header (paths, times, extended attributes).
    pub pax_max: u64,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        HeaderLimits {
            long_name_max: 64 << 10,
            pax_max: 1 << 20,
        }
    }
}

/// Counts the bytes passing through a reader (the downloaded, compressed side of a layer).
pub struct Counted<R> {
    pub inner: R,
    pub count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// `blob` buffered (64 KiB) and counted: the reader, and the count of bytes read from it so far.
pub fn counted<R: Read>(blob: R) -> (BufReader<Counted<R>>, Rc<Cell<u64>>) {
    let count = Rc::new(Cell::new(0));
    let reader = BufReader::with_capacity(
        64 << 10,
        Counted {
            inner: blob,
            count: count.clone(),
        },
    );
    (reader, count)
}

/// A compression bomb: the layer decompressed to more than its ratio allows.
#[derive(Debug)]
pub struct Bomb(pub String);

impl std::fmt::Display for Bomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Bomb {}

/// Fails once `out` decompressed bytes outgrow `compressed` downloaded ones by more than
/// `ratio` times, beyond `slack`.
pub fn check_ratio(out: u64, compressed: u64, ratio: u64, slack: u64) -> io::Result<()> {
    if out > compressed.saturating_mul(ratio).saturating_add(slack) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            Bomb(format!(
                "the layer decompresses to more than {ratio}x its size (a compression bomb?); gave up after {} MiB",
                out >> 20
            )),
        ));
    }
    Ok(())
}

/// A header over its cap: the layer asks for more memory than any real one needs.
#[derive(Debug)]
pub struct Oversized(pub String);

impl std::fmt::Display for Oversized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Oversized {}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// What the extension headers before an entry said about it.
#[derive(Debug, Default)]
pub struct Pending {
    path: Option<Vec<u8>>,
    size: Option<u64>,
    /// A link's target, from a GNU long-link header or a PAX `linkpath` record.
    link: Option<Vec<u8>>,
}

/// Reads the data of an extension header of `size` bytes, refusing more than `max`.
fn read_header<R: Read>(entry: &mut R, size: u64, max: u64, what: &str) -> io::Result<Vec<u8>> {
    if size > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            Oversized(format!(
                "the layer has a {what} header of {size} bytes; refusing anything over {} KiB",
                max >> 10
            )),
        ));
    }
    let mut data = Vec::with_capacity(size as usize);
    entry.take(max).read_to_end(&mut data)?;
    Ok(data)
}

/// The records of a PAX header this reader uses.
#[derive(Default)]
struct PaxRecords {
    path: Option<Vec<u8>>,
    size: Option<u64>,
    link: Option<Vec<u8>>,
}

/// The `path`, `size` and `linkpath` records of a PAX header.
fn pax_records(data: &[u8]) -> io::Result<PaxRecords> {
    let (mut path, mut size, mut link) = (None, None, None);
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.map_err(|e| invalid(format!("a malformed PAX header: {e}")))?;
        match ext.key_bytes() {
            b"path" => path = Some(ext.value_bytes().to_vec()),
            b"linkpath" => link = Some(ext.value_bytes().to_vec()),
            b"size" => {
                let text = String::from_utf8_lossy(ext.value_bytes());
                size = Some(
                    text.trim()
                        .parse()
                        .map_err(|_| invalid(format!("a PAX size `{text}` that is no number")))?,
                );
            }
            _ => {}
        }
    }
    Ok(PaxRecords { path, size, link })
}

/// Reads a GNU long-name/long-link or PAX header into `pending`; false for any other entry.
pub fn extension<R: Read>(
    entry: &mut tar::Entry<R>,
    pending: &mut Pending,
    limits: HeaderLimits,
) -> io::Result<bool> {
    let kind = entry.header().entry_type();
    let size = entry.header().entry_size()?;
    if kind.is_gnu_longname() {
        let mut name = read_header(entry, size, limits.long_name_max, "GNU long-name")?;
        while name.last() == Some(&0) {
            name.pop();
        }
        pending.path = Some(name);
    } else if kind.is_gnu_longlink() {
        let mut link = read_header(entry, size, limits.long_name_max, "GNU long-link")?;
        while link.last() == Some(&0) {
            link.pop();
        }
        pending.link = Some(link);
    } else if kind.is_pax_local_extensions() {
        let data = read_header(entry, size, limits.pax_max, "PAX")?;
        let records = pax_records(&data)?;
        pending.path = records.path.or(pending.path.take());
        pending.link = records.link.or(pending.link.take());
        pending.size = records.size;
    } else if kind.is_pax_global_extensions() {
        read_header(entry, size, limits.pax_max, "PAX global")?;
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// The target of a symbolic or hard link entry (from its extension headers, else its own
/// header), as written: `None` for any other entry.
pub fn link_target<R: Read>(entry: &tar::Entry<R>, pending: &Pending) -> Option<String> {
    let kind = entry.header().entry_type();
    if !(kind.is_symlink() || kind.is_hard_link()) {
        return None;
    }
    let raw = match &pending.link {
        Some(l) => l.clone(),
        None => entry.link_name_bytes()?.into_owned(),
    };
    Some(String::from_utf8_lossy(&raw).into_owned())
}

/// The entry's path (from its extension headers, else its own header; `./a`, `/a` and `a` name
/// the same file) and size. A PAX size that disagrees with the header is refused: the archive
/// would read differently here than in buildah.
pub fn path_and_size<R: Read>(
    entry: &tar::Entry<R>,
    pending: Pending,
) -> io::Result<(String, u64)> {
    let size = entry.header().entry_size()?;
    if let Some(pax) = pending.size
        && pax != size
    {
        return Err(invalid(format!(
            "an entry whose PAX size {pax} differs from its header's {size}"
        )));
    }
    let raw = pending
        .path
        .unwrap_or_else(|| entry.path_bytes().into_owned());
    let raw = String::from_utf8_lossy(&raw);
    let path = raw
        .trim_start_matches("./")
        .trim_start_matches('/')
        .to_string();
    Ok((path, size))
}
