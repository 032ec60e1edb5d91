//! Planner benchmark: drivers × releases × arches from an in-memory resolution.
//!
//! `cargo bench --bench plan` prints, for 3,000, 30,000 and 300,000 cells, the planning time
//! (median of several runs) and the peak memory of a process that plans that size once. Each
//! size runs in a child process so that peak memory is its own.
//!
//! Targets (issue: the core): 30,000 cells in under 100 ms and under 64 MiB peak.

// A benchmark prints its figures and may unwrap.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use driver_matrix::domain::{Arch, Digest, Kernel, Version};
use driver_matrix::lock::{Lock, LockedRelease};
use driver_matrix::plan::{self, PlanInput};
use driver_matrix::{inputs, matrix};

const DRIVERS: usize = 50;
const ARCHES: usize = 2;
/// Consecutive z-streams share a kernel, as they do in practice.
const RELEASES_PER_KERNEL: usize = 3;

fn write_matrix(dir: &Path, releases: usize) -> Vec<Version> {
    let versions: Vec<Version> = (0..releases)
        .map(|i| format!("4.{}.{}", 10 + i / 100, i % 100).parse().unwrap())
        .collect();
    let mut text = String::from("[openshift]\narch = [\"x86_64\", \"aarch64\"]\nreleases = [");
    text.push_str(
        &versions
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    text.push_str("]\n");
    for d in 0..DRIVERS {
        let ctx = dir.join(format!("drivers/d{d}"));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Containerfile"),
            format!("ARG DTK_IMAGE\nFROM ${{DTK_IMAGE}}\nRUN echo {d}\n"),
        )
        .unwrap();
        std::fs::write(ctx.join("driver.c"), format!("int driver_{d};\n")).unwrap();
        text.push_str(&format!(
            "\n[[driver]]\nname = \"driver-{d:02}\"\ncontext = \"drivers/d{d}\"\nimage = \"quay.io/acme/driver-{d:02}\"\ntag = \"${{VERSION}}-${{KERNEL_FULL_VERSION}}\"\nbuild-args = {{ VERSION = \"1.{d}\" }}\n"
        ));
    }
    std::fs::write(dir.join("matrix.toml"), text).unwrap();
    versions
}

fn resolutions(versions: &[Version]) -> Vec<LockedRelease> {
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let k = i / RELEASES_PER_KERNEL;
            let kernel: Kernel = format!("5.14.0-{}.{}.1.el9_4.{arch}", 284 + k / 50, k % 50)
                .parse()
                .unwrap();
            let dtk = Digest::sha256(format!("dtk-{k}-{arch}").as_bytes());
            out.push(LockedRelease {
                version: v.clone(),
                arch,
                stream: None,
                payload: format!(
                    "quay.io/openshift-release-dev/ocp-release@{}",
                    Digest::sha256(v.to_string().as_bytes())
                )
                .parse()
                .unwrap(),
                dtk: format!("quay.io/openshift-release-dev/ocp-v4.0-art-dev@{dtk}")
                    .parse()
                    .unwrap(),
                kernel,
                rt_kernel: None,
                rhel: "9.4".into(),
                machine_os: None,
                node_kernel: None,
            });
        }
    }
    out
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs in the child: plans one size, prints `cells jobs median_ms peak_kib before_kib`.
fn child(releases: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let versions = write_matrix(dir.path(), releases);
    let m = matrix::load(&dir.path().join("matrix.toml"))
        .unwrap()
        .matrix;
    let releases = resolutions(&versions);
    let contexts = inputs::context_digests(&m).unwrap();
    let lock = Lock::default();
    let before = peak_rss_kib();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let p = plan::plan(&PlanInput {
            matrix: &m,
            versions: &versions,
            releases: &releases,
            contexts: &contexts,
            lock: &lock,
        })
        .unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        last = Some(p);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = last.unwrap();
    println!(
        "{} {} {:.2} {} {}",
        p.cells,
        p.jobs.len(),
        times[times.len() / 2],
        peak_rss_kib(),
        before
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let releases: usize = args[pos + 1].parse().unwrap();
        let runs: usize = args[pos + 2].parse().unwrap();
        child(releases, runs);
        return;
    }
    println!(
        "planner: {DRIVERS} drivers x N releases x {ARCHES} arches, {RELEASES_PER_KERNEL} releases per kernel"
    );
    println!(
        "{:>9} {:>7} {:>12} {:>14} {:>16}",
        "cells", "jobs", "plan (ms)", "peak RSS (MiB)", "RSS before (MiB)"
    );
    for (releases, runs) in [(30, 21), (300, 11), (3000, 5)] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--child", &releases.to_string(), &runs.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        let mib = |s: &str| s.parse::<f64>().unwrap() / 1024.0;
        println!(
            "{:>9} {:>7} {:>12} {:>14.1} {:>16.1}",
            f[0],
            f[1],
            f[2],
            mib(f[3]),
            mib(f[4])
        );
    }
}
