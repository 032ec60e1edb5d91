use std::io::Write;
use std::time::{Duration, Instant};

use super::*;
use crate::verify::modinfo::tests::fake_module;

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    gz(&tar_of(files))
}

fn module(vermagic: &str) -> Vec<u8> {
    fake_module(format!("name=x\0vermagic={vermagic}\0").as_bytes())
}

#[test]
fn finds_modules_and_honours_whiteouts() {
    let (one, two) = (module("6.1.0-50-amd64 one"), module("6.1.0-50-amd64 two"));
    let mut s = Scanner::default();
    s.layer(
        layer(&[
            ("opt/lib/modules/6.1.0-50-amd64/hello.ko", &one),
            ("opt/lib/modules/6.1.0-50-amd64/old-thing.ko", b"old"),
            ("usr/lib/modules/6.1.0-50-amd64/kernel/x.ko", b"x"),
            ("etc/passwd", b"root"),
        ])
        .as_slice(),
    )
    .unwrap();
    s.layer(
        layer(&[
            ("./opt/lib/modules/6.1.0-50-amd64/.wh.old-thing.ko", b""),
            ("usr/lib/modules/.wh..wh..opq", b""),
            ("opt/lib/modules/6.1.0-50-amd64/hello.ko", &two),
        ])
        .as_slice(),
    )
    .unwrap();
    let found = s.finish();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "opt/lib/modules/6.1.0-50-amd64/hello.ko");
    assert_eq!(found[0].name, "hello");
    assert_eq!(found[0].kernel_dir, "6.1.0-50-amd64");
    assert_eq!(
        found[0].info.as_ref().unwrap().vermagic,
        "6.1.0-50-amd64 two"
    );
}

#[test]
fn a_module_that_is_no_elf_is_kept_with_the_reason() {
    let mut s = Scanner::default();
    s.layer(layer(&[("lib/modules/6.1.0/a.ko", b"junk")]).as_slice())
        .unwrap();
    assert!(matches!(s.finish()[0].info, Err(ModInfoError::NotElf(_))));
}

#[test]
fn long_names_from_gnu_and_pax_headers_are_followed() {
    let deep = format!("opt/lib/modules/6.1.0-50-amd64/{}/deep.ko", "d".repeat(120));
    let pax_path = format!("lib/modules/6.1.0-50-amd64/{}/pax.ko", "p".repeat(120));
    let ko = module("6.1.0-50-amd64 SMP");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(ko.len() as u64);
    h.set_mode(0o644);
    // Over 100 bytes: the builder writes a GNU long-name header first.
    b.append_data(&mut h, &deep, ko.as_slice()).unwrap();
    b.append_pax_extensions([("path", pax_path.as_bytes())])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("short-name-the-pax-header-replaces").unwrap();
    h.set_size(ko.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, ko.as_slice()).unwrap();
    let mut s = Scanner::default();
    s.layer(b.into_inner().unwrap().as_slice()).unwrap();
    let paths: Vec<String> = s.finish().into_iter().map(|f| f.path).collect();
    assert_eq!(paths, [pax_path, deep]);
}

/// A tar header block of `kind` claiming `size` bytes.
fn header(kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A gzip stream of `header`, then `gib` GiB of zeros, as concatenated members: a few
/// megabytes that decompress to gigabytes.
pub(crate) fn bomb(header: &[u8], gib: u64) -> Vec<u8> {
    let mut best = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    best.write_all(&vec![0u8; 1 << 20]).unwrap();
    let mib = best.finish().unwrap();
    let mut out = gz(header);
    for _ in 0..gib << 10 {
        out.extend_from_slice(&mib);
    }
    out
}

fn fails_fast(blob: &[u8], limits: Limits, expect: &str) {
    let started = Instant::now();
    let err = Scanner::with_limits(limits)
        .layer(blob)
        .expect_err("a hostile layer was accepted");
    assert!(err.to_string().contains(expect), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_gigabyte_long_name_header_fails_before_it_is_read() {
    let blob = bomb(
        &header(tar::EntryType::GNULongName, "././@LongLink", 3 << 30),
        3,
    );
    assert!(blob.len() < 4 << 20, "{} bytes", blob.len());
    fails_fast(
        &blob,
        Limits::DEEP,
        "GNU long-name header of 3221225472 bytes",
    );
    let link = bomb(
        &header(tar::EntryType::GNULongLink, "././@LongLink", 1 << 30),
        1,
    );
    fails_fast(&link, Limits::DEEP, "GNU long-link header");
    let pax = bomb(&header(tar::EntryType::XHeader, "PaxHeaders/x", 1 << 30), 1);
    fails_fast(&pax, Limits::DEEP, "PAX header of 1073741824 bytes");
}

#[test]
fn a_compression_bomb_fails_fast() {
    let blob = bomb(&header(tar::EntryType::Regular, "zeros", 3 << 30), 3);
    fails_fast(&blob, Limits::DEEP, "compression bomb");
    // The same inside a module: refused by its claimed size before any byte is held.
    let ko = bomb(
        &header(tar::EntryType::Regular, "lib/modules/6.1.0/big.ko", 1 << 30),
        1,
    );
    fails_fast(&ko, Limits::DEEP, "no module is over 64 MiB");
}

#[test]
fn names_kept_between_layers_are_capped() {
    let names: Vec<String> = (0..200).map(|i| format!("etc/.wh.file-{i:04}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    let limits = Limits {
        kept_max: 1 << 10,
        ..Limits::DEEP
    };
    fails_fast(&layer(&files), limits, "more modules and whiteouts");
    Scanner::default().layer(layer(&files).as_slice()).unwrap();
}

#[test]
fn the_module_budget_is_shared_and_given_back() {
    let a = Held::take(HELD_MAX);
    let waiter = std::thread::spawn(|| {
        let _b = Held::take(1 << 20);
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiter.is_finished(), "took bytes beyond the budget");
    drop(a);
    waiter.join().unwrap();
}

#[test]
fn module_names_fold_dashes() {
    assert_eq!(module_name("acme-net.ko").as_deref(), Some("acme_net"));
    assert_eq!(module_name("acme-net.ko.xz").as_deref(), Some("acme_net"));
    assert_eq!(module_name("acme-net.ko.zst").as_deref(), Some("acme_net"));
    assert_eq!(module_name("acme_net.ko.bz2"), None);
    assert_eq!(module_name("acme_net.xz"), None);
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zst(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 19).unwrap()
}

#[test]
fn compressed_modules_are_read_with_their_signature() {
    let (key, _) = crate::verify::signature::tests::keys();
    let signed = key.sign(&module("6.1.0-50-amd64 SMP"));
    let dir = "opt/lib/modules/6.1.0-50-amd64";
    let (x, z, g) = (xz(&signed), zst(&signed), gz(&signed));
    let mut s = Scanner::default();
    s.layer(
        layer(&[
            (&format!("{dir}/a-xz.ko.xz"), &x),
            (&format!("{dir}/b-zst.ko.zst"), &z),
            (&format!("{dir}/c-gz.ko.gz"), &g),
            (&format!("{dir}/d-plain.ko"), &signed),
        ])
        .as_slice(),
    )
    .unwrap();
    let found = s.finish();
    let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a_xz", "b_zst", "c_gz", "d_plain"]);
    for f in &found {
        assert_eq!(
            f.info.as_ref().unwrap().kernel(),
            "6.1.0-50-amd64",
            "{}",
            f.path
        );
        let sig = f.signature.clone().unwrap().unwrap();
        assert_eq!(sig.signer, "acme driver signing", "{}", f.path);
        assert_eq!(sig.check(&key.certificate()), Ok(()), "{}", f.path);
    }
}

#[test]
fn a_compressed_module_is_capped_and_garbage_is_named() {
    let limits = Limits {
        module_max: 1 << 20,
        ..Limits::DEEP
    };
    let big = vec![0u8; 3 << 20];
    let mut s = Scanner::with_limits(limits);
    s.layer(
        layer(&[
            ("lib/modules/6.1.0/big.ko.xz", &xz(&big)),
            ("lib/modules/6.1.0/big2.ko.zst", &zst(&big)),
            ("lib/modules/6.1.0/junk.ko.xz", b"not xz at all"),
        ])
        .as_slice(),
    )
    .unwrap();
    let why: Vec<String> = s
        .finish()
        .into_iter()
        .map(|f| f.info.unwrap_err().to_string())
        .collect();
    assert_eq!(why[0], "it decompresses to more than 1 MiB");
    assert_eq!(why[1], "it decompresses to more than 1 MiB");
    assert!(why[2].starts_with("it does not decompress"), "{}", why[2]);
}

#[test]
fn changes_read_once_apply_to_another_image_as_a_fresh_read_would() {
    let (one, two) = (module("6.1.0-50-amd64 one"), module("6.1.0-50-amd64 two"));
    let base = layer(&[
        ("opt/lib/modules/6.1.0-50-amd64/a.ko", &one),
        ("opt/lib/modules/6.1.0-50-amd64/b.ko", &one),
    ]);
    let top = layer(&[
        ("opt/lib/modules/6.1.0-50-amd64/.wh.b.ko", b""),
        ("opt/lib/modules/6.1.0-50-amd64/c.ko", &two),
    ]);
    let mut fresh = Scanner::default();
    fresh.layer(base.as_slice()).unwrap();
    fresh.layer(top.as_slice()).unwrap();
    let fresh = fresh.finish();

    // The changes of each layer, read by one scanner, applied by another.
    let reader = Scanner::default();
    let base_changes = reader.read_layer(base.as_slice()).unwrap();
    let top_changes = reader.read_layer(top.as_slice()).unwrap();
    let mut reused = Scanner::default();
    reused.apply_layer(&base_changes).unwrap();
    reused.apply_layer(&top_changes).unwrap();
    let reused = reused.finish();
    assert_eq!(reused, fresh);
    let paths: Vec<&str> = reused.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "opt/lib/modules/6.1.0-50-amd64/a.ko",
            "opt/lib/modules/6.1.0-50-amd64/c.ko"
        ]
    );
}

#[test]
fn changes_applied_again_still_count_against_the_cap_on_names() {
    let limits = Limits {
        kept_max: 400,
        ..Limits::DEEP
    };
    let m = module("6.1.0 x");
    let one = layer(&[("lib/modules/6.1.0/a-module-with-a-long-name.ko", &m)]);
    let two = layer(&[("lib/modules/6.1.0/another-module-with-a-long-name.ko", &m)]);
    let reader = Scanner::with_limits(limits);
    let (one, two) = (
        reader.read_layer(one.as_slice()).unwrap(),
        reader.read_layer(two.as_slice()).unwrap(),
    );
    // Each fits the cap alone; both do not.
    assert!(
        one.weight() > 200 && two.weight() > 200,
        "{} {}",
        one.weight(),
        two.weight()
    );
    let mut s = Scanner::with_limits(limits);
    s.apply_layer(&one).unwrap();
    let err = s.apply_layer(&two).unwrap_err();
    assert!(
        err.to_string().contains("more modules and whiteouts"),
        "{err}"
    );
}

/// A tar of `(path, link type, target)` entries.
fn links_tar(links: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(0);
        h.set_mode(0o777);
        // Over 100 bytes: the builder writes GNU long-link headers.
        b.append_link(&mut h, path, target).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn symbolic_and_hard_links_in_layers_replace_lower_modules() {
    let (good, evil) = (module("6.1.0 good"), module("6.1.0 evil"));
    let dir = "opt/lib/modules/6.1.0";
    let long = format!("{}evil.ko", "x/../".repeat(40));
    let mut s = Scanner::default();
    s.layer(
        layer(&[
            (&format!("{dir}/a.ko"), &good),
            (&format!("{dir}/b.ko"), &good),
            (&format!("{dir}/c.ko"), &good),
        ])
        .as_slice(),
    )
    .unwrap();
    let mut top = tar_of(&[(&format!("{dir}/evil.ko"), &evil)]);
    top.truncate(top.len() - 1024);
    top.extend(links_tar(&[
        (&format!("{dir}/a.ko"), tar::EntryType::Symlink, "evil.ko"),
        (
            &format!("{dir}/b.ko"),
            tar::EntryType::Link,
            &format!("{dir}/evil.ko"),
        ),
        (&format!("{dir}/c.ko"), tar::EntryType::Symlink, &long),
    ]));
    s.layer(gz(&top).as_slice()).unwrap();
    let found = s.finish();
    let said: Vec<(&str, &str, String)> = found
        .iter()
        .map(|f| {
            let v = &f.info.as_ref().unwrap().vermagic;
            (&f.path[dir.len() + 1..], &v[..], f.shown())
        })
        .collect();
    let evil_path = format!("/{dir}/evil.ko");
    for (file, vermagic, shown) in &said[..3] {
        assert_eq!(*vermagic, "6.1.0 evil", "{file}");
        assert!(shown.ends_with(&format!(" -> {evil_path}")), "{shown}");
    }
}

#[test]
fn a_layer_without_modules_keeps_its_links_through_the_cache() {
    let dir = "opt/lib/modules/6.1.0";
    let base = layer(&[
        (&format!("{dir}/evil.ko"), &module("6.1.0 evil")),
        (&format!("{dir}/hello.ko"), &module("6.1.0 good")),
    ]);
    let mut top = tar_of(&[("etc/motd", b"hi")]);
    top.truncate(top.len() - 1024);
    top.extend(links_tar(&[(
        &format!("{dir}/hello.ko"),
        tar::EntryType::Symlink,
        "evil.ko",
    )]));
    let reader = Scanner::default();
    let changes = reader.read_layer(gz(&top).as_slice()).unwrap();
    let (removed, opaque, nodes) = changes.portable().expect("no modules in it");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let json = serde_json::to_string(&nodes).unwrap();
    let again = LayerChanges::of_portable(removed, opaque, serde_json::from_str(&json).unwrap());
    let mut s = Scanner::default();
    s.layer(base.as_slice()).unwrap();
    s.apply_layer(&again).unwrap();
    let hello = s.finish().into_iter().find(|f| f.name == "hello").unwrap();
    assert_eq!(hello.info.unwrap().vermagic, "6.1.0 evil");
    // A layer with a module is not portable.
    let with_module = reader.read_layer(base.as_slice()).unwrap();
    assert!(with_module.portable().is_none());
}

#[test]
fn indexes_are_read_only_when_asked_for() {
    let dep = b"kernel/drivers/media/videodev.ko.xz: kernel/drivers/media/mc.ko.xz\nkernel/drivers/media/mc.ko.xz:\n";
    let blob = layer(&[
        ("usr/lib/modules/6.1.0/modules.dep", dep),
        (
            "usr/lib/modules/6.1.0/modules.builtin",
            b"kernel/fs/ext4/ext4.ko\n",
        ),
        (
            "usr/lib/modules/6.1.0/kernel/drivers/media/mc.ko.xz",
            b"not read",
        ),
    ]);
    let mut s = Scanner::of_indexes();
    s.layer(blob.as_slice()).unwrap();
    assert_eq!(
        s.view().get("usr/lib/modules/6.1.0/modules.dep"),
        Some(&view::Node::Index(vec!["mc".into(), "videodev".into()]))
    );
    assert_eq!(
        s.view().get("usr/lib/modules/6.1.0/modules.builtin"),
        Some(&view::Node::Index(vec!["ext4".into()]))
    );
    let mut m = Scanner::default();
    m.layer(blob.as_slice()).unwrap();
    assert_eq!(
        m.view().get("usr/lib/modules/6.1.0/modules.dep"),
        Some(&view::Node::File)
    );
}

#[test]
fn links_that_lead_far_are_followed_within_bounds() {
    let dir = "opt/lib/modules/6.1.0";
    // Each link climbs 800 directories and back to itself: 40 hops of 1600 steps each.
    let target = format!("{}{}", "a/../".repeat(800), "x0.ko");
    let names: Vec<String> = (0..2000).map(|i| format!("{dir}/x{i}.ko")).collect();
    let entries: Vec<(&str, tar::EntryType, &str)> = names
        .iter()
        .map(|n| (n.as_str(), tar::EntryType::Symlink, target.as_str()))
        .collect();
    let mut s = Scanner::default();
    s.layer(gz(&links_tar(&entries)).as_slice()).unwrap();
    let started = Instant::now();
    let found = s.finish();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(found.len(), 2000);
    let why = |f: &ModuleFile| f.info.clone().unwrap_err().to_string();
    assert!(why(&found[0]).contains("links loop"), "{}", why(&found[0]));
    assert!(
        why(&found[1999]).contains("more than verify follows"),
        "{}",
        why(&found[1999])
    );
    // A path or link over PATH_MAX under the modules directories fails the layer.
    let long = format!("{}x.ko", "d/".repeat(2100));
    let err = Scanner::default()
        .layer(
            gz(&links_tar(&[(
                &format!("{dir}/y.ko"),
                tar::EntryType::Symlink,
                &long,
            )]))
            .as_slice(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("over 4096 bytes"), "{err}");
}
