//! Build figures (not a timed test; `cargo bench --bench build`, or `make bench`): a matrix of
//! two drivers over six releases that share three kernels, built with real buildah and pushed
//! to docker-registry on loopback, by
//!
//! - `driver-matrix build --force` at `-j1` and `-j2` (one build per kernel: 6 builds);
//! - a shell loop with one buildah build per release, as scripts do (12 builds);
//! - a shell loop with one build per distinct kernel, the best a script can do (6 builds), one
//!   at a time and two at a time (`xargs -P2`).
//!
//! The loops run the very command lines `build --dry-run --force` prints, so the difference is
//! the tool's own cost. Overheads are ratios of runs taken back to back.

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

use std::process::Command;
use std::time::Instant;

use common::{Stat, Table};
use support::{Cmd, Driver, Project};

/// How long a run of the binary took (see [`Cmd::run`]: it must succeed).
fn timed_dm(cmd: Cmd) -> f64 {
    let start = Instant::now();
    cmd.run();
    common::ms(start.elapsed())
}

fn timed(mut cmd: Command) -> f64 {
    let start = Instant::now();
    let out = cmd.output().expect("the command runs");
    let took = common::ms(start.elapsed());
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Each job's buildah command lines, as `build --dry-run --force` prints them, with the kernel
/// the job is for.
fn job_scripts(p: &Project) -> Vec<(String, String)> {
    let text = p.cmd().args(["build", "--dry-run", "--force"]).stdout();
    let mut jobs: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("would build ") {
            let kernel = rest.split_whitespace().nth(1).unwrap().to_string();
            jobs.push((kernel, String::from("set -e\n")));
        } else if let Some(cmd) = line.strip_prefix("  ") {
            let script = &mut jobs.last_mut().unwrap().1;
            // The digest files go where the tool would put them; their directory must exist.
            if let Some(rest) = cmd.split(" --digestfile ").nth(1) {
                let file = rest.split(' ').next().unwrap();
                script.push_str(&format!("mkdir -p \"$(dirname {file})\"\n"));
            }
            script.push_str(cmd);
            script.push_str(" >/dev/null 2>&1\n");
        }
    }
    jobs
}

/// A loop running `scripts`, `parallel` at a time.
fn shell_loop(p: &Project, name: &str, scripts: &[String], parallel: usize) -> Command {
    let dir = p.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in scripts.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:03}.sh")), s).unwrap();
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ls {}/*.sh | xargs -P{parallel} -n1 sh",
            dir.display()
        ))
        .current_dir(p.path());
    support::buildah_env(&mut cmd);
    cmd
}

fn main() {
    let kernels = [
        "5.14.0-284.52.1.el9_2.x86_64",
        "5.14.0-427.18.1.el9_4.x86_64",
        "5.14.0-503.11.1.el9_5.x86_64",
    ];
    let releases: Vec<(String, &str)> = (0..6)
        .map(|i| (format!("4.16.{i}"), kernels[i / 2]))
        .collect();
    let releases: Vec<(&str, &str)> = releases.iter().map(|(v, k)| (v.as_str(), *k)).collect();
    let p = Project::with_releases(
        "bench-build",
        &[Driver::ok("alpha"), Driver::ok("beta")],
        &releases,
    );
    // Warm up: the DTKs are pulled into local storage once.
    timed_dm(p.cmd().args(["build", "-j2"]));
    let jobs = job_scripts(&p);
    let per_kernel: Vec<String> = jobs.iter().map(|(_, s)| s.clone()).collect();
    let per_release: Vec<String> = jobs
        .iter()
        .flat_map(|(k, s)| {
            let n = releases.iter().filter(|(_, rk)| rk == k).count();
            std::iter::repeat_n(s.clone(), n)
        })
        .collect();
    let runs = common::runs();
    let mut t: [Vec<f64>; 5] = Default::default();
    for _ in 0..runs {
        t[0].push(timed_dm(p.cmd().args(["build", "-j1", "--force"])));
        t[1].push(timed(shell_loop(&p, "per-kernel", &per_kernel, 1)));
        t[2].push(timed_dm(p.cmd().args(["build", "-j2", "--force"])));
        t[3].push(timed(shell_loop(&p, "per-kernel", &per_kernel, 2)));
        t[4].push(timed(shell_loop(&p, "per-release", &per_release, 1)));
    }
    let j1_overhead = common::ratios(&t[0], &t[1]).scale(100.0);
    let j2_overhead = common::ratios(&t[2], &t[3]).scale(100.0);
    let vs_release = common::ratios(&t[4], &t[0]);
    let mut table = Table::new(&[
        "how",
        "builds",
        "wall time",
        "against the best loop at equal parallelism",
    ]);
    let s = |v: &Vec<f64>| Stat::of(v.clone()).scale(0.001).show(2, "s");
    let pct = |r: Stat| {
        format!(
            "{:+.1} % ({:+.1} to {:+.1})",
            r.median - 100.0,
            r.min - 100.0,
            r.max - 100.0
        )
    };
    table.row(&[
        "shell loop, one build per release, 1 at a time".into(),
        per_release.len().to_string(),
        s(&t[4]),
        format!("{} of `driver-matrix -j1`", vs_release.show(2, "×")),
    ]);
    table.row(&[
        "shell loop, one build per kernel, 1 at a time".into(),
        per_kernel.len().to_string(),
        s(&t[1]),
        "baseline for -j1".into(),
    ]);
    table.row(&[
        "`driver-matrix build -j1`".into(),
        jobs.len().to_string(),
        s(&t[0]),
        pct(j1_overhead),
    ]);
    table.row(&[
        "shell loop, one build per kernel, 2 at a time".into(),
        per_kernel.len().to_string(),
        s(&t[3]),
        "baseline for -j2".into(),
    ]);
    table.row(&[
        "`driver-matrix build -j2`".into(),
        jobs.len().to_string(),
        s(&t[2]),
        pct(j2_overhead),
    ]);
    let why = "before the lock records a job, its pushed image is read back from the registry \
               to check its modules' kernel (its manifest, and every layer this run has not \
               read yet: the first image of each DTK reads the DTK's layers), and the lock is \
               rewritten; the loop does neither";
    common::targets(
        "30-build",
        &[
            common::Target {
                what: "`build -j1` within 5 % of the best shell loop, one at a time",
                measured: format!("{:+.1} %", j1_overhead.median - 100.0),
                met: j1_overhead.median <= 105.0,
                why_missed: why,
            },
            common::Target {
                what: "`build -j2` within 5 % of the best shell loop, two at a time",
                measured: format!("{:+.1} %", j2_overhead.median - 100.0),
                met: j2_overhead.median <= 105.0,
                why_missed: why,
            },
        ],
    );
    common::section(
        "30-build",
        &format!(
            "## 3. Builds\n\n`cargo bench --bench build`: two drivers over six releases that share \
             three kernels (two releases per kernel), real buildah (`vfs`, `chroot` isolation) \
             pushing to docker-registry on loopback, median (min–max) of {runs} rounds; each \
             round runs the five ways back to back, and the overheads are the ratios within a \
             round. The loops run the very buildah and push command lines `build --dry-run \
             --force` prints, so the difference is the tool's own cost: planning, the lock, and \
             reading each pushed image back to check its modules' kernel (each layer once per \
             run). Target: within 5 % of \
             the best loop at equal parallelism.\n\n{}",
            table.render()
        ),
    );
}
