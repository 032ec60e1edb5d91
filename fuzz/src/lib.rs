//! The entry points the fuzz targets drive, one per parser that reads what a user or a
//! registry hands driver-matrix. Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and
//! by `tests/fuzz_corpus.rs`, which replays the committed corpus with the stable toolchain.
//!
//! Each entry returns `Ok` with a short summary when the input is accepted, or `Err` with the
//! message a user would see; it panics only when a property of the parser is broken (a lock
//! that does not survive its own writer, an unsorted graph), which is a finding like a crash.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use driver_matrix::domain::{Arch, Version};
use driver_matrix::release::{Fault, dtk, graph, layer, payload};
use driver_matrix::verify::{modinfo, scan, signature};

/// What an entry point made of one input.
pub type Outcome = Result<String, String>;

/// A target's entry point.
pub type Entry = fn(&[u8]) -> Outcome;

/// Every target: its name (the corpus directory under `fuzz/corpus/`) and its entry point.
pub const TARGETS: [(&str, Entry); 11] = [
    ("matrix", matrix),
    ("lock", lock),
    ("lock_fields", lock_fields),
    ("image_references", image_references),
    ("release_metadata", release_metadata),
    ("dtk", dtk_release),
    ("graph", graph_json),
    ("layer", payload_layer),
    ("verify_scan", verify_scan),
    ("modinfo", modinfo_read),
    ("image_fs", image_fs),
];

/// The repository root, from the fuzz crate or from the main crate's tests.
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("fuzz_targets").is_dir() {
        here.parent().unwrap_or(here).to_path_buf()
    } else {
        here.to_path_buf()
    }
}

fn render(diagnostic: &dyn miette::Diagnostic) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut out = String::new();
    if let Err(e) = handler.render_report(&mut out, diagnostic) {
        panic!("rendering a diagnostic failed: {e}");
    }
    out
}

fn fault(f: Fault) -> String {
    match f {
        Fault::Content(m) => m,
        Fault::NoDriverToolkit => "the payload has no `driver-toolkit` tag".to_string(),
        Fault::Registry(e) => e.to_string(),
        Fault::DtkByTag(reference) => format!("the DTK is named by tag: `{reference}`"),
        Fault::Layer { error, .. } => error.to_string(),
    }
}

/// `matrix.toml` text, validated against a matrix directory with real build contexts, the
/// errors rendered as the CLI renders them (source snippets with labels).
pub fn matrix(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let root = repo_root().join("tests/matrices/good");
    let path = root.join("matrix.toml");
    match driver_matrix::matrix::parse(&path, &root, text.to_string()) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                render(w);
            }
            Ok(format!("{} warnings", loaded.warnings.len()))
        }
        Err(e) => Err(render(&e)),
    }
}

/// `matrix.lock` text; an accepted lock (every field valid against its grammar) must read back
/// equal after `render`, hold only strings of the grammars' characters, and export as one YAML
/// document per release.
pub fn lock(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let lock = accepted_lock(text)?;
    Ok(format!(
        "{} releases, {} images",
        lock.releases.len(),
        lock.images.len()
    ))
}

/// Every character a valid lock string may hold: the union of the grammars (references with
/// an IPv6 host and a digest, kernels with `+` and `~`).
fn lock_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-+~:/@[]".contains(c)
}

/// Reads `text` as a lock and checks what an accepted lock promises (see [`lock`]).
fn accepted_lock(text: &str) -> Result<driver_matrix::lock::Lock, String> {
    let path = Path::new("matrix.lock");
    let mut lock = driver_matrix::lock::read_str(path, text).map_err(|e| render(&e))?;
    for r in &lock.releases {
        let strings = [
            Some(r.stream.clone().unwrap_or_default()),
            Some(r.payload.to_string()),
            Some(r.dtk.to_string()),
            Some(r.kernel.to_string()),
            r.rt_kernel.as_ref().map(ToString::to_string),
            r.node_kernel.as_ref().map(ToString::to_string),
            Some(r.rhel.clone()),
            r.machine_os.clone(),
        ];
        for s in strings.iter().flatten() {
            assert!(
                s.chars().all(lock_char),
                "a lock string outside the grammars: {s:?}"
            );
        }
    }
    for i in &lock.images {
        for s in [&i.driver, &i.image.to_string(), &i.dtk.to_string()] {
            assert!(
                s.chars().all(lock_char),
                "a lock string outside the grammars: {s:?}"
            );
        }
    }
    // A matrix without drivers or exclusions keeps every locked release.
    static EMPTY: std::sync::OnceLock<driver_matrix::matrix::Matrix> = std::sync::OnceLock::new();
    let matrix = EMPTY.get_or_init(|| {
        let text = "[openshift]\nreleases = [\"4.14.1\"]\n".to_string();
        driver_matrix::matrix::parse(Path::new("matrix.toml"), Path::new("/"), text)
            .expect("a matrix without drivers is valid")
            .matrix
    });
    let yaml = driver_matrix::export::preflights(
        matrix,
        &lock,
        &[],
        driver_matrix::export::PreflightForm::Kernel,
    )
    .text;
    let separators = yaml.lines().filter(|l| *l == "---").count();
    assert_eq!(
        separators,
        lock.releases.len(),
        "one document per release:\n{yaml}"
    );
    assert!(
        !yaml.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character in the export:\n{yaml:?}"
    );
    let written = driver_matrix::lock::render(&lock);
    let again = match driver_matrix::lock::read_str(path, &written) {
        Ok(l) => l,
        Err(e) => panic!(
            "a lock that was read does not read back:\n{written}\n{}",
            render(&e)
        ),
    };
    lock.canonicalize();
    assert_eq!(again, lock, "the lock changed on a round trip:\n{written}");
    Ok(lock)
}

/// One string, put into each string field of a lock in turn (TOML-escaped, so any string
/// reaches the grammar): wherever it is accepted, the lock's promises must hold ([`lock`]).
pub fn lock_fields(data: &[u8]) -> Outcome {
    let value = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let quoted = toml_string(value);
    let mut accepted = Vec::new();
    for &(field, _) in &LOCK_FIELDS {
        let text: String = LOCK_FIELDS
            .iter()
            .map(|(f, v)| {
                let v = match (*f == field, *f) {
                    (true, "image.releases") => format!("[{quoted}]"),
                    (true, _) => quoted.clone(),
                    (false, _) => (*v).to_string(),
                };
                match f.split_once('.') {
                    Some((_, key)) => format!("{key} = {v}\n"),
                    None => format!("{f} = {v}\n"),
                }
            })
            .collect::<Vec<_>>()
            .join("");
        let text = text.replacen("driver = ", "\n[[image]]\ndriver = ", 1);
        let text = format!("version = 1\n\n[[release]]\n{text}");
        if accepted_lock(&text).is_ok() {
            accepted.push(field);
        }
    }
    if accepted.is_empty() {
        Err("accepted in no field".into())
    } else {
        Ok(format!("accepted as {}", accepted.join(", ")))
    }
}

/// The lock's string fields, in the order of the file, each with a valid value; `image.` keys
/// are the `[[image]]` table's.
const LOCK_FIELDS: [(&str, &str); 18] = [
    ("version", "\"4.16.3\""),
    ("arch", "\"x86_64\""),
    ("stream", "\"rhel-10\""),
    (
        "payload",
        "\"quay.io/openshift-release-dev/ocp-release@sha256:dd17932fd8f2e3ce7451ef922b0f191b5faf1ce3da900b300fe7b3968bd62de5\"",
    ),
    (
        "dtk",
        "\"quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:fa229333d160d42ae97f84ddb7b5d4e5bff158af0eee3886dc39f3372ee9bb16\"",
    ),
    ("kernel", "\"5.14.0-427.26.1.el9_4.x86_64\""),
    ("rt-kernel", "\"5.14.0-427.26.1.el9_4.x86_64+rt\""),
    ("node-kernel", "\"5.14.0-427.26.1.el9_4.x86_64\""),
    ("rhel", "\"9.4\""),
    ("machine-os", "\"416.94.202406251923-0\""),
    ("driver", "\"gpu-kmod\""),
    ("image.kernel", "\"5.14.0-427.26.1.el9_4.x86_64\""),
    ("image.arch", "\"x86_64\""),
    (
        "image.dtk",
        "\"quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:fa229333d160d42ae97f84ddb7b5d4e5bff158af0eee3886dc39f3372ee9bb16\"",
    ),
    (
        "inputs",
        "\"sha256:0bfa201a1c90b9f0edb02f9ad2a23e1746a5131df42cb6b39834c1d955fea009\"",
    ),
    (
        "image",
        "\"quay.io/acme/gpu-kmod:5.14.0-427.26.1.el9_4.x86_64\"",
    ),
    (
        "digest",
        "\"sha256:c10096ef16fce0dc22adfb1db32c9bc719a56ac97cc683b9624e3db75dd3dc38\"",
    ),
    ("image.releases", "[\"4.16.3\"]"),
];

/// `s` as a TOML basic string: `"` and `\\` escaped, every control character as `\\u`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The payload's `release-manifests/image-references`.
pub fn image_references(data: &[u8]) -> Outcome {
    let info = payload::parse_references(data).map_err(fault)?;
    Ok(format!("dtk {}", info.dtk))
}

/// The payload's `release-manifests/release-metadata`, expected to be 4.16.3.
pub fn release_metadata(data: &[u8]) -> Outcome {
    let version: Version = "4.16.3".parse().map_err(|_| "bad version".to_string())?;
    payload::check_metadata(data, &version, Arch::X86_64).map_err(fault)?;
    Ok("4.16.3".to_string())
}

/// The Driver Toolkit's `etc/driver-toolkit-release.json`.
pub fn dtk_release(data: &[u8]) -> Outcome {
    let info = dtk::parse(data).map_err(fault)?;
    Ok(format!("kernel {} rhel {}", info.kernel, info.rhel))
}

/// The update graph's JSON; nodes come back sorted, without duplicates.
pub fn graph_json(data: &[u8]) -> Outcome {
    let nodes = graph::parse("stable-4.16", data).map_err(|e| render(&e))?;
    assert!(
        nodes.windows(2).all(|w| w[0].version < w[1].version),
        "graph nodes are not sorted and unique"
    );
    let latest = graph::latest(&nodes, (4, 16), 3);
    assert!(latest.len() <= 3);
    Ok(format!("{} nodes", nodes.len()))
}

/// A payload layer (gzip, zstd or plain tar) scanned for the release manifests, with the
/// limits the resolver uses.
pub fn payload_layer(data: &[u8]) -> Outcome {
    let wanted = [payload::IMAGE_REFERENCES, payload::RELEASE_METADATA];
    let hint = Arc::new(AtomicU64::new(0));
    let found = layer::scan(
        Cursor::new(data),
        &wanted,
        layer::Limits::RELEASE,
        Some(hint),
    )
    .map_err(|e| e.to_string())?;
    if let Some(refs) = found.get(payload::IMAGE_REFERENCES) {
        let _ = image_references(refs);
    }
    Ok(format!("{} files found", found.len()))
}

/// An image layer read as `verify --deep` reads it, applied twice (so that its whiteouts meet
/// its own files).
pub fn verify_scan(data: &[u8]) -> Outcome {
    let mut scanner = scan::Scanner::default();
    scanner
        .layer(Cursor::new(data))
        .map_err(|e| e.to_string())?;
    scanner
        .layer(Cursor::new(data))
        .map_err(|e| e.to_string())?;
    let modules = scanner.finish();
    for m in &modules {
        assert!(
            scan::module_name(m.path.rsplit('/').next().unwrap_or_default()).is_some()
                && !m.kernel_dir.is_empty()
                && !m.name.is_empty(),
            "not a module: {m:?}"
        );
    }
    Ok(format!("{} modules", modules.len()))
}

/// A kernel module's ELF `.modinfo`, and its appended signature.
pub fn modinfo_read(data: &[u8]) -> Outcome {
    let signed = match signature::read(data) {
        None => "unsigned".to_string(),
        Some(Ok(s)) => format!("signed by {} key {} {}", s.signer, s.key_id, s.hash),
        Some(Err(e)) => format!("signature unreadable: {e}"),
    };
    let info = modinfo::read(data).map_err(|e| e.to_string())?;
    Ok(format!(
        "vermagic {} kernel {}, {signed}",
        info.vermagic,
        info.kernel()
    ))
}

/// Layers from one input: each a little-endian `u32` length, then that many bytes (the last
/// one takes what is left); at most four.
fn layers_of(data: &[u8]) -> Vec<&[u8]> {
    let mut layers = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && layers.len() < 4 {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            layers.push(rest);
            break;
        };
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        let (layer, after) = tail.split_at(len);
        layers.push(layer);
        rest = after;
    }
    layers
}

/// Layers read as `verify --deep` reads an image (base first), the image's final filesystem
/// built from them; the same again through the cache's form of each layer without modules,
/// which must give the same modules; and the kernels' indexes read as from a DTK.
pub fn image_fs(data: &[u8]) -> Outcome {
    let layers = layers_of(data);
    let mut direct = scan::Scanner::default();
    let mut cached = scan::Scanner::default();
    let mut indexes = scan::Scanner::of_indexes();
    for layer in &layers {
        let changes = direct
            .read_layer(Cursor::new(layer))
            .map_err(|e| e.to_string())?;
        direct.apply_layer(&changes).map_err(|e| e.to_string())?;
        let again = match changes.portable() {
            Some((removed, opaque, nodes)) => {
                scan::LayerChanges::of_portable(removed, opaque, nodes)
            }
            None => changes,
        };
        cached.apply_layer(&again).map_err(|e| e.to_string())?;
        let tree = indexes
            .read_layer(Cursor::new(layer))
            .map_err(|e| e.to_string())?;
        indexes.apply_layer(&tree).map_err(|e| e.to_string())?;
    }
    let modules = direct.finish();
    assert_eq!(
        modules,
        cached.finish(),
        "the cache's form changed the view"
    );
    let mut linked = 0;
    for m in &modules {
        assert!(
            scan::module_name(m.path.rsplit('/').next().unwrap_or_default()).is_some()
                && !m.kernel_dir.is_empty(),
            "not a module: {m:?}"
        );
        if let Some(t) = &m.target {
            assert!(scan::view::in_region(t), "judged out of the region: {m:?}");
            linked += 1;
        }
    }
    Ok(format!(
        "{} layers, {} modules, {linked} through links",
        layers.len(),
        modules.len()
    ))
}
