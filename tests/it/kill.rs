//! SIGKILL at seeded points of `resolve` and `build` (in a RUN step, during a push, between
//! jobs). After each kill the lock and the cache parse and the lock names only images the
//! registry has at their digests; the next run removes what the killed one left (the processes
//! of its RUN steps, its working containers, its temporary files) and completes the work, after
//! which the lock equals `collect` run from scratch. Real buildah, real docker-registry.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Out, World, buildah_env, in_dir, module};

const K1: &str = "5.14.0-284.52.1.el9_2.x86_64";
const K2: &str = "5.14.0-427.18.1.el9_4.x86_64";

/// The seed every kill point derives from: the same points on every run of the test.
const SEED: u64 = 0x6b69_6c6c;

/// A small deterministic generator (xorshift64*), so that the points need no crate.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A project: one driver whose build has a RUN step in a busybox stage (`marker` names its
/// processes), over releases on two kernels.
struct Kill {
    w: World,
    /// A busybox image of this test's own (so that its working containers are told apart).
    shell: String,
    /// `/test/dtk:<tag>` of `shell`, as `buildah containers` names its image.
    shell_tag: String,
    marker: String,
    /// How long the RUN step's inner process sleeps.
    run_secs: u32,
    revision: u32,
}

impl Kill {
    fn new(name: &str, run_secs: u32) -> Kill {
        let w = World::new(name);
        w.publish(&[
            (&["4.14.1", "4.14.2", "4.14.3", "4.14.4"], K1),
            (&["4.15.1", "4.15.2"], K2),
        ]);
        let shell_tag = format!("5.14.0-1.kill-{name}.el9.x86_64");
        let shell = crate::support::dtk(&shell_tag);
        Kill {
            marker: format!("km-{}", w.ns),
            w,
            shell,
            shell_tag: format!("/test/dtk:{shell_tag}"),
            run_secs,
            revision: 1,
        }
    }

    fn write_project(&self, dir: &Path) {
        let ctx = dir.join("kill-kmod");
        for k in [K1, K2] {
            let d = ctx.join("modules").join(k);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("hello.ko"), module("hello", k)).unwrap();
        }
        std::fs::write(
            ctx.join("VERSION"),
            format!("source revision {}\n", self.revision),
        )
        .unwrap();
        // The RUN step's shell starts a child shell named by the marker (its `$0`; two
        // commands, so that it does not exec `sleep`): a grandchild of buildah, the kind of
        // process that outlives a killed buildah.
        std::fs::write(
            ctx.join("Containerfile"),
            format!(
                "ARG DTK_IMAGE\nFROM {shell} AS work\nCOPY VERSION /VERSION\n\
                 RUN sh -c 'sleep {secs}; :' {marker}; cp /VERSION /built\n\
                 FROM ${{DTK_IMAGE}} AS dtk\n\nFROM scratch\nARG KERNEL_VERSION\n\
                 COPY --from=dtk /etc/driver-toolkit-release.json /etc/\n\
                 COPY --from=work /built /\n\
                 COPY modules/${{KERNEL_VERSION}}/hello.ko /opt/lib/modules/${{KERNEL_VERSION}}/hello.ko\n",
                shell = self.shell,
                secs = self.run_secs,
                marker = self.marker,
            ),
        )
        .unwrap();
        let text = format!(
            "[openshift]\npayload-repo = \"{addr}/{release}\"\n\
             releases = [\"4.14.1\", \"4.14.2\", \"4.14.3\", \"4.14.4\", \"4.15.1\", \"4.15.2\"]\n\n\
             [registries.\"{addr}\"]\ninsecure = true\n\n\
             [[driver]]\nname = \"kill-kmod\"\ncontext = \"kill-kmod\"\nimage = \"{addr}/{ns}/kill-kmod\"\n\
             tag = \"${{KERNEL_FULL_VERSION}}\"\nmodules = [\"hello\"]\n",
            addr = self.w.addr,
            release = self.w.repo("release"),
            ns = self.w.ns,
        );
        std::fs::write(dir.join("matrix.toml"), text).unwrap();
    }

    fn dir(&self) -> &Path {
        self.w.dir.path()
    }

    fn lock(&self) -> String {
        std::fs::read_to_string(self.dir().join("matrix.lock")).unwrap_or_default()
    }

    /// The project with a new source revision: every job has work to do again.
    fn bump(&mut self) {
        self.revision += 1;
        self.write_project(self.w.dir.path());
    }

    /// `collect` in a fresh directory holding only the matrix and the context (it exits 1
    /// while images are missing, as before the first build; the lock it writes is what counts).
    fn collect_from_scratch(&self) -> String {
        let fresh = tempfile::tempdir().unwrap();
        self.write_project(fresh.path());
        in_dir(fresh.path())
            .args(["collect"])
            .expect_exit_in(&[0, 1])
            .run();
        std::fs::read_to_string(fresh.path().join("matrix.lock")).unwrap_or_default()
    }

    /// Runs `args` to completion and checks that the lock equals `collect` from scratch and
    /// that nothing a killed run left survives.
    fn complete(&self, args: &[&str]) -> Out {
        let out = in_dir(self.dir()).args(args).run();
        assert_eq!(
            self.lock(),
            self.collect_from_scratch(),
            "after `{}` the lock differs from `collect` from scratch\n{}",
            args.join(" "),
            out.stderr
        );
        self.assert_nothing_left(&format!("after `{}`", args.join(" ")));
        out
    }

    /// No process of a killed run's RUN step, no temporary file of the tool.
    fn assert_nothing_left(&self, when: &str) {
        let procs = marked_processes(&self.marker);
        assert!(
            procs.is_empty(),
            "{when}: processes of a killed run's RUN step survive: {procs:?}"
        );
        let temps = temp_files(self.dir());
        assert!(temps.is_empty(), "{when}: temporary files left: {temps:?}");
    }

    /// The ids of buildah's working containers made from this test's busybox stage (its tag
    /// names the test).
    fn containers(&self) -> std::collections::BTreeSet<String> {
        self.containers_of(&self.shell_tag)
    }

    /// The ids of buildah's working containers whose image name holds `needle`.
    fn containers_of(&self, needle: &str) -> std::collections::BTreeSet<String> {
        let out = buildah_env(&mut Command::new("buildah"))
            .args(["containers", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "buildah containers: {out:?}");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        list.as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["imagename"].as_str().is_some_and(|n| n.contains(needle)))
            .filter_map(|c| c["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Removes working containers of this test's busybox stage that are not in `keep`, and
    /// those of its DTK stage (named by the test's own namespace).
    fn remove_containers(&self, keep: &std::collections::BTreeSet<String>) {
        let mut ids: Vec<String> = self.containers().difference(keep).cloned().collect();
        ids.extend(self.containers_of(&format!("/{}/", self.w.ns)));
        for id in &ids {
            let _ = buildah_env(&mut Command::new("buildah"))
                .args(["rm", id])
                .output();
        }
    }

    /// The lock (when there is one) and every file of the cache parse, and every image of the
    /// lock is in the registry at its digest.
    fn assert_consistent(&self, when: &str) {
        let path = self.dir().join("matrix.lock");
        if path.exists() {
            let lock = driver_matrix::lock::read(&path)
                .unwrap_or_else(|e| panic!("{when}: the lock does not parse: {e:?}"));
            for img in &lock.images {
                let pinned = img.pinned().to_string();
                assert!(
                    exists(&pinned),
                    "{when}: the lock names {pinned}, which the registry does not have"
                );
            }
        }
        for file in files(&self.dir().join("cache")) {
            if file.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&file).unwrap();
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
                    "{when}: cache file {} does not parse",
                    file.display()
                );
            }
        }
    }
}

/// `image@digest` is in the registry.
fn exists(pinned: &str) -> bool {
    Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{pinned}"))
        .output()
        .unwrap()
        .status
        .success()
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Temporary files of the tool under `dir` (the lock's and the cache's).
fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(".matrix.lock.") || name.starts_with(".tmp")
        })
        .collect()
}

/// Live processes whose command line holds `marker` (zombies have run their course).
fn marked_processes(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !zombie && cmdline.contains(marker) {
            out.push(format!("{pid}: {cmdline}"));
        }
    }
    out
}

/// When to kill: on the `nth` stderr line holding `needle` (or at once when there is none),
/// then after `delay`.
#[derive(Debug, Clone)]
struct Point {
    needle: Option<&'static str>,
    nth: usize,
    delay: Duration,
}

/// Runs the binary with `args` in `dir` and SIGKILLs it at `point`; returns the stderr lines
/// seen, or `None` when the run ended before the point was reached.
fn kill_at(k: &Kill, args: &[&str], point: &Point) -> Option<Vec<String>> {
    let mut child: Child =
        k.w.cmd()
            .args(args)
            .any_exit()
            .spawn(Stdio::null(), Stdio::piped())
            .child;
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let reached = loop {
        if point.needle.is_none() || count >= point.nth {
            break true;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if point.needle.is_some_and(|n| line.contains(n)) {
                    count += 1;
                }
                seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break false;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
        }
    };
    if reached {
        std::thread::sleep(point.delay);
    }
    let ended = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    seen.extend(rx.try_iter());
    (reached && !ended).then_some(seen)
}

/// What the run was doing when it was killed, from the progress lines it had printed.
fn phase(seen: &[String], command: &str) -> &'static str {
    let last = seen
        .iter()
        .rev()
        .find(|l| l.contains("STEP") || l.contains("pushing") || l.contains("] built"));
    match (command, last) {
        ("resolve", _) => "resolve",
        (_, Some(l)) if l.contains("pushing") => "build: push",
        (_, Some(l)) if l.contains(": RUN") => "build: RUN step",
        (_, Some(l)) if l.contains("] built") => "build: between jobs",
        _ => "build: FROM or COPY step",
    }
}

#[test]
fn kill_points_leave_a_consistent_lock_and_the_next_run_completes() {
    let started = Instant::now();
    let mut k = Kill::new("killpoints", 2);
    k.write_project(k.w.dir.path());
    let containers_before = k.containers();
    let mut rng = Seeded(SEED);
    let mut exercised: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut total = 0;

    // `resolve` from nothing (no lock, no cache), killed after a seeded delay or once the
    // n-th release was fetched; every second point continues the one before.
    for i in 0..10 {
        if i % 2 == 0 {
            let _ = std::fs::remove_file(k.dir().join("matrix.lock"));
            let _ = std::fs::remove_dir_all(k.dir().join("cache"));
        }
        let point = if i % 4 < 2 {
            Point {
                needle: None,
                nth: 0,
                delay: Duration::from_millis(rng.range(5, 120)),
            }
        } else {
            Point {
                needle: Some("resolved "),
                nth: rng.range(1, 4) as usize,
                delay: Duration::from_millis(rng.range(0, 10)),
            }
        };
        if let Some(seen) = kill_at(&k, &["resolve"], &point) {
            total += 1;
            let resolved = seen.iter().filter(|l| l.contains("resolved ")).count();
            println!("resolve point {i} ({point:?}): killed after {resolved} releases resolved");
            *exercised.entry("resolve").or_default() += 1;
        } else {
            println!("resolve point {i} ({point:?}): the run ended before it");
        }
        k.assert_consistent(&format!("resolve point {i} ({point:?})"));
        if i % 2 == 1 {
            k.complete(&["resolve"]);
        }
    }

    // `build`, each point on a new source revision (so that both jobs have work), killed in a
    // RUN step, during a push, or once a job was recorded; every third point, the next run
    // completes the work.
    // (-j1 when killing after a job: the other one is then still to come.)
    let triggers: [(&str, u64, u64, &str); 3] = [
        (": RUN", 300, 1500, "-j2"),
        ("pushing", 0, 300, "-j2"),
        ("] built", 0, 100, "-j1"),
    ];
    for i in 0..18 {
        k.bump();
        let (needle, lo, hi, jobs) = triggers[i % triggers.len()];
        let nth = rng.range(1, 3) as usize;
        let point = Point {
            needle: Some(needle),
            // With -j1 only the first job's end comes before more work.
            nth: if jobs == "-j1" { 1 } else { nth },
            delay: Duration::from_millis(rng.range(lo, hi)),
        };
        let when = format!("build point {i} ({point:?}, {jobs})");
        if let Some(seen) = kill_at(&k, &["build", jobs], &point) {
            total += 1;
            let phase = phase(&seen, "build");
            println!("{when}: killed in {phase}");
            *exercised.entry(phase).or_default() += 1;
        } else {
            println!("{when}: the run ended before it");
        }
        k.assert_consistent(&when);
        if i % 3 == 2 {
            k.complete(&["build", "-j2"]);
            k.assert_consistent(&format!("after {when}, the run completing it"));
        }
    }
    k.complete(&["build", "-j2"]);
    // buildah removes its working container on the SIGTERM it gets when the run dies if that
    // comes in a RUN step, but not in a FROM or COPY step (it then exits at once): counted
    // here, and removed so that the machine's storage does not grow with each test run.
    let left = k.containers().difference(&containers_before).count();
    k.remove_containers(&containers_before);
    println!(
        "{total} kill points exercised in {:.0}s: {exercised:?}; {left} working containers left by buildah",
        started.elapsed().as_secs_f64()
    );
    assert!(
        total >= 20,
        "only {total} kill points were reached: {exercised:?}"
    );
    for phase in ["resolve", "build: RUN step", "build: push"] {
        assert!(
            exercised.get(phase).is_some_and(|n| *n > 0),
            "no kill point in phase `{phase}`: {exercised:?}"
        );
    }
}

#[test]
fn kill_in_a_run_step_leaves_nothing_after_the_next_run() {
    let k = Kill::new("killrun", 120);
    k.write_project(k.w.dir.path());
    in_dir(k.dir()).args(["resolve"]).run();
    let before = k.containers();
    // Killed once the RUN step's inner process is running.
    let point = Point {
        needle: Some(": RUN"),
        nth: 1,
        delay: Duration::from_millis(1500),
    };
    let seen = kill_at(&k, &["build", "-j1"], &point).expect("the build reached its RUN step");
    assert_eq!(phase(&seen, "build"), "build: RUN step");
    k.assert_consistent("after the kill");
    // The kill leaves the RUN step's child running (buildah's grandchild: no signal reaches it).
    let until = Instant::now() + Duration::from_secs(5);
    while marked_processes(&k.marker).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !marked_processes(&k.marker).is_empty(),
        "the RUN step's process was expected to outlive the killed run"
    );
    // The next writer removes it and says so.
    let out = in_dir(k.dir()).args(["resolve"]).run();
    k.assert_nothing_left("after the next run");
    let left: Vec<String> = k.containers().difference(&before).cloned().collect();
    k.remove_containers(&before);
    assert!(
        left.is_empty(),
        "the killed build's working container survives: {left:?}"
    );
    let err = out.stderr.clone();
    assert!(
        err.contains("process group") && err.contains("left by a killed run (pid"),
        "{err}"
    );
    // A run with nothing to remove says nothing of it.
    let out = in_dir(k.dir()).args(["resolve"]).run();
    assert!(!out.stderr.contains("killed run"), "{}", out.stderr);
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn forged_run_records_make_resolve_kill_nothing() {
    use std::os::unix::process::CommandExt;
    let p = crate::support::Project::new("forgedruns", &[crate::support::Driver::ok("a")]);
    let runs = p.path().join("cache/runs");
    std::fs::create_dir_all(&runs).unwrap();
    let dead = || {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        format!("{pid}-1")
    };
    // A group whose leader is gone and whose member lives on.
    let mut leader = Command::new("sh")
        .args(["-c", "sleep 300 >/dev/null & echo $!"])
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = leader.id();
    let mut out = String::new();
    std::io::Read::read_to_string(leader.stdout.as_mut().unwrap(), &mut out).unwrap();
    leader.wait().unwrap();
    let member: u32 = out.trim().parse().unwrap();
    // A live leader, whose start time anyone can read.
    let mut live = Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    std::fs::write(runs.join(dead()), format!("group {group} 0\n")).unwrap();
    std::fs::write(
        runs.join(dead()),
        format!(
            "boot {}\ngroup {} {}\n",
            boot.trim(),
            live.id(),
            start_time(live.id())
        ),
    )
    .unwrap();
    let started = Instant::now();
    let run = p.cmd().args(["resolve"]).run();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no grace is waited out for a forged record"
    );
    assert!(!run.stderr.contains("killed run"), "{}", run.stderr);
    assert!(running(member), "the member of a forged group survives");
    assert!(running(live.id()), "the live leader survives");
    // SAFETY: the test's own process groups.
    unsafe {
        libc::kill(-(group as i32), libc::SIGKILL);
    }
    live.kill().unwrap();
    live.wait().unwrap();
}
