//! A cache directory restored from elsewhere (a CI cache a pull request could write) vouches
//! for nothing: entries that are well formed and filed under the right name, but not tagged
//! with this user's cache key (`~/.config/driver-matrix/cache.key`, under the test's HOME), are
//! misses, and the real facts come from the registry. The control in each test plants the same
//! entry tagged with the user's own key and sees it believed, so the forgery is one the old
//! cache would have taken.

use std::path::Path;

use driver_matrix::domain::{Arch, Digest, ImageRef};
use driver_matrix::release::cache_key::CacheKey;
use driver_matrix::release::dtk::DtkInfo;
use driver_matrix::release::{Cache, DtkEntry, PayloadEntry, Verified};

use crate::support::*;

const EVIL_KERNEL: &str = "6.6.6-666.evil.x86_64";

fn users_key(home: &Path) -> CacheKey {
    CacheKey::from_file(&home.join(".config/driver-matrix/cache.key")).unwrap()
}

fn attackers_key() -> CacheKey {
    CacheKey::from_secret(b"restored from a pull request's cache").unwrap()
}

/// Files an entry for the payload of `lock`'s release that points at a DTK of the attacker's,
/// with that DTK's entry beside it, both tagged with `key`. Returns the DTK named.
fn forge_payload(cache_dir: &Path, key: CacheKey, lock: &driver_matrix::lock::Lock) -> String {
    let honest = &lock.releases[0];
    let cache = Cache::with_key(cache_dir, key);
    let evil_digest = Digest::sha256(b"the attacker's builder");
    let evil: ImageRef = format!("quay.io/tools/bb-builder@{evil_digest}")
        .parse()
        .unwrap();
    cache.put_payload(&PayloadEntry {
        payload: honest.payload.digest().unwrap().clone(),
        arch: Arch::X86_64,
        version: honest.version.clone(),
        dtk: evil.clone(),
        machine_os: None,
        node: None,
        rhel10: None,
        verified: Verified::read_whole(Digest::sha256(b"payload layer")),
    });
    cache.put_dtk(&DtkEntry {
        image: evil_digest.clone(),
        info: DtkInfo {
            kernel: EVIL_KERNEL.parse().unwrap(),
            rt_kernel: None,
            rhel: "9.9".into(),
        },
        verified: Verified::read_whole(Digest::sha256(b"dtk layer")),
    });
    evil.to_string()
}

#[test]
fn a_payload_entry_without_this_users_tag_is_a_miss() {
    let w = World::new("forged-payload");
    w.publish(&[(&["4.14.1"], K_414)]);
    w.matrix("releases = [\"4.14.1\"]", "");
    w.cmd().args(["resolve"]).run();
    let honest = w.lock();
    let lock = driver_matrix::lock::read(&w.path("matrix.lock")).unwrap();
    let reset = || {
        let _ = std::fs::remove_dir_all(w.path("cache"));
        std::fs::remove_file(w.path("matrix.lock")).unwrap();
    };

    // Tagged with another key: offline there is nothing to answer from, and online the
    // registry's facts are locked and cached in place of the forged ones.
    reset();
    let evil = forge_payload(&w.path("cache"), attackers_key(), &lock);
    w.cmd().args(["--offline", "resolve"]).expect_exit(2).run();
    w.cmd().args(["resolve"]).run();
    assert_eq!(w.lock(), honest);
    w.cmd().args(["--offline", "resolve"]).run();
    assert_eq!(
        w.lock(),
        honest,
        "the honest entries replaced the forged ones"
    );

    // No tag at all: the bare entry, as the old cache wrote it.
    reset();
    forge_payload(&w.path("cache"), attackers_key(), &lock);
    for file in walk(&w.path("cache")) {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        std::fs::write(&file, v["entry"].to_string()).unwrap();
    }
    w.cmd().args(["resolve"]).run();
    assert_eq!(w.lock(), honest);

    // The control: tagged with the user's own key (which the first run made), the same
    // entries are believed.
    reset();
    forge_payload(&w.path("cache"), users_key(w.dir.path()), &lock);
    w.cmd().args(["resolve"]).run();
    assert!(w.lock().contains(&evil), "{}", w.lock());
    assert!(w.lock().contains(EVIL_KERNEL), "{}", w.lock());
}

/// The layers of `pinned`, as its manifest names them.
fn layers(pinned: &str) -> Vec<Digest> {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{pinned}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_layer_entry_without_this_users_tag_is_a_miss() {
    let w = World::new("forged-layer");
    w.publish(&[(&["4.14.1"], K_414)]);
    crate::support::scratch_module_context(&w.path("hello-kmod"), &[K_414]);
    w.matrix(
        "releases = [\"4.14.1\"]",
        &format!(
            "\n[[driver]]\nname = \"hello-kmod\"\ncontext = \"hello-kmod\"\n\
             image = \"{}/{}/hello-kmod\"\nmodules = [\"hello\"]\n",
            w.addr, w.ns
        ),
    );
    w.cmd().args(["build"]).run();
    let lock = driver_matrix::lock::read(&w.path("matrix.lock")).unwrap();
    let image = lock.images[0].pinned().to_string();
    let verify = |code| w.cmd().args(["verify", "--deep"]).expect_exit(code).run();
    verify(0);
    // Every layer of the image said to hold no module and remove nothing, filed by a cache
    // restored from elsewhere: misses, the module layer is read, the image still verifies.
    let forge = |key: CacheKey| {
        let cache = Cache::with_key(w.path("cache"), key);
        for layer in layers(&image) {
            cache.put_layer(&layer, (vec![], vec![], vec![]));
        }
    };
    forge(attackers_key());
    verify(0);
    // The control: under the user's own key, the same entries hide the module.
    forge(users_key(w.dir.path()));
    verify(1);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// CI shares a cache between machines through `DRIVER_MATRIX_CACHE_KEY`: the same secret reads
/// what another HOME wrote; another secret, or none (an empty variable is none: the HOME's own
/// key file), does not.
#[test]
fn the_environments_key_is_shared_between_machines_and_nothing_else_is() {
    let w = World::new("cache-key-env");
    w.publish(&[(&["4.14.1"], K_414)]);
    w.matrix("releases = [\"4.14.1\"]", "");
    let dm = |home: &Path, key: &str, args: &[&str]| {
        w.cmd()
            .args(args)
            .env("HOME", home)
            .env("DRIVER_MATRIX_CACHE_KEY", key)
    };
    dm(w.dir.path(), "nightly secret", &["resolve"]).run();
    let honest = w.lock();
    let other = tempfile::tempdir().unwrap();
    for (key, code) in [("nightly secret", 0), ("another secret", 2), ("", 2)] {
        std::fs::remove_file(w.path("matrix.lock")).unwrap();
        dm(other.path(), key, &["--offline", "resolve"])
            .expect_exit(code)
            .run();
        if code == 0 {
            assert_eq!(w.lock(), honest);
        } else {
            std::fs::write(w.path("matrix.lock"), &honest).unwrap();
        }
    }
    // An empty variable falls back to the HOME's key file, which then vouches for what that
    // HOME writes.
    dm(other.path(), "", &["resolve"]).run();
    assert!(
        other
            .path()
            .join(".config/driver-matrix/cache.key")
            .exists()
    );
    std::fs::remove_file(w.path("matrix.lock")).unwrap();
    dm(other.path(), "", &["--offline", "resolve"]).run();
    assert_eq!(w.lock(), honest);
}
