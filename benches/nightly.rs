//! Nightly figures (not a timed test; `cargo bench --bench nightly`, or `make bench`), on
//! releases in the real payload format pushed to docker-registry on loopback:
//!
//! - the nightly no-op (`build` when every job is fresh) at 100, 1,000 and 10,000 jobs,
//!   `--offline` and online (each release's tag and each image's digest checked);
//! - a realistic nightly: 10 drivers × 3 minors × 50 z-streams (150 releases, 21 kernels) × 2
//!   arches: resolution from an empty cache, planning, and the no-op `build` of the night after.
//!
//! The night's build is not part of these figures (the build bench measures builds): each job's
//! lock entry points at a small image pushed once per driver, which is what a no-op checks.

// A benchmark prints its figures and may unwrap.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "common/mod.rs"]
mod common;
#[allow(
    dead_code,
    unused_imports,
    reason = "the tests' harness, of which a bench uses a part"
)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::Instant;

use common::{Stat, Table};
use driver_matrix::lock::{self, LockedImage};
use driver_matrix_sandbox::oci::{self, Compression, Layer};
use driver_matrix_sandbox::{DtkSpec, Flavor, PayloadSpec};
use support::{Cmd, World};

const ARCHES: [(&str, &str); 2] = [("x86_64", "amd64"), ("aarch64", "arm64")];

/// Releases grouped by kernel: `(kernel without its arch, versions)`.
type Kernels = Vec<(String, Vec<String>)>;

/// Pushes, per kernel and arch, a DTK stand-in and a payload per version naming it.
fn publish(w: &World, kernels: &Kernels, filler: usize) {
    for (kernel, versions) in kernels {
        for (arch, goarch) in ARCHES {
            let mut dtk = DtkSpec::new(&format!("{kernel}.{arch}"));
            dtk.base = 64 << 10;
            let (dtk_ref, _) = w.dtk(&dtk, goarch, Flavor::Docker);
            for v in versions {
                let mut spec = PayloadSpec::new(v, Some(dtk_ref.clone()));
                spec.filler = filler;
                w.payload(&spec, arch, goarch, Flavor::Docker);
            }
        }
    }
}

/// Writes the matrix: every release of `kernels`, both arches, `drivers` drivers.
fn matrix(w: &World, kernels: &Kernels, drivers: usize) {
    let versions: Vec<String> = kernels
        .iter()
        .flat_map(|(_, vs)| vs.iter().map(|v| format!("\"{v}\"")))
        .collect();
    let mut extra = String::new();
    for d in 0..drivers {
        let ctx = w.path(&format!("drivers/d{d:02}"));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Containerfile"),
            "ARG DTK_IMAGE\nFROM ${DTK_IMAGE}\nCOPY . /src\n",
        )
        .unwrap();
        std::fs::write(ctx.join("driver.c"), format!("int driver_{d};\n")).unwrap();
        extra.push_str(&format!(
            "\n[[driver]]\nname = \"driver-{d:02}\"\ncontext = \"drivers/d{d:02}\"\nimage = \"{}/{}\"\n",
            w.addr,
            w.repo(&format!("driver-{d:02}"))
        ));
    }
    w.matrix(
        &format!(
            "releases = [{}]\narch = [\"x86_64\", \"aarch64\"]",
            versions.join(", ")
        ),
        &extra,
    );
}

/// The lock a night's build would leave: every planned job locked to a small image pushed once
/// per driver (a no-op checks the digest, not the content).
fn lock_every_job(w: &World) -> usize {
    let plan = w
        .cmd()
        .args(["-q", "--offline", "plan", "--format", "json"])
        .run()
        .json();
    let mut digests = std::collections::HashMap::new();
    let mut l = lock::read(&w.path("matrix.lock")).unwrap();
    for job in plan["jobs"].as_array().unwrap() {
        let driver = job["driver"].as_str().unwrap().to_string();
        let digest = digests
            .entry(driver.clone())
            .or_insert_with(|| {
                let layer = Layer::new(
                    &oci::tar(&[("hello.ko", driver.as_bytes())]),
                    Compression::Gzip,
                );
                let pushed = w
                    .pusher
                    .image(
                        &w.repo(&driver),
                        None,
                        &[layer],
                        &[],
                        "amd64",
                        Flavor::Docker,
                    )
                    .unwrap();
                pushed.digest
            })
            .clone();
        let text = |k: &str| job[k].as_str().unwrap().to_string();
        l.images.push(LockedImage {
            driver,
            kernel: text("kernel").parse().unwrap(),
            arch: text("arch").parse().unwrap(),
            dtk: text("dtk").parse().unwrap(),
            inputs: text("inputs").parse().unwrap(),
            image: text("image").parse().unwrap(),
            digest: digest.parse().unwrap(),
            releases: job["releases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().parse().unwrap())
                .collect(),
        });
    }
    l.images.sort_by(|a, b| a.key().cmp(&b.key()));
    lock::write_if_changed(&w.path("matrix.lock"), &l).unwrap();
    l.images.len()
}

/// How long a run of the binary took (see [`Cmd::run`]: it must succeed), and its stdout.
fn timed(cmd: Cmd) -> (f64, String) {
    let start = Instant::now();
    let out = cmd.run();
    (common::ms(start.elapsed()), out.stdout)
}

/// `runs` no-op builds: each must build nothing and leave the lock byte-identical.
fn noops(w: &World, args: &[&str], jobs: usize) -> Stat {
    let before = w.lock();
    let times = (0..common::runs())
        .map(|_| {
            let (ms, out) = timed(w.cmd().args(args));
            assert!(out.contains(&format!("0 built, {jobs} fresh")), "{out}");
            assert_eq!(w.lock(), before, "a no-op changed the lock");
            ms
        })
        .collect();
    Stat::of(times)
}

fn noop_series() {
    let mut table = Table::new(&[
        "jobs",
        "drivers × kernels × arches",
        "no-op `--offline`",
        "no-op online",
        "target",
    ]);
    let mut curves = vec![Vec::new(), Vec::new()];
    for (drivers, kernels) in common::sizes(&[(5usize, 10usize), (10, 50), (50, 100)]) {
        let w = World::new(&format!("noop{drivers}x{kernels}"));
        let ks: Kernels = (0..kernels)
            .map(|k| {
                (
                    format!("5.14.0-{}.1.el9_4", 500 + k),
                    vec![format!("4.16.{k}")],
                )
            })
            .collect();
        publish(&w, &ks, 64 << 10);
        matrix(&w, &ks, drivers);
        w.cmd().args(["-q", "resolve"]).run();
        let jobs = lock_every_job(&w);
        assert_eq!(jobs, drivers * kernels * 2);
        let offline = noops(&w, &["--offline", "build"], jobs);
        let online = noops(&w, &["build"], jobs);
        let target = if jobs == 1000 { "online under 1 s" } else { "" };
        table.row(&[
            jobs.to_string(),
            format!("{drivers} × {kernels} × 2"),
            offline.show(0, "ms"),
            online.show(0, "ms"),
            target.into(),
        ]);
        if jobs == 1000 {
            common::targets(
                "40-noop",
                &[common::Target {
                    what: "no-op over 1,000 jobs under 1 s, online",
                    measured: format!("{:.0} ms", online.median),
                    met: online.median < 1000.0,
                    why_missed: "see section 4",
                }],
            );
        }
        curves[0].push((jobs as f64, offline.median));
        curves[1].push((jobs as f64, online.median));
    }
    common::series(
        "40-noop",
        &["no-op --offline", "no-op online"]
            .iter()
            .zip(curves)
            .map(|(label, points)| common::Series {
                chart: "Nightly no-op".into(),
                x_label: "jobs".into(),
                y_label: "ms".into(),
                label: label.to_string(),
                points,
            })
            .collect::<Vec<_>>(),
    );
    common::section(
        "40-noop",
        &format!(
            "## 4. The nightly no-op\n\n`cargo bench --bench nightly`: `driver-matrix build` \
             when every job is fresh, the release binary, whole-process wall time, median \
             (min–max) of {} runs; one release per kernel, both arches. `--offline` reads the \
             matrix, the lock and the cache only; online it also checks each release's tag (one \
             HEAD each) and each locked image's digest (one HEAD each, 16 at once). Each run must \
             build nothing and leave the lock byte-identical.\n\n{}",
            common::runs(),
            table.render()
        ),
    );
}

fn realistic() {
    // 3 minors × 50 z-streams; 8 consecutive z-streams share a kernel: 21 kernels.
    let mut ks: Kernels = Vec::new();
    let zs = if common::smoke() { 8 } else { 50 };
    for (m, minor) in [14, 15, 16].into_iter().enumerate() {
        for z in 0..zs {
            if z % 8 == 0 {
                ks.push((
                    format!("5.14.0-{}.{}.1.el9_4", 300 + m * 100, z / 8),
                    Vec::new(),
                ));
            }
            ks.last_mut().unwrap().1.push(format!("4.{minor}.{z}"));
        }
    }
    let drivers = 10;
    let w = World::new("nightly");
    let t = Instant::now();
    publish(&w, &ks, if common::smoke() { 64 << 10 } else { 3 << 20 });
    let published = t.elapsed().as_secs_f64();
    matrix(&w, &ks, drivers);
    let releases: usize = ks.iter().map(|(_, v)| v.len()).sum();
    let runs = common::runs();
    let fresh = || {
        let _ = std::fs::remove_dir_all(w.path("cache"));
        let _ = std::fs::remove_file(w.path("matrix.lock"));
    };
    let resolve = Stat::of(
        (0..runs)
            .map(|_| {
                fresh();
                timed(w.cmd().args(["-q", "resolve"])).0
            })
            .collect(),
    );
    let plan = Stat::of(
        (0..runs)
            .map(|_| timed(w.cmd().args(["-q", "plan"])).0)
            .collect(),
    );
    let jobs = lock_every_job(&w);
    let online = noops(&w, &["build"], jobs);
    let offline = noops(&w, &["--offline", "build"], jobs);
    let locked = Stat::of(
        (0..runs)
            .map(|_| timed(w.cmd().args(["build", "--locked"])).0)
            .collect(),
    );
    common::targets(
        "60-nightly",
        &[common::Target {
            what: "the realistic nightly's no-op under 5 s (online)",
            measured: format!("{:.0} ms", online.median),
            met: online.median < 5000.0,
            why_missed: "see section 6",
        }],
    );
    let mut table = Table::new(&["step", "time", "target"]);
    table.row(&[
        format!("`resolve` from an empty cache ({} payloads)", releases * 2),
        resolve.show(0, "ms"),
        String::new(),
    ]);
    table.row(&[
        "`plan` (cache warm, online)".into(),
        plan.show(0, "ms"),
        String::new(),
    ]);
    table.row(&[
        format!("the night after: `build`, online, {jobs} jobs fresh"),
        online.show(0, "ms"),
        "under 5 s".into(),
    ]);
    table.row(&[
        "the same, `build --locked` (what CI runs to prove nothing changed)".into(),
        locked.show(0, "ms"),
        String::new(),
    ]);
    table.row(&[
        "the same, `--offline`".into(),
        offline.show(0, "ms"),
        String::new(),
    ]);
    common::section(
        "60-nightly",
        &format!(
            "## 6. A realistic nightly\n\n`cargo bench --bench nightly`: {drivers} drivers × 3 \
             minors × 50 z-streams ({releases} releases; 8 consecutive z-streams share a kernel: \
             {} kernels) × 2 arches, in the payload format of real releases (each payload's \
             manifests layer 3 MiB) on docker-registry on loopback, the release binary, median \
             (min–max) of {runs} runs. Publishing the fixtures took {published:.0} s and is not \
             counted.\n\n{}",
            ks.len(),
            table.render()
        ),
    );
}

fn main() {
    noop_series();
    realistic();
}
