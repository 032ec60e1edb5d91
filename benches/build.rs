//! Build figures (not a timed test; run with `cargo bench --bench build`):
//!
//! 1. overhead of `driver-matrix build -j1` over a plain shell loop running the same buildah
//!    command lines one after the other (target: within 5%);
//! 2. speed-up of `-j2` over `-j1` on this machine;
//! 3. a no-op `build` over 100 fresh jobs, with the registry check and with `--offline`
//!    (target: under 2 s).
//!
//! Real buildah, a real registry on loopback, the release binary.

// A benchmark prints its figures and may unwrap.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use driver_matrix::build::ImageStore;
use support::{Driver, Project};

const REPS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timed(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("the command runs");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// The buildah command lines `--dry-run --force` prints, as one `sh` script.
fn shell_loop(p: &Project) -> Command {
    let out = p
        .command(&["build", "--dry-run", "--force"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut script = String::from("set -e\n");
    for line in text.lines().filter_map(|l| l.strip_prefix("  ")) {
        // The digest files go where the tool would put them; their directory must exist.
        if let Some(rest) = line.split(" --digestfile ").nth(1) {
            let file = rest.split(' ').next().unwrap();
            script.push_str(&format!("mkdir -p \"$(dirname {file})\"\n"));
        }
        script.push_str(line);
        script.push_str(" >/dev/null 2>&1\n");
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).current_dir(p.path());
    support::buildah_env(&mut cmd);
    cmd
}

fn overhead_and_speedup() {
    let drivers = [Driver::ok("alpha"), Driver::ok("beta"), Driver::ok("gamma")];
    let p = Project::new("bench-build", &drivers);
    // Warm up: the DTKs are pulled into local storage once.
    timed(p.command(&["build", "-j2"]));
    let jobs = 6;
    let (mut tool, mut shell, mut j2) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPS {
        tool.push(timed(p.command(&["build", "-j1", "--force"])));
        shell.push(timed(shell_loop(&p)));
        j2.push(timed(p.command(&["build", "-j2", "--force"])));
    }
    let (tool, shell, j2) = (median(tool), median(shell), median(j2));
    let overhead = (tool.as_secs_f64() / shell.as_secs_f64() - 1.0) * 100.0;
    println!("{jobs} jobs, median of {REPS}:");
    println!(
        "  shell loop of the same buildah commands: {:.2} s",
        shell.as_secs_f64()
    );
    println!(
        "  driver-matrix build -j1 --force:          {:.2} s  (overhead {overhead:+.1}%, target within 5%)",
        tool.as_secs_f64()
    );
    println!(
        "  driver-matrix build -j2 --force:          {:.2} s  (speed-up {:.2}x over -j1)",
        j2.as_secs_f64(),
        tool.as_secs_f64() / j2.as_secs_f64()
    );
}

fn noop_over_100_fresh_jobs() {
    let kernels: Vec<(String, String)> = (0..50)
        .map(|i| {
            (
                format!("4.16.{i}"),
                format!("5.14.0-{}.el9.x86_64", 100 + i),
            )
        })
        .collect();
    let releases: Vec<(&str, &str)> = kernels
        .iter()
        .map(|(v, k)| (v.as_str(), k.as_str()))
        .collect();
    let p = Project::with_releases(
        "bench-noop",
        &[Driver::ok("alpha"), Driver::ok("beta")],
        &releases,
    );
    // Build one real image per driver, then lock all 100 jobs to that digest: every job is
    // fresh and every digest exists, which is what a no-op run checks.
    let first = &kernels[0].1;
    timed(p.command(&["build", "--kernel", first]));
    let lock = driver_matrix::lock::read(&p.lock_path()).unwrap();
    let plan = p.command(&["plan", "--format", "json"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let mut full = lock.clone();
    for job in plan["jobs"].as_array().unwrap() {
        let built = lock
            .images
            .iter()
            .find(|i| i.driver == job["driver"].as_str().unwrap())
            .unwrap();
        let mut img = built.clone();
        img.kernel = job["kernel"].as_str().unwrap().parse().unwrap();
        img.inputs = job["inputs"].as_str().unwrap().parse().unwrap();
        img.image = job["image"].as_str().unwrap().parse().unwrap();
        img.dtk = job["dtk"].as_str().unwrap().parse().unwrap();
        img.releases = vec![job["releases"][0].as_str().unwrap().parse().unwrap()];
        full.upsert_image(img);
    }
    driver_matrix::lock::write_if_changed(&p.lock_path(), &full).unwrap();
    assert_eq!(full.images.len(), 100);
    p.reset_calls();
    let out = p.command(&["build"]).output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("0 built, 100 fresh"), "{summary}");
    let offline = median((0..REPS).map(|_| timed(p.command(&["build"]))).collect());
    assert!(p.calls().is_empty(), "a no-op run called buildah");
    // Online, `build` checks each fresh job's digest in the registry. Planning online needs
    // release resolution, which fails on this sandbox's fake payloads, so the check phase is
    // timed through the library: the same stores and the same parallel map `build` uses.
    let registries: std::collections::BTreeMap<String, driver_matrix::matrix::RegistrySettings> =
        [(
            support::registry().addr().to_string(),
            driver_matrix::matrix::RegistrySettings {
                mirror: None,
                insecure: true,
            },
        )]
        .into();
    let time_checks = |store: &dyn ImageStore| {
        median(
            (0..REPS)
                .map(|_| {
                    let start = Instant::now();
                    let found = driver_matrix::parallel::map(&full.images, 16, |i| {
                        store.has_digest(&i.image, &i.digest).unwrap()
                    });
                    assert!(found.iter().all(|f| *f));
                    start.elapsed()
                })
                .collect(),
        )
    };
    let native = time_checks(
        &driver_matrix::registry::Client::new(driver_matrix::registry::ClientOptions {
            registries,
            max_in_flight: 16,
            ..Default::default()
        })
        .unwrap(),
    );
    let skopeo = time_checks(&driver_matrix::build::Skopeo {
        insecure: [support::registry().addr().to_string()].into(),
        ..Default::default()
    });
    println!("no-op build over 100 fresh jobs, median of {REPS}:");
    println!(
        "  driver-matrix --offline build:                      {:.2} s",
        offline.as_secs_f64()
    );
    println!(
        "  + 100 registry checks, native client (HEAD):        {:.2} s  => online no-op {:.2} s (target under 2 s)",
        native.as_secs_f64(),
        (offline + native).as_secs_f64()
    );
    println!(
        "  (the same 100 checks through skopeo, 16 at once:    {:.2} s)",
        skopeo.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    overhead_and_speedup();
    noop_over_100_fresh_jobs();
}
