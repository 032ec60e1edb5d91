//! A gzip reader that asks for compressed input only when the inflater has nothing left to
//! give. `flate2`'s readers fill their input buffer on every call, so a reader that stops after
//! a few tar entries still triggers one more network read (the next byte range) while output
//! for the entries it wanted is already inflated and waiting. Here the pending output is
//! drained first, so a layer scan stops at the least input the format allows.
//!
//! The trailer's CRC is not checked: content is checked by the blob digest when a layer is read
//! to its end, and a layer abandoned early cannot be checked either way.

use std::io::{self, BufRead, Read};

use flate2::{Decompress, FlushDecompress, Status};

pub struct LazyGz<R> {
    inner: R,
    z: Decompress,
    in_member: bool,
    done: bool,
}

impl<R: BufRead> LazyGz<R> {
    pub fn new(inner: R) -> Self {
        LazyGz {
            inner,
            z: Decompress::new(false),
            in_member: false,
            done: false,
        }
    }

    /// Starts the next member, if the stream holds one.
    fn start_member(&mut self) -> io::Result<bool> {
        if self.inner.fill_buf()?.is_empty() {
            return Ok(false);
        }
        skip_header(&mut self.inner)?;
        self.z.reset(false);
        self.in_member = true;
        Ok(true)
    }
}

/// Inflates from `input` into `out`: (bytes consumed, bytes produced, stream ended).
fn inflate(z: &mut Decompress, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize, bool)> {
    let (i, o) = (z.total_in(), z.total_out());
    let status = z
        .decompress(input, out, FlushDecompress::None)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((
        (z.total_in() - i) as usize,
        (z.total_out() - o) as usize,
        status == Status::StreamEnd,
    ))
}

impl<R: BufRead> Read for LazyGz<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.done {
                return Ok(0);
            }
            if !self.in_member && !self.start_member()? {
                self.done = true;
                return Ok(0);
            }
            // What the inflater already holds, before touching the input.
            let (_, produced, end) = inflate(&mut self.z, &[], out)?;
            if end {
                self.end_member()?;
            }
            if produced > 0 {
                return Ok(produced);
            }
            if end {
                continue;
            }
            let input = self.inner.fill_buf()?;
            if input.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the gzip stream is truncated",
                ));
            }
            let (consumed, produced, end) = inflate(&mut self.z, input, out)?;
            self.inner.consume(consumed);
            if end {
                self.end_member()?;
            }
            if produced > 0 {
                return Ok(produced);
            }
        }
    }
}

impl<R: BufRead> LazyGz<R> {
    /// Skips the 8-byte trailer; the next `read` starts another member or ends.
    fn end_member(&mut self) -> io::Result<()> {
        let mut trailer = [0u8; 8];
        self.inner.read_exact(&mut trailer)?;
        self.in_member = false;
        Ok(())
    }
}

fn byte(r: &mut impl BufRead) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

/// RFC 1952 member header.
fn skip_header(r: &mut impl BufRead) -> io::Result<()> {
    let mut h = [0u8; 10];
    r.read_exact(&mut h)?;
    if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a gzip member header",
        ));
    }
    let flags = h[3];
    if flags & 4 != 0 {
        let len = u16::from_le_bytes([byte(r)?, byte(r)?]);
        io::copy(&mut r.take(u64::from(len)), &mut io::sink())?;
    }
    for bit in [8, 16] {
        if flags & bit != 0 {
            while byte(r)? != 0 {}
        }
    }
    if flags & 2 != 0 {
        byte(r)?;
        byte(r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn inflates_single_and_multi_member_streams() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        let one = e.finish().unwrap();
        let mut out = Vec::new();
        LazyGz::new(one.as_slice()).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let two = [one.clone(), one.clone()].concat();
        let mut out = Vec::new();
        LazyGz::new(two.as_slice()).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), data.len() * 2);
        let mut out = Vec::new();
        assert!(
            LazyGz::new(&one[..one.len() / 2])
                .read_to_end(&mut out)
                .is_err()
        );
    }
}
