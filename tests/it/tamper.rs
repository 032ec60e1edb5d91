//! A registry that serves altered bytes under a digest can make `resolve` fail, never make the
//! lock or the cache record something false. The honest images live in the real test
//! registry; the tampering is served by a mirror in front of it (`[registries."REAL"] mirror`)
//! that holds copies of them, some altered. Each case checks the exit code and that the
//! message names the digest, that the lock is byte-identical to the honest one, and that no
//! cache entry was written from the altered bytes.

use std::path::Path;

use crate::support::*;
use driver_matrix_sandbox::faulty::{FaultServer, Reply};
use driver_matrix_sandbox::oci::{self, Compression, Layer};
use driver_matrix_sandbox::{DtkSpec, Flavor, OsImage, PayloadSpec, Pushed, http};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const EVIL_KERNEL: &str = "6.6.6-666.evil.x86_64";
const VERSION: &str = "4.14.12";

/// A registry-shaped server holding copies of images of the real registry, any of which a
/// test may replace.
struct Mirror {
    server: FaultServer,
    real: String,
}

impl Mirror {
    fn start(real: &str) -> Mirror {
        Mirror {
            server: FaultServer::start().unwrap(),
            real: real.to_string(),
        }
    }

    fn addr(&self) -> &str {
        self.server.addr()
    }

    /// Copies manifest `repo:reference` and every blob it names.
    fn copy(&self, repo: &str, reference: &str) {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = http::request(&self.real, "GET", &path, &[("Accept", ACCEPT.into())], b"").unwrap();
        assert_eq!(r.status, 200, "{path}");
        let ctype = r.header("content-type").unwrap().to_string();
        let digest = r.header("docker-content-digest").unwrap().to_string();
        self.manifest(repo, reference, &ctype, &r.body, &digest);
        let m: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let layers = m["layers"].as_array().cloned().unwrap_or_default();
        for d in layers.iter().chain([&m["config"]]) {
            if let Some(d) = d["digest"].as_str() {
                let blob = self.real_blob(repo, d);
                self.blob(repo, d, &blob);
            }
        }
    }

    fn real_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let r = http::request(&self.real, "GET", &path, &[], b"").unwrap();
        assert_eq!(r.status, 200, "{path}");
        r.body
    }

    /// Serves `body` as manifest `repo:reference`, the registry saying its digest is `digest`.
    fn manifest(&self, repo: &str, reference: &str, ctype: &str, body: &[u8], digest: &str) {
        self.server.route(
            &format!("/v2/{repo}/manifests/{reference}"),
            Reply::ok(ctype, body).header("Docker-Content-Digest", digest),
        );
    }

    /// Serves `body` as blob `digest` of `repo`.
    fn blob(&self, repo: &str, digest: &str, body: &[u8]) {
        self.server.route(
            &format!("/v2/{repo}/blobs/{digest}"),
            Reply::ok("application/octet-stream", body),
        );
    }
}

/// One honest release in the real registry, resolved once without a mirror.
struct Honest {
    w: World,
    payload: Pushed,
    dtk: Pushed,
    dtk_spec: DtkSpec,
    payload_spec: PayloadSpec,
    /// The lock an honest run writes.
    lock: String,
}

impl Honest {
    fn new(name: &str) -> Honest {
        let w = World::new(name);
        let mut dtk_spec = DtkSpec::new(K_414);
        dtk_spec.base = 64 << 10;
        let (dtk_ref, dtk) = w.dtk(&dtk_spec, "amd64", Flavor::Docker);
        let mut payload_spec = PayloadSpec::new(VERSION, Some(dtk_ref));
        payload_spec.filler = 512 << 10;
        payload_spec.base = 16 << 10;
        let payload = w.payload(&payload_spec, "x86_64", "amd64", Flavor::Docker);
        w.matrix(&format!("releases = [\"{VERSION}\"]"), "");
        w.cmd().args(["resolve"]).run();
        let lock = w.lock();
        assert!(lock.contains(&format!("kernel = \"{K_414}\"")), "{lock}");
        clear_cache(&w);
        Honest {
            w,
            payload,
            dtk,
            dtk_spec,
            payload_spec,
            lock,
        }
    }

    /// A mirror holding faithful copies of the payload and its DTK.
    fn mirror(&self) -> Mirror {
        let m = Mirror::start(&self.w.addr);
        let release = self.w.repo("release");
        m.copy(&release, &format!("{VERSION}-x86_64"));
        m.copy(&release, &self.payload.digest);
        m.copy(&self.w.repo("dtk"), &self.dtk.digest);
        m
    }

    /// Reads of the real registry go to `mirror` from now on.
    fn through(&self, mirror: &Mirror) {
        self.w.matrix_raw(&format!(
            "[openshift]\npayload-repo = \"{}/{}\"\nreleases = [\"{VERSION}\"]\n\n[registries.\"{}\"]\nmirror = \"{}\"\n\n[registries.\"{}\"]\ninsecure = true\n",
            self.w.addr,
            self.w.repo("release"),
            self.w.addr,
            mirror.addr(),
            mirror.addr()
        ));
    }

    /// The payload's last layer: where `image-references` lives.
    fn manifests_layer(&self) -> Layer {
        self.payload_spec.layers().pop().unwrap()
    }

    /// Runs `resolve` and checks that it failed with `code`, naming each of `names`, and
    /// left the lock and the cache as they were.
    fn refused(&self, code: i32, names: &[&str]) -> String {
        let err = self.w.cmd().args(["resolve"]).expect_exit(code).stderr();
        for n in names {
            assert!(says(&err, n), "the message does not name `{n}`:\n{err}");
        }
        assert_eq!(self.w.lock(), self.lock, "the lock changed");
        assert_eq!(cache_entries(&self.w), Vec::<String>::new());
        err
    }
}

fn clear_cache(w: &World) {
    let _ = std::fs::remove_dir_all(w.path("cache"));
}

/// Every fact the cache holds (the `tags/` pointers aside), as `kind/file`.
fn cache_entries(w: &World) -> Vec<String> {
    let mut out = Vec::new();
    let root = w.path("cache");
    for layout in read_dir(&root) {
        for kind in read_dir(&layout)
            .into_iter()
            .filter(|k| !k.ends_with("tags"))
        {
            for f in read_dir(&kind) {
                out.push(f.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    out
}

fn read_dir(p: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(p)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `bytes` cut or zero-padded to `len`: what a mirror serves to pass a size check.
fn sized(mut bytes: Vec<u8>, len: usize) -> Vec<u8> {
    bytes.resize(len, 0);
    bytes
}

#[test]
fn a_faithful_mirror_gives_the_honest_lock() {
    let h = Honest::new("tamper-faithful");
    let m = h.mirror();
    h.through(&m);
    h.w.cmd().args(["resolve"]).run();
    assert_eq!(h.w.lock(), h.lock);
    let served = m.server.requests();
    assert!(
        served.iter().any(|r| r.contains("/blobs/")),
        "the mirror was not used: {served:?}"
    );
    // Both facts verified: both cached, with how.
    let entries = cache_entries(&h.w);
    assert_eq!(entries.len(), 2, "{entries:?}");
    for e in entries {
        let text = std::fs::read_to_string(h.w.path("cache").join(e)).unwrap();
        assert!(text.contains(r#""how":"read-whole""#), "{text}");
    }
}

#[test]
fn an_altered_manifests_layer_of_the_right_size_is_refused() {
    let h = Honest::new("tamper-layer");
    let (evil_ref, _) = {
        let mut d = DtkSpec::new(EVIL_KERNEL);
        d.base = 64 << 10;
        let p = d
            .push(&h.w.pusher, &h.w.repo("evil"), "amd64", Flavor::Docker)
            .unwrap();
        (format!("{}/{}@{}", h.w.addr, h.w.repo("evil"), p.digest), p)
    };
    let m = h.mirror();
    m.copy(&h.w.repo("evil"), evil_ref.rsplit_once('@').unwrap().1);
    // image-references naming another DTK, padded to the honest layer's size: a reader that
    // stops after `release-metadata` sees a well-formed payload.
    let mut evil = h.payload_spec.clone();
    evil.dtk = Some(evil_ref);
    evil.filler = 0;
    let honest = h.manifests_layer();
    let altered = Layer::new(&evil.release_tar(), Compression::Gzip).blob;
    assert!(altered.len() < honest.blob.len());
    m.blob(
        &h.w.repo("release"),
        &honest.digest(),
        &sized(altered, honest.blob.len()),
    );
    h.through(&m);
    h.refused(4, &[&honest.digest(), "does not match its digest"]);
}

#[test]
fn a_manifest_served_under_another_digest_is_refused() {
    let h = Honest::new("tamper-manifest");
    let evil_dtk = DtkSpec::new(EVIL_KERNEL);
    let evil =
        h.w.pusher
            .image(
                &h.w.repo("dtk"),
                None,
                &evil_dtk.layers(),
                &[],
                "amd64",
                Flavor::Docker,
            )
            .unwrap();
    // The payload's manifest, then the DTK's: each served with another image's bytes while
    // the registry claims the asked-for digest.
    for (repo, digest) in [
        (h.w.repo("release"), h.payload.digest.clone()),
        (h.w.repo("dtk"), h.dtk.digest.clone()),
    ] {
        let m = h.mirror();
        m.copy(&h.w.repo("dtk"), &evil.digest);
        m.manifest(&repo, &digest, &evil.media_type, &evil.manifest, &digest);
        h.through(&m);
        h.refused(4, &[&digest]);
    }
}

#[test]
fn a_dtk_named_by_tag_is_refused() {
    let h = Honest::new("tamper-tag");
    h.w.pusher
        .image(
            &h.w.repo("dtk"),
            Some("latest"),
            &h.dtk_spec.layers(),
            &[],
            "amd64",
            Flavor::Docker,
        )
        .unwrap();
    let by_tag = format!("{}/{}:latest", h.w.addr, h.w.repo("dtk"));
    let mut spec = PayloadSpec::new("4.14.13", Some(by_tag.clone()));
    spec.filler = 16 << 10;
    h.w.payload(&spec, "x86_64", "amd64", Flavor::Docker);
    h.w.matrix(r#"releases = ["4.14.13"]"#, "");
    // The payload's bytes are what its digest names: its content is refused (exit 1).
    h.refused(1, &["4.14.13 (x86_64)", &by_tag, "not by digest"]);
}

#[test]
fn a_poisoned_cache_entry_is_a_miss() {
    let h = Honest::new("tamper-cache");
    let w = &h.w;
    w.cmd().args(["resolve"]).run();
    let entries = cache_entries(w);
    let file = |kind: &str| {
        let e = entries.iter().find(|e| e.contains(kind)).unwrap();
        w.path("cache").join(e)
    };
    let (payload_file, dtk_file) = (file("/payloads/"), file("/dtk/"));
    let honest_payload = std::fs::read_to_string(&payload_file).unwrap();
    let honest_dtk = std::fs::read_to_string(&dtk_file).unwrap();
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    let evil_dtk = format!("{}/evil/dtk", w.addr);
    let evil_image = oci::sha256(b"evil");

    let mut by_tag = json(&honest_payload);
    by_tag["entry"]["dtk"] = format!("{evil_dtk}:latest").into();
    let mut other_key = json(&honest_payload);
    other_key["entry"]["payload"] = evil_image.clone().into();
    other_key["entry"]["dtk"] = format!("{evil_dtk}@{evil_image}").into();
    let mut unverified = json(&honest_dtk);
    unverified["entry"]["info"]["kernel"] = EVIL_KERNEL.into();
    unverified["entry"]
        .as_object_mut()
        .unwrap()
        .remove("verified");
    let mut other_image = json(&honest_dtk);
    other_image["entry"]["info"]["kernel"] = EVIL_KERNEL.into();
    other_image["entry"]["image"] = evil_image.clone().into();
    let cases = [
        ("a DTK by tag", by_tag, json(&honest_dtk)),
        ("another payload's entry", other_key, json(&honest_dtk)),
        ("no provenance", json(&honest_payload), unverified),
        ("another image's entry", json(&honest_payload), other_image),
    ];
    std::fs::remove_file(w.path("matrix.lock")).unwrap();
    for (what, payload, dtk) in cases {
        std::fs::write(&payload_file, payload.to_string()).unwrap();
        std::fs::write(&dtk_file, dtk.to_string()).unwrap();
        // Offline, the poisoned entries are misses: nothing to answer from.
        w.cmd().args(["--offline", "resolve"]).expect_exit(2).run();
        assert!(!w.path("matrix.lock").exists(), "{what}");
        // Online, the registry answers and the honest facts replace the poisoned ones.
        w.cmd().args(["resolve"]).run();
        assert_eq!(w.lock(), h.lock, "{what}");
        assert_eq!(
            std::fs::read_to_string(&payload_file).unwrap(),
            honest_payload
        );
        assert_eq!(std::fs::read_to_string(&dtk_file).unwrap(), honest_dtk);
        std::fs::remove_file(w.path("matrix.lock")).unwrap();
    }
    // The control: honest entries answer offline.
    w.cmd().args(["--offline", "resolve"]).run();
    assert_eq!(w.lock(), h.lock);
    // Entries of the old layout (facts read from unverified prefixes) are never read.
    let mut old = driver_matrix::lock::read(&w.path("matrix.lock"))
        .unwrap()
        .releases[0]
        .clone();
    old.kernel = EVIL_KERNEL.parse().unwrap();
    old.dtk = format!("{evil_dtk}@{evil_image}").parse().unwrap();
    let tag = format!("{}/{}:{VERSION}-x86_64", w.addr, w.repo("release"));
    let v1 = w.path("cache/v1");
    for (kind, key, value) in [
        (
            "releases",
            format!("{}-x86_64", &h.payload.digest[7..]),
            serde_json::to_string(&old).unwrap(),
        ),
        (
            "tags",
            oci::sha256(tag.as_bytes())[7..].to_string(),
            format!("\"{}\"", h.payload.digest),
        ),
    ] {
        std::fs::create_dir_all(v1.join(kind)).unwrap();
        std::fs::write(v1.join(kind).join(format!("{key}.json")), value).unwrap();
    }
    std::fs::remove_dir_all(w.path("cache/v4")).unwrap();
    std::fs::remove_file(w.path("matrix.lock")).unwrap();
    w.cmd().args(["--offline", "resolve"]).expect_exit(2).run();
    w.cmd().args(["resolve"]).run();
    assert_eq!(w.lock(), h.lock);
}

#[test]
fn an_altered_dtk_release_file_in_a_small_layer_is_refused() {
    let h = Honest::new("tamper-dtk");
    let honest = h.dtk_spec.layers().pop().unwrap();
    let mut evil = h.dtk_spec.clone();
    evil.kernel = EVIL_KERNEL.into();
    let altered = evil.layers().pop().unwrap().blob;
    let m = h.mirror();
    m.blob(
        &h.w.repo("dtk"),
        &honest.digest(),
        &sized(altered, honest.blob.len()),
    );
    h.through(&m);
    h.refused(4, &[&honest.digest(), "does not match its digest"]);
}

/// A squashed DTK: the release file first in one layer of `len` incompressible bytes.
fn squashed(kernel: &str, rhel: &str, len: usize) -> Vec<Layer> {
    let mut spec = DtkSpec::new(kernel);
    spec.rhel = rhel.into();
    let json = spec.release_json();
    let big = oci::tar(&[
        ("etc/", b""),
        ("etc/driver-toolkit-release.json", json.as_bytes()),
        ("usr/lib/rhel-base.bin", &oci::noise(len, 9)),
    ]);
    vec![
        Layer::new(&oci::tar(&[("usr/", b"")]), Compression::Gzip),
        Layer::new(&big, Compression::Gzip),
    ]
}

/// A squashed DTK and a payload naming it, the nodes' OS image (by digest) reporting `node`
/// when given; the payload and the OS image's digest.
fn squashed_release(w: &World, dtk: &Pushed, node: Option<&str>) -> (Pushed, Option<String>) {
    let dtk_ref = format!("{}/{}@{}", w.addr, w.repo("dtk"), dtk.digest);
    let mut spec = PayloadSpec::new(VERSION, Some(dtk_ref));
    spec.filler = 16 << 10;
    spec.os = node.map(|k| w.os(&OsImage::new(k), "amd64"));
    let os = spec
        .os
        .as_ref()
        .map(|r| r.rsplit_once('@').unwrap().1.to_string());
    (w.payload(&spec, "x86_64", "amd64", Flavor::Docker), os)
}

/// A mirror of `w`'s payload, DTK and OS images whose copy of the squashed DTK's big layer
/// says `EVIL_KERNEL`, same size; `w`'s matrix reads through it.
fn evil_mirror(
    w: &World,
    (payload, os): &(Pushed, Option<String>),
    dtk: &Pushed,
    honest: &[Layer],
) -> Mirror {
    let m = Mirror::start(&w.addr);
    m.copy(&w.repo("release"), &format!("{VERSION}-x86_64"));
    m.copy(&w.repo("release"), &payload.digest);
    m.copy(&w.repo("dtk"), &dtk.digest);
    if let Some(digest) = os {
        m.copy(&w.repo("rhcos"), digest);
    }
    let altered = squashed(EVIL_KERNEL, "9.4", 6 << 20).pop().unwrap().blob;
    m.blob(
        &w.repo("dtk"),
        &honest[1].digest(),
        &sized(altered, honest[1].blob.len()),
    );
    w.matrix_raw(&format!(
        "[openshift]\npayload-repo = \"{}/{}\"\nreleases = [\"{VERSION}\"]\n\n[registries.\"{}\"]\nmirror = \"{}\"\n\n[registries.\"{}\"]\ninsecure = true\n",
        w.addr,
        w.repo("release"),
        w.addr,
        m.addr(),
        m.addr()
    ));
    m
}

/// The kernel of a squashed DTK, read from the start of its big layer, enters the lock only
/// when the nodes' kernel (from the OS image's verified config) is the same: then nothing more
/// is read, and nothing of it is cached. An altered prefix says another kernel, so the layer is
/// read whole, its digest does not match, and `resolve` fails (exit 4) without writing it.
#[test]
fn a_prefix_kernel_is_locked_only_when_the_nodes_kernel_confirms_it() {
    let w = World::new("tamper-squashed");
    let honest = squashed(K_416, "9.4", 6 << 20);
    let dtk = w
        .pusher
        .image(&w.repo("dtk"), None, &honest, &[], "amd64", Flavor::Docker)
        .unwrap();
    let payload = squashed_release(&w, &dtk, Some(K_416));
    w.matrix(&format!("releases = [\"{VERSION}\"]"), "");
    w.cmd().args(["resolve"]).run();
    let lock = w.lock();
    assert!(lock.contains(&format!("kernel = \"{K_416}\"")), "{lock}");
    assert!(
        lock.contains(&format!("node-kernel = \"{K_416}\"")),
        "{lock}"
    );
    // The payload's facts are verified and cached; the kernel, confirmed by the nodes', is not.
    let entries = cache_entries(&w);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains("/payloads/"), "{entries:?}");

    let _m = evil_mirror(&w, &payload, &dtk, &honest);
    let err = w.cmd().args(["resolve"]).expect_exit(4).stderr();
    assert!(says(&err, &honest[1].digest()), "{err}");
    assert!(says(&err, "does not match its digest"), "{err}");
    assert!(!w.lock().contains(EVIL_KERNEL), "{}", w.lock());
    assert_eq!(w.lock(), lock);
    assert_eq!(cache_entries(&w), entries);
}

/// Without the nodes' kernel to confirm it, a squashed DTK's layer is read whole: the kernel is
/// then verified (and cached), and an altered layer fails the run.
#[test]
fn a_prefix_kernel_nothing_confirms_is_read_whole() {
    let w = World::new("tamper-unconfirmed");
    let honest = squashed(K_416, "9.4", 6 << 20);
    let dtk = w
        .pusher
        .image(&w.repo("dtk"), None, &honest, &[], "amd64", Flavor::Docker)
        .unwrap();
    let payload = squashed_release(&w, &dtk, None);
    w.matrix(&format!("releases = [\"{VERSION}\"]"), "");
    w.cmd().args(["resolve"]).run();
    let lock = w.lock();
    assert!(lock.contains(&format!("kernel = \"{K_416}\"")), "{lock}");
    let entries = cache_entries(&w);
    assert_eq!(
        entries.len(),
        2,
        "the DTK's facts were read whole: {entries:?}"
    );
    clear_cache(&w);

    let _m = evil_mirror(&w, &payload, &dtk, &honest);
    let err = w.cmd().args(["resolve"]).expect_exit(4).stderr();
    assert!(says(&err, &honest[1].digest()), "{err}");
    assert_eq!(w.lock(), lock);
    assert!(cache_entries(&w).iter().all(|e| !e.contains("/dtk/")));
}
