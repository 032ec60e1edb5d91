//! Faults do not change the result: with 30 % of the tool's registry requests faulted by a
//! seeded proxy (resets, 5xx, 429 with `Retry-After`, stalls, bodies cut short), `resolve`,
//! `build`, `verify --deep` and `collect` write the same lock, byte for byte, as a run without
//! faults. The proxy is a read mirror of the real registry (`[registries."REAL"] mirror =
//! "PROXY"`), so every read of the tool goes through it; buildah pushes to the real registry
//! (registries.conf mirrors only serve pulls).
//!
//! Run with `--nocapture` to see the seeds and the faults each one survived.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use driver_matrix::domain::{Arch, Digest, ImageRef};
use driver_matrix::matrix::RegistrySettings;
use driver_matrix::registry::{Client, ClientOptions, Descriptor};

use crate::support::{World, in_dir, module};
use driver_matrix_sandbox::proxy::{Counts, FaultProxy};

const K1: &str = "5.14.0-284.52.1.el9_2.x86_64";
const K2: &str = "5.14.0-427.18.1.el9_4.x86_64";
const SEEDS: [u64; 5] = [11, 22, 33, 44, 55];
const RATE: f64 = 0.3;

/// Publishes 4.14.1 and 4.14.2 on K1 and 4.16.1 on K2.
fn publish(w: &World) {
    w.publish(&[(&["4.14.1", "4.14.2"], K1), (&["4.16.1"], K2)]);
}

/// A checkout in `dir`: one driver that copies the module built for each kernel, its reads
/// mirrored to `proxy`.
fn checkout(w: &World, dir: &Path, proxy: &str) {
    let ctx = dir.join("hello-kmod");
    for k in [K1, K2] {
        std::fs::create_dir_all(ctx.join("modules").join(k)).unwrap();
        std::fs::write(
            ctx.join("modules").join(k).join("hello.ko"),
            module("hello", k),
        )
        .unwrap();
    }
    std::fs::write(
        ctx.join("Containerfile"),
        "ARG DTK_IMAGE\nFROM ${DTK_IMAGE} AS dtk\n\nFROM scratch\nARG KERNEL_VERSION\n\
         COPY --from=dtk /etc/driver-toolkit-release.json /etc/\n\
         COPY modules/${KERNEL_VERSION}/hello.ko /opt/lib/modules/${KERNEL_VERSION}/hello.ko\n",
    )
    .unwrap();
    let text = format!(
        "[openshift]\npayload-repo = \"{addr}/{release}\"\nreleases = [\"4.14.1\", \"4.14.2\", \"4.16.1\"]\n\n\
         [registries.\"{addr}\"]\nmirror = \"{proxy}\"\ninsecure = true\n\n\
         [registries.\"{proxy}\"]\ninsecure = true\n\n\
         [[driver]]\nname = \"hello-kmod\"\ncontext = \"hello-kmod\"\nimage = \"{addr}/{ns}/hello-kmod\"\nmodules = [\"hello\"]\n",
        addr = w.addr,
        release = w.repo("release"),
        ns = w.ns,
    );
    std::fs::write(dir.join("matrix.toml"), text).unwrap();
}

fn lock_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("matrix.lock")).unwrap()
}

/// The locks of one pass: after `resolve`, after `build` and `verify --deep`, and of
/// `resolve` + `collect` in another checkout.
#[derive(Debug, PartialEq, Eq)]
struct Locks {
    resolved: String,
    built: String,
    collected: String,
}

fn pass(w: &World, proxy: &str) -> Locks {
    let builder = tempfile::tempdir().unwrap();
    let dir = builder.path();
    checkout(w, dir, proxy);
    in_dir(dir).args(["resolve"]).run();
    let resolved = lock_of(dir);
    in_dir(dir).args(["build", "-j", "2"]).run();
    let built = lock_of(dir);
    let out = in_dir(dir).args(["verify", "--deep"]).run();
    assert!(
        out.stdout
            .contains("2 of 2 images and their modules verified"),
        "{}",
        out.stdout
    );
    assert_eq!(lock_of(dir), built, "verify does not touch the lock");
    let collector = tempfile::tempdir().unwrap();
    checkout(w, collector.path(), proxy);
    in_dir(collector.path()).args(["resolve"]).run();
    in_dir(collector.path())
        .args(["collect"])
        .stderr_contains("collected 2 of 2 images")
        .run();
    Locks {
        resolved,
        built,
        collected: lock_of(collector.path()),
    }
}

#[test]
fn thirty_percent_faults_leave_every_lock_byte_identical() {
    let w = World::new("faults");
    publish(&w);
    let proxy = FaultProxy::start(&w.addr, 0, 0.0, Duration::from_millis(500)).unwrap();
    let clean = pass(&w, proxy.addr());
    assert_eq!(proxy.counts().injected(), 0);
    assert_eq!(clean.collected, clean.built);
    assert!(clean.built.contains(K1) && clean.built.contains(K2));

    let mut total = Counts::default();
    for seed in SEEDS {
        proxy.reseed(seed, RATE);
        let faulted = pass(&w, proxy.addr());
        let counts = proxy.counts();
        eprintln!("seed {seed}: survived {counts}");
        assert_eq!(faulted.resolved, clean.resolved, "seed {seed}: resolve");
        assert_eq!(faulted.built, clean.built, "seed {seed}: build");
        assert_eq!(faulted.collected, clean.collected, "seed {seed}: collect");
        assert!(counts.injected() > 0, "seed {seed}: {counts}");
        total.requests += counts.requests;
        for (kind, n) in counts.faults {
            *total.faults.entry(kind).or_insert(0) += n;
        }
    }
    eprintln!("all {} seeds: survived {total}", SEEDS.len());
    // The faults were real: about the rate asked (300-odd requests: the share is within
    // 0.2..0.4 but for a 4-sigma draw), and of every kind.
    let share = total.injected() as f64 / total.requests as f64;
    assert!((0.2..0.4).contains(&share), "{total}");
    for kind in ["reset", "500", "502", "503", "429", "stall", "truncate"] {
        assert!(
            total.faults.get(kind).is_some_and(|&n| n > 0),
            "no `{kind}` fault was injected: {total}"
        );
    }
}

#[test]
fn a_dead_registry_fails_the_run_in_reasonable_time() {
    let w = World::new("dead");
    publish(&w);
    // A loopback port nobody listens on: every connection is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    checkout(&w, dir.path(), &dead);
    let start = Instant::now();
    let out = in_dir(dir.path()).args(["resolve"]).expect_exit(4).run();
    let took = start.elapsed();
    assert!(out.stderr.contains(&dead), "{}", out.stderr);
    // Eleven tries with ten waits between them: at least 6.5 s, at most 13.1 s (see
    // `registry/retry.rs`), plus the process's own time.
    eprintln!("a dead registry: resolve gave up after {took:?}");
    assert!(
        took >= Duration::from_secs(6),
        "took {took:?}: were retries made?"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// A server on loopback that answers every request with `status` and a body of `len` zero
/// bytes, generated as it is sent (with `Content-Length`, or chunked), and counts the bytes it
/// managed to send before the client hung up.
fn huge_body_server(status: u16, len: u64, chunked: bool) -> (String, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let framing = if chunked {
                    "Transfer-Encoding: chunked".to_string()
                } else {
                    format!("Content-Length: {len}")
                };
                let mut out = conn;
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
                );
                if out.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let block = vec![b'0'; 64 << 10];
                let mut left = len;
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    let written = if chunked {
                        out.write_all(format!("{n:x}\r\n").as_bytes())
                            .and_then(|()| out.write_all(&block[..n]))
                            .and_then(|()| out.write_all(b"\r\n"))
                    } else {
                        out.write_all(&block[..n])
                    };
                    if written.is_err() {
                        return;
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    left -= n as u64;
                }
                let _ = out.write_all(b"0\r\n\r\n");
            });
        }
    });
    (addr, sent)
}

/// The process's peak resident memory since the last reset, in bytes; resets it.
fn peak_rss_and_reset() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    // "5" resets the peak to the current resident size (proc(5), Linux 4.0+).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    kb << 10
}

#[test]
fn a_huge_body_is_refused_at_its_cap_in_bounded_memory() {
    const HUGE: u64 = 1536 << 20;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auth.json"), "{}").unwrap();
    let client = |addr: &str| {
        let settings = RegistrySettings {
            mirror: None,
            insecure: true,
        };
        Client::new(ClientOptions {
            registries: [(addr.to_string(), settings)].into(),
            authfile: Some(dir.path().join("auth.json")),
            retries: 1,
            ..ClientOptions::default()
        })
        .unwrap()
    };
    let cases = [(404, false), (404, true), (200, true)];
    for (status, chunked) in cases {
        let (addr, sent) = huge_body_server(status, HUGE, chunked);
        let c = client(&addr);
        let base = peak_rss_and_reset();
        let r: ImageRef = format!("{addr}/a/b:t").parse().unwrap();
        let manifest = c.manifest(&r, Arch::X86_64).unwrap_err().to_string();
        let graph_url = format!("http://{addr}/graph");
        let graph = c.get_json(&graph_url).unwrap_err().to_string();
        let desc = Descriptor {
            media_type: "application/octet-stream".into(),
            digest: Digest::sha256(b"x"),
            size: 1 << 20,
        };
        let blob = match c.blob_reader(&r, &desc) {
            Err(e) => e.to_string(),
            Ok(mut reader) => std::io::copy(&mut reader, &mut std::io::sink())
                .map(|_| "read".to_string())
                .unwrap_or_else(|e| e.to_string()),
        };
        let grew = peak_rss_and_reset().saturating_sub(base);
        let sent = sent.load(Ordering::Relaxed);
        eprintln!(
            "HTTP {status} body of {HUGE} bytes (chunked: {chunked}): refused after {sent} bytes sent, peak memory +{} KiB",
            grew >> 10
        );
        let cap = if status == 200 { "8 MiB" } else { "64 KiB" };
        for (what, e) in [("manifest", &manifest), ("graph", &graph)] {
            assert!(
                e.contains(&format!("larger than {cap}")) && e.contains(&addr),
                "{what}: {e}"
            );
        }
        if status == 404 {
            assert!(
                blob.contains("larger than 64 KiB") && blob.contains(&addr),
                "{blob}"
            );
        } else {
            // A blob that goes on past its size is refused there.
            assert!(blob.contains("larger than its 1048576 bytes"), "{blob}");
        }
        assert!(grew < 64 << 20, "memory grew by {grew} bytes");
        if status == 404 {
            assert!(sent < 256 << 20, "{sent} bytes were read");
        }
    }
}

/// A layer shared by several images (the DTK's, under drivers built `FROM` it) is read once by
/// `verify --deep`, not once per image, and a layer without modules not again by the next run.
#[test]
fn verify_reads_a_layer_shared_by_images_once() {
    let w = World::new("shared-layers");
    w.publish(&[(&["4.14.1"], K1)]);
    let proxy = FaultProxy::start(&w.addr, 0, 0.0, Duration::from_millis(500)).unwrap();
    let dir = w.dir.path();
    let mut drivers = String::new();
    for name in ["alpha", "beta"] {
        let ctx = dir.join(name);
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join(format!("{name}.ko")), module(name, K1)).unwrap();
        std::fs::write(
            ctx.join("Containerfile"),
            format!(
                "ARG DTK_IMAGE\nFROM ${{DTK_IMAGE}}\nARG KERNEL_VERSION\n\
                 COPY {name}.ko /opt/lib/modules/${{KERNEL_VERSION}}/{name}.ko\n"
            ),
        )
        .unwrap();
        drivers.push_str(&format!(
            "\n[[driver]]\nname = \"{name}\"\ncontext = \"{name}\"\nimage = \"{}/{}/{name}\"\nmodules = [\"{name}\"]\n",
            w.addr, w.ns
        ));
    }
    w.matrix(
        "releases = [\"4.14.1\"]",
        &format!(
            "mirror = \"{p}\"\n\n[registries.\"{p}\"]\ninsecure = true\n{drivers}",
            p = proxy.addr()
        ),
    );
    in_dir(dir).args(["build"]).run();
    // Reads of each blob by one `verify --deep`, whatever the repository: a read starts at its
    // first byte (a whole layer comes in growing ranges).
    let verify = || {
        proxy.reseed(0, 0.0);
        let out = in_dir(dir).args(["verify", "--deep"]).run();
        assert!(
            out.stdout
                .contains("2 of 2 images and their modules verified"),
            "{}",
            out.stdout
        );
        let mut reads: std::collections::BTreeMap<String, usize> = Default::default();
        for s in proxy.seen() {
            let Some((_, digest)) = s.path.split_once("/blobs/") else {
                continue;
            };
            if s.method == "GET" && s.range.as_deref().is_none_or(|r| r.starts_with("bytes=0-")) {
                *reads.entry(digest.to_string()).or_default() += 1;
            }
        }
        reads
    };
    // An empty cache (the build filled it): the DTK's layers, then each image's own module
    // layer, each read once.
    std::fs::remove_dir_all(dir.join("cache")).unwrap();
    let first = verify();
    assert!(first.len() >= 3, "{first:#?}");
    assert!(first.values().all(|&n| n == 1), "{first:#?}");
    // The next run reads only the layers with modules: the DTK's come from the cache.
    let second = verify();
    assert_eq!(second.len(), 2, "{second:#?}");
    assert!(second.keys().all(|k| first.contains_key(k)), "{second:#?}");
}
