//! Resolver figures (not a timed test; `cargo bench --bench resolve`, or `make bench`):
//!
//! 1. bytes fetched for one release against the minimum that still verifies every fact (the
//!    payload manifest, the payload's last layer whole, the DTK manifest, the DTK's top layer
//!    whole), as counted by the client and as written by the registry (its access log); the
//!    format's minimum (the payload's last layer only up to the end of `release-metadata`,
//!    unverifiable) for comparison; and whether the DTK base layer was requested at all;
//! 2. cold resolution of 100 releases on loopback (the real binary, an empty cache);
//! 3. warm resolution of 1,000 releases with `--offline` (all in the cache, no lock);
//! 4. the same single release through `benches/baseline-skopeo.sh` (skopeo copy + tar + jq).
//!
//! `DM_BENCH_RELEASES` (default 100) and `DM_BENCH_DTK_BASE_MB` (default 64) scale it.

// A benchmark prints its figures and may unwrap.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use driver_matrix::domain::{Arch, ImageRef, Version};
use driver_matrix::lock::{Lock, LockedRelease};
use driver_matrix::matrix::RegistrySettings;
use driver_matrix::registry::{Client, ClientOptions};
use driver_matrix::release::dtk::DtkInfo;
use driver_matrix::release::{Cache, DtkEntry, PayloadEntry, Resolver, Target, Verified};
use driver_matrix_sandbox::registry::Options;
use driver_matrix_sandbox::{DtkSpec, Flavor, PayloadSpec, Pusher, Registry};

const BIN: &str = env!("CARGO_BIN_EXE_driver-matrix");

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes the registry wrote in response bodies, from its access log lines after `from`.
fn served(log: &str, from: usize) -> (u64, Vec<String>) {
    let mut bytes = 0;
    let mut lines = Vec::new();
    for line in log[from..].lines() {
        let Some(i) = line.find("HTTP/1.1\" ") else {
            continue;
        };
        let mut rest = line[i + 10..].split_whitespace();
        let _status = rest.next();
        bytes += rest.next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        lines.push(line.to_string());
    }
    (bytes, lines)
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn run(dir: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("running driver-matrix");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn matrix(dir: &Path, addr: &str, versions: &[String]) {
    let list: Vec<String> = versions.iter().map(|v| format!("\"{v}\"")).collect();
    std::fs::write(
        dir.join("matrix.toml"),
        format!(
            "[openshift]\nreleases = [{}]\npayload-repo = \"{addr}/bench/release\"\n\n[registries.\"{addr}\"]\ninsecure = true\n",
            list.join(", ")
        ),
    )
    .expect("writing the matrix");
}

fn main() {
    let n = env_usize("DM_BENCH_RELEASES", 100);
    let base_mb = env_usize("DM_BENCH_DTK_BASE_MB", 64);
    let reg = Registry::start(Options::default()).expect("starting docker-registry");
    let addr = reg.addr().to_string();
    let pusher = Pusher::new(&addr);
    let work = tempfile::tempdir().expect("a temporary directory");

    // Fixtures: n releases, four consecutive z-streams per DTK (as real ones share them).
    let t = Instant::now();
    let mut payloads = Vec::new();
    let mut dtks = Vec::new();
    let mut versions = Vec::new();
    for i in 0..n {
        if i % 4 == 0 {
            let mut d = DtkSpec::new(&format!("5.14.0-{}.1.el9_4.x86_64", 400 + i / 4));
            d.base = base_mb << 20;
            let pushed = d
                .push(&pusher, "bench/dtk", "amd64", Flavor::Docker)
                .expect("push");
            dtks.push((d, pushed));
        }
        let (dtk, dtk_pushed) = dtks.last().expect("a DTK was pushed");
        let version = format!("4.16.{i}");
        let spec = PayloadSpec::new(
            &version,
            Some(format!("{addr}/bench/dtk@{}", dtk_pushed.digest)),
        );
        let tag = format!("{version}-x86_64");
        let p = spec
            .push(
                &pusher,
                "bench/release",
                Some(&tag),
                "amd64",
                Flavor::Docker,
            )
            .expect("push");
        payloads.push((spec, p, dtk.clone(), dtk_pushed.clone()));
        versions.push(version);
    }
    println!(
        "fixtures: {n} payloads (190 tags, {} of filler manifests), {} DTKs ({base_mb} MiB base layer), pushed in {:.1} s",
        mib(payloads[0].0.filler as u64),
        dtks.len(),
        t.elapsed().as_secs_f64()
    );

    // 1. Bytes for one release.
    let (spec, payload, dtk, dtk_pushed) = &payloads[0];
    let payload_layers = spec.layers();
    let manifests_layer = payload_layers[1].blob.len();
    let minimum = (payload.size + manifests_layer + dtk_pushed.size + dtk.minimal_bytes()) as u64;
    let format_minimum =
        (payload.size + spec.minimal_prefix() + dtk_pushed.size + dtk.minimal_bytes()) as u64;
    let mut registries = std::collections::BTreeMap::new();
    registries.insert(
        addr.clone(),
        RegistrySettings {
            mirror: None,
            insecure: true,
        },
    );
    let client = Client::new(ClientOptions {
        registries,
        ..ClientOptions::default()
    })
    .expect("a client");
    let cache = Cache::new(work.path().join("cache-one"));
    let from = reg.log().len();
    let target = Target {
        version: versions[0].parse().expect("a version"),
        arch: Arch::X86_64,
        payload: format!("{addr}/bench/release:{}-x86_64", versions[0])
            .parse()
            .expect("a reference"),
    };
    Resolver {
        client: Some(&client),
        cache: &cache,
        jobs: 1,
    }
    .resolve(
        std::slice::from_ref(&target),
        &Lock::default(),
        &driver_matrix::progress::Silent,
    )
    .expect("resolving one release");
    let counted = client.stats();
    std::thread::sleep(Duration::from_millis(200)); // let the access log flush
    let (written, lines) = served(&reg.log(), from);
    let base_digest = dtk.layers()[0].digest();
    let base_touched = lines.iter().any(|l| l.contains(&base_digest));
    println!("\n1. bytes for one release (payload + DTK)");
    println!("   minimum that still verifies:   {minimum} B (target: at most 1.2x)");
    println!(
        "   client received:               {} B ({:.2}x)",
        counted.bytes,
        counted.bytes as f64 / minimum as f64
    );
    println!(
        "   registry wrote:                {written} B ({:.2}x) in {} requests",
        written as f64 / minimum as f64,
        lines.len()
    );
    println!(
        "   format minimum (unverifiable): {format_minimum} B: the payload's last layer ({manifests_layer} B) only through release-metadata ({} B)",
        spec.minimal_prefix()
    );
    println!("   DTK base layer requested: {base_touched}");

    // 2. Cold resolution of every release with the real binary.
    let cold = work.path().join("cold");
    std::fs::create_dir_all(&cold).expect("mkdir");
    matrix(&cold, &addr, &versions);
    let from = reg.log().len();
    let took = run(&cold, &["-q", "--cache-dir", "cache", "resolve"]);
    std::thread::sleep(Duration::from_millis(200));
    let (written, lines) = served(&reg.log(), from);
    println!("\n2. cold resolution of {n} releases (empty cache, 8 workers, loopback)");
    println!(
        "   {} ({} per release), {} requests, {} served",
        ms(took),
        ms(took / n as u32),
        lines.len(),
        mib(written)
    );
    let again = run(&cold, &["-q", "--cache-dir", "cache", "resolve"]);
    println!(
        "   second run (cache warm, one HEAD per release): {}",
        ms(again)
    );

    // 3. Warm, offline: 1,000 releases in the cache, no lock.
    let warm = work.path().join("warm");
    std::fs::create_dir_all(&warm).expect("mkdir");
    let cache = Cache::new(warm.join("cache"));
    let template: LockedRelease = cache_one(&cold, &versions[0]);
    let dtk_digest = template.dtk.digest().expect("the DTK is locked by digest");
    cache.put_dtk(&DtkEntry {
        image: dtk_digest.clone(),
        info: DtkInfo {
            kernel: template.kernel.clone(),
            rt_kernel: template.rt_kernel.clone(),
            rhel: template.rhel.clone(),
        },
        verified: Verified::read_whole(dtk.layers()[2].digest().parse().expect("a digest")),
    });
    let payload_layer: driver_matrix::domain::Digest =
        payload_layers[1].digest().parse().expect("a digest");
    let mut many = Vec::new();
    for i in 0..1000 {
        let version = format!("4.17.{i}");
        let tag: ImageRef = format!("{addr}/bench/release:{version}-x86_64")
            .parse()
            .expect("a reference");
        let digest = driver_matrix::domain::Digest::sha256(version.as_bytes());
        cache.put_tag(&tag, &digest);
        cache.put_payload(&PayloadEntry {
            payload: digest,
            arch: template.arch,
            version: version.parse::<Version>().expect("a version"),
            dtk: template.dtk.clone(),
            machine_os: template.machine_os.clone(),
            node: None,
            rhel10: None,
            verified: Verified::read_whole(payload_layer.clone()),
        });
        many.push(version);
    }
    matrix(&warm, &addr, &many);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let _ = std::fs::remove_file(warm.join("matrix.lock"));
        best = best.min(run(
            &warm,
            &["-q", "--offline", "--cache-dir", "cache", "resolve"],
        ));
    }
    let mut best_locked = Duration::MAX;
    for _ in 0..5 {
        best_locked = best_locked.min(run(
            &warm,
            &["-q", "--offline", "--cache-dir", "cache", "resolve"],
        ));
    }
    println!("\n3. warm resolution of 1000 releases, --offline (best of 5, whole process)");
    println!("   from the cache alone (no lock): {}", ms(best));
    println!("   with the lock in place:         {}", ms(best_locked));

    // 4. The skopeo baseline on release 0, against driver-matrix cold on the same release.
    let one = work.path().join("one");
    std::fs::create_dir_all(&one).expect("mkdir");
    matrix(&one, &addr, &versions[..1]);
    let mut dm = Duration::MAX;
    let mut dm_bytes = 0;
    for i in 0..3 {
        let from = reg.log().len();
        dm = dm.min(run(
            &one,
            &["-q", "--cache-dir", &format!("cache{i}"), "resolve"],
        ));
        std::thread::sleep(Duration::from_millis(200));
        dm_bytes = served(&reg.log(), from).0;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline-skopeo.sh");
    let mut sk = Duration::MAX;
    let mut sk_bytes = 0;
    let mut sk_out = String::new();
    for _ in 0..3 {
        let from = reg.log().len();
        let start = Instant::now();
        let out = Command::new(&script)
            .args([
                &addr,
                &format!("{addr}/bench/release:{}-x86_64", versions[0]),
            ])
            .arg(work.path().join("skopeo"))
            .output()
            .expect("running the baseline script");
        sk = sk.min(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sk_out = String::from_utf8_lossy(&out.stdout).trim().to_string();
        std::thread::sleep(Duration::from_millis(200));
        sk_bytes = served(&reg.log(), from).0;
    }
    println!("\n4. one release, cold: driver-matrix vs skopeo copy + tar + jq (best of 3)");
    println!("   driver-matrix: {}, {} served", ms(dm), mib(dm_bytes));
    println!(
        "   baseline:      {}, {} served ({sk_out})",
        ms(sk),
        mib(sk_bytes)
    );
    println!(
        "   ratio: {:.1}x faster, {:.0}x fewer bytes",
        sk.as_secs_f64() / dm.as_secs_f64(),
        sk_bytes as f64 / dm_bytes.max(1) as f64
    );
}

/// The lock entry the cold run wrote for `version`, as a template for synthetic entries.
fn cache_one(dir: &Path, version: &str) -> LockedRelease {
    let lock = driver_matrix::lock::read(&dir.join("matrix.lock")).expect("the cold run's lock");
    lock.releases
        .into_iter()
        .find(|r| r.version.to_string() == version)
        .expect("the release is locked")
}
