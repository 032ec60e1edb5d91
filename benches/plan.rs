//! Planner benchmark: drivers × releases × arches from an in-memory resolution.
//!
//! `cargo bench --bench plan` measures, for 3,000, 30,000 and 300,000 cells, the planning time
//! and the peak memory of a process that plans that size. Each run is a child process so that
//! peak memory is its own; the section goes to `docs/benchmarks.md` (see `common`).
//!
//! Targets: 30,000 cells under 100 ms and 64 MiB, 300,000 under 250 ms and 256 MiB, linear.

// A benchmark prints its figures and may unwrap.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use driver_matrix::domain::{Arch, Digest, Kernel, Version};
use driver_matrix::lock::{Lock, LockedRelease};
use driver_matrix::plan::{self, PlanInput};
use driver_matrix::{inputs, matrix};

use common::{Stat, Table, peak_rss_kib};
use driver_matrix::plan::{Assignment, select::shard_of};

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
                node_rt_kernel: None,
            });
        }
    }
    out
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
        // The previous plan goes first: the peak is that of one plan, as in a real run.
        drop(last.take());
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
    let mut table = Table::new(&[
        "cells",
        "jobs",
        "plan time",
        "per 1,000 cells",
        "peak RSS (process)",
        "RSS before planning",
        "target",
    ]);
    let mut curve = Vec::new();
    let mut measured = Vec::new();
    for releases in common::sizes(&[30, 300, 3000]) {
        // Each process plans the size 3 times and reports its median; peak RSS is per process.
        let (mut times, mut peaks, mut befores) = (Vec::new(), Vec::new(), Vec::new());
        let mut counts = (0, 0);
        for _ in 0..common::runs() {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--child", &releases.to_string(), "3"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8(out.stdout).unwrap();
            let f: Vec<&str> = line.split_whitespace().collect();
            counts = (
                f[0].parse::<usize>().unwrap(),
                f[1].parse::<usize>().unwrap(),
            );
            times.push(f[2].parse::<f64>().unwrap());
            peaks.push(f[3].parse::<f64>().unwrap() / 1024.0);
            befores.push(f[4].parse::<f64>().unwrap() / 1024.0);
        }
        let (cells, jobs) = counts;
        let time = Stat::of(times);
        let peak = Stat::of(peaks);
        let target = match cells {
            30_000 => "under 100 ms and 64 MiB",
            300_000 => "under 250 ms and 256 MiB",
            _ => "linear",
        };
        table.row(&[
            format!("{cells}"),
            format!("{jobs}"),
            time.show(1, "ms"),
            time.scale(1000.0 / cells as f64).show(2, "ms"),
            peak.show(1, "MiB"),
            Stat::of(befores).show(1, "MiB"),
            target.into(),
        ]);
        curve.push((cells as f64, time.median));
        measured.push((cells, time, peak));
    }
    plan_targets(&measured);
    common::section(
        "20-plan",
        &format!(
            "## 2. Planning\n\n`cargo bench --bench plan`: {DRIVERS} drivers × N releases × {ARCHES} arches \
             ({RELEASES_PER_KERNEL} consecutive releases share a kernel), planned from an in-memory \
             resolution; each size runs in its own process ({} processes, each the median of 3 \
             plans), so the peak RSS is that size's own. Median (min–max).\n\n{}",
            common::runs(),
            table.render()
        ),
    );
    shards();
    common::series(
        "20-plan",
        &[common::Series {
            chart: "Planning time".into(),
            x_label: "cells".into(),
            y_label: "ms".into(),
            label: "driver-matrix plan".into(),
            points: curve,
        }],
    );
}

/// Section 5: how evenly `--shard I/N` spreads 9, 100 and 1,000 jobs, balanced against the
/// hash rule it replaced (a hash of the job key modulo N).
fn shards() {
    let dir = tempfile::tempdir().unwrap();
    let versions = write_matrix(dir.path(), 30);
    let m = matrix::load(&dir.path().join("matrix.toml"))
        .unwrap()
        .matrix;
    let releases = resolutions(&versions);
    let contexts = inputs::context_digests(&m).unwrap();
    let p = plan::plan(&PlanInput {
        matrix: &m,
        versions: &versions,
        releases: &releases,
        contexts: &contexts,
        lock: &Lock::default(),
    })
    .unwrap();
    let mut table = Table::new(&[
        "jobs",
        "shards",
        "balanced: smallest–largest",
        "hash modulo N: smallest–largest",
        "hash: idle shards",
    ]);
    for n in [9, 100, 1000] {
        let jobs = &p.jobs[..n];
        for count in [4u64, 16, 256] {
            let a = Assignment::new(jobs, count);
            let (mut balanced, mut hashed) = (vec![0; count as usize], vec![0; count as usize]);
            for j in jobs {
                balanced[a.shard(&j.driver, &j.kernel, j.arch) as usize] += 1;
                hashed[shard_of(&j.driver, &j.kernel, j.arch, count) as usize] += 1;
            }
            let spread =
                |v: &[usize]| format!("{}–{}", v.iter().min().unwrap(), v.iter().max().unwrap());
            let (lo, hi) = (
                balanced.iter().min().unwrap(),
                balanced.iter().max().unwrap(),
            );
            assert!(hi - lo <= 1, "{n} jobs over {count} shards: {lo}..{hi}");
            table.row(&[
                n.to_string(),
                count.to_string(),
                spread(&balanced),
                spread(&hashed),
                hashed.iter().filter(|c| **c == 0).count().to_string(),
            ]);
        }
    }
    common::section(
        "50-shards",
        &format!(
            "## 5. Scale-out balance\n\n`cargo bench --bench plan` (computed, not timed): jobs per \
             shard of `build --shard I/N` for the first 9, 100 and 1,000 jobs of a plan, all to \
             build. Balanced is the rule `build` uses (the jobs to build dealt in turn, in the order \
             of a hash of their key); the hash rule is what it replaced. Where jobs outnumber shards \
             the balanced spread is at most one job; where shards outnumber jobs, the extra shards \
             are empty under any rule (`export github-matrix` asks for one shard per job to build, \
             at most 256).\n\n{}",
            table.render()
        ),
    );
}

fn plan_targets(measured: &[(usize, Stat, Stat)]) {
    let mut targets = Vec::new();
    let find = |cells: usize| measured.iter().find(|m| m.0 == cells);
    for (cells, ms, mib) in [(30_000, 100.0, 64.0), (300_000, 250.0, 256.0)] {
        if let Some((_, time, peak)) = find(cells) {
            targets.push((
                format!("planning {cells} cells under {ms} ms and {mib} MiB"),
                format!("{:.1} ms, {:.1} MiB", time.median, peak.median),
                time.median < ms && peak.median < mib,
            ));
        }
    }
    if let (Some(small), Some(large)) = (find(3_000), find(300_000)) {
        let ratio = (large.1.median / 300_000.0) / (small.1.median / 3_000.0);
        targets.push((
            "planning linear: cost per cell at 300,000 within 1.5× of that at 3,000".into(),
            format!("{ratio:.2}×"),
            ratio <= 1.5,
        ));
    }
    let rows: Vec<common::Target<'_>> = targets
        .iter()
        .map(|(what, measured, met)| common::Target {
            what,
            measured: measured.clone(),
            met: *met,
            why_missed: "see section 2",
        })
        .collect();
    common::targets("20-plan", &rows);
}
