//! `verify --deep` reading hostile layers: each fails fast with a clear error, and the process
//! stays under 256 MiB resident whatever the layer claims or decompresses to. Alone in its
//! test binary, so that the peak resident size (`VmHWM`) is this test's own.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::time::{Duration, Instant};

use driver_matrix::verify::scan::Scanner;

fn gz(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A tar header block of `kind` named `name`, claiming `size` bytes.
fn header(kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// `header`, then `mib` MiB of zeros, as gzip members of about 1 KiB per MiB.
fn bomb(header: &[u8], mib: u64) -> Vec<u8> {
    let chunk = gz(&vec![0u8; 1 << 20], 9);
    let mut out = gz(header, 9);
    for _ in 0..mib {
        out.extend_from_slice(&chunk);
    }
    out
}

/// A gzip layer of `n` symbolic links to modules, in a modules directory.
fn many_links(n: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..n {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        let name = format!("opt/lib/modules/6.1.0/{i:08}-a-module-with-a-long-name.ko");
        b.append_link(&mut h, name, "../../../../evil.ko").unwrap();
    }
    gz(&b.into_inner().unwrap(), 6)
}

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("Linux reports VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn hostile_layers_fail_fast_in_bounded_memory() {
    use tar::EntryType::*;
    let gib = 3 << 10;
    let layers = [
        (
            "long name",
            bomb(&header(GNULongName, "././@LongLink", 3 << 30), gib),
        ),
        (
            "long link",
            bomb(&header(GNULongLink, "././@LongLink", 3 << 30), gib),
        ),
        ("pax", bomb(&header(XHeader, "PaxHeaders/x", 3 << 30), gib)),
        ("ratio", bomb(&header(Regular, "zeros", 3 << 30), gib)),
        (
            "module",
            bomb(&header(Regular, "lib/modules/6.1.0/x.ko", 3 << 30), gib),
        ),
        // A module just under the cap: held once, while its `.modinfo` is looked for.
        (
            "big module",
            bomb(&header(Regular, "lib/modules/6.1.0/y.ko", 60 << 20), 60),
        ),
        // Links where modules live, more than the names kept between layers may hold.
        ("links", many_links(250_000)),
    ];
    for (what, blob) in &layers {
        assert!(blob.len() < 4 << 20, "{what}: {} bytes", blob.len());
        let started = Instant::now();
        let result = Scanner::default().layer(blob.as_slice());
        let took = started.elapsed();
        assert!(took < Duration::from_secs(60), "{what} took {took:?}");
        let peak = peak_rss_kib();
        eprintln!(
            "{what}: {result:?} in {took:?}, peak RSS so far {} MiB",
            peak >> 10
        );
        match (*what, result) {
            ("big module", r) => assert!(r.is_ok(), "{r:?}"),
            (_, Ok(())) => panic!("{what}: a hostile layer was accepted"),
            (_, Err(e)) => assert!(
                [
                    "header of",
                    "compression bomb",
                    "no module is over",
                    "more modules and whiteouts"
                ]
                .iter()
                .any(|m| e.to_string().contains(m)),
                "{what}: unclear error `{e}`"
            ),
        }
    }
    let peak = peak_rss_kib();
    assert!(peak < 256 << 10, "peak RSS {} MiB", peak >> 10);
}
