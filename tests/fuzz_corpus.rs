//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`: seeds and the minimized findings
//! of `make fuzz`) through the same entry points as the cargo-fuzz targets, with the stable
//! toolchain: no input may panic, an invalid one must come back as a message, every input must
//! finish quickly, and the whole replay must stay within the fuzzers' memory limit.

#[path = "../fuzz/src/lib.rs"]
mod entries;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The fuzzers run with `-rss_limit_mb=256`; the replay keeps to the same bound.
const RSS_LIMIT_KIB: i64 = 256 * 1024;
/// Per input, in the unoptimized test build (the fuzzers flag anything over a few seconds).
const TIME_LIMIT: Duration = Duration::from_secs(20);

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

fn run(target: &str, file: &str) -> entries::Outcome {
    let (_, entry) = entries::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let path = entries::repo_root()
        .join("fuzz/corpus")
        .join(target)
        .join(file);
    entry(&std::fs::read(&path).expect("a corpus file"))
}

fn peak_rss_kib() -> i64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss
}

/// Replays `<dir>/<target>/*` for every target present: the problems found, and how many
/// inputs were replayed.
fn replay(dir: &Path, every_target: bool) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, entry) in entries::TARGETS {
        let target_dir = dir.join(target);
        if !every_target && !target_dir.is_dir() {
            continue;
        }
        let files = inputs(&target_dir);
        assert!(files.len() >= 2, "the `{target}` corpus is (nearly) empty");
        for path in files {
            let data = std::fs::read(&path).expect("a corpus file");
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| entry(&data)));
            let took = started.elapsed();
            let name = path.display();
            match outcome {
                Err(_) => failures.push(format!("{name}: panicked")),
                Ok(Err(message)) if message.trim().is_empty() => {
                    failures.push(format!("{name}: rejected with an empty message"))
                }
                Ok(_) => {}
            }
            if took > TIME_LIMIT {
                failures.push(format!("{name}: took {took:?}"));
            }
            replayed += 1;
        }
    }
    let peak = peak_rss_kib();
    if peak >= RSS_LIMIT_KIB {
        failures.push(format!(
            "replaying {replayed} inputs peaked at {} MiB resident",
            peak / 1024
        ));
    }
    (failures, replayed)
}

#[test]
fn every_corpus_input_is_handled_without_panic_in_bounded_time_and_memory() {
    let (failures, replayed) = replay(&entries::repo_root().join("fuzz/corpus"), true);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(replayed > 30, "only {replayed} inputs replayed");
}

#[test]
fn valid_seeds_are_accepted_with_what_they_hold() {
    let cases = [
        ("matrix", "seed-good-matrix.toml", "0 warnings"),
        ("lock", "seed-locks-new.lock", "3 releases"),
        ("lock_fields", "seed-rhel-10", "accepted as stream"),
        ("lock_fields", "seed-rhel-9.4", "rhel"),
        ("lock_fields", "seed-machine-os", "machine-os"),
        ("lock_fields", "seed-tagged-image", "accepted as image"),
        (
            "image_references",
            "seed-ok.json",
            "ocp-v4.0-art-dev@sha256:abab",
        ),
        ("release_metadata", "seed-ok.json", "4.16.3"),
        (
            "dtk",
            "seed-ok.json",
            "kernel 5.14.0-427.18.1.el9_4.x86_64 rhel 9.4",
        ),
        ("graph", "seed-ok.json", "4 nodes"),
        ("layer", "seed-payload.tar", "2 files found"),
        ("layer", "seed-payload.tar.gz", "2 files found"),
        ("layer", "seed-payload.tar.zst", "2 files found"),
        ("layer", "seed-pax.tar.gz", "2 files found"),
        ("verify_scan", "seed-modules.tar", "2 modules"),
        ("verify_scan", "seed-modules.tar.gz", "2 modules"),
        ("verify_scan", "seed-modules.tar.zst", "2 modules"),
        ("verify_scan", "seed-signed-compressed.tar.gz", "2 modules"),
        (
            "image_fs",
            "seed-links.bin",
            "2 layers, 5 modules, 3 through links",
        ),
        (
            "image_fs",
            "seed-whiteouts.bin",
            "2 layers, 1 modules, 0 through links",
        ),
        ("image_fs", "seed-dtk-tree.bin", "2 layers, 0 modules"),
        (
            "modinfo",
            "seed-hello-signed.ko",
            "5.14.0-427.18.1.el9_4.x86_64, signed by fuzz seed signing key ",
        ),
        (
            "modinfo",
            "seed-hello.ko",
            "kernel 5.14.0-427.18.1.el9_4.x86_64",
        ),
    ];
    for (target, file, expected) in cases {
        match run(target, file) {
            Ok(summary) => assert!(
                summary.contains(expected),
                "{target}/{file}: `{summary}` does not say `{expected}`"
            ),
            Err(e) => panic!("{target}/{file} was rejected: {e}"),
        }
    }
}

#[test]
fn invalid_seeds_are_rejected_with_a_clear_message() {
    let cases = [
        ("matrix", "seed-bad-01-toml-syntax.toml", "invalid TOML"),
        ("lock", "seed-future-version.lock", "99"),
        ("lock", "seed-hostile-stream.lock", "`stream`"),
        ("lock_fields", "seed-hostile", "accepted in no field"),
        (
            "image_references",
            "seed-not-imagestream.json",
            "expected an `ImageStream`",
        ),
        (
            "image_references",
            "seed-wrong-kind.json",
            "no `DockerImage` source",
        ),
        (
            "release_metadata",
            "seed-other-version.json",
            "not `4.16.3`",
        ),
        (
            "release_metadata",
            "seed-wrong-kind.json",
            "expected `cincinnati-metadata-v0`",
        ),
        ("modinfo", "seed-not-elf", "not an ELF object"),
    ];
    for (target, file, expected) in cases {
        match run(target, file) {
            Ok(summary) => panic!("{target}/{file} was accepted: {summary}"),
            Err(e) => assert!(
                e.contains(expected),
                "{target}/{file}: `{e}` lacks `{expected}`"
            ),
        }
    }
}
