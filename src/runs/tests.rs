//! The sweep against real processes: what a genuine record removes, what forged ones cannot.

use super::*;

/// A process that has exited and been waited for.
fn dead() -> RunId {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    RunId { pid, start: 1 }
}

#[test]
fn this_run_is_alive_and_a_recycled_pid_is_not_it() {
    let me = RunId::current();
    assert!(me.is_alive());
    assert!(me.start > 0);
    assert_eq!(RunId::parse(&me.tag()), Some(me));
    let other = RunId {
        start: me.start + 1,
        ..me
    };
    assert!(!other.is_alive(), "same pid, other start time: another run");
    assert!(!dead().is_alive());
}

#[test]
fn a_dead_runs_temporary_files_go_and_a_live_runs_stay() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("matrix.lock");
    let gone = dead();
    let left = dir.path().join(format!(".matrix.lock.{}.abc", gone.tag()));
    std::fs::write(&left, "x").unwrap();
    let live = dir
        .path()
        .join(format!("{}xyz", temp_prefix(&lock_temp_base(&lock))));
    std::fs::write(&live, "x").unwrap();
    // Not of this tool's naming: never touched.
    let foreign = dir.path().join(".matrix.lock.abcdef");
    std::fs::write(&foreign, "x").unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(cache.join("v1/dtk")).unwrap();
    let cached = cache.join(format!("v1/dtk/.tmp.{}.q", gone.tag()));
    std::fs::write(&cached, "{").unwrap();
    let swept = sweep(Some(&cache), &lock);
    assert!(!left.exists() && !cached.exists());
    assert!(live.exists() && foreign.exists());
    assert_eq!(swept.runs[&gone.pid].files, 2);
    assert_eq!(
        swept.messages(),
        [format!(
            "removed 2 temporary files left by a killed run (pid {})",
            gone.pid
        )]
    );
    assert!(sweep(Some(&cache), &lock).messages().is_empty());
}

/// A process group whose leader exits at once, leaving a `sleep` behind with `env` added
/// to its environment: what a killed buildah leaves of a RUN step. Returns the group and
/// the process left.
fn orphaned(env: &[(&str, &str)]) -> (i32, i32) {
    use std::os::unix::process::CommandExt;
    let mut leader = std::process::Command::new("sh")
        .args(["-c", "sleep 300 >/dev/null & echo $!"])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = leader.id() as i32;
    let mut out = String::new();
    std::io::Read::read_to_string(leader.stdout.as_mut().unwrap(), &mut out).unwrap();
    leader.wait().unwrap();
    let orphan: i32 = out.trim().parse().unwrap();
    assert!(running(orphan) && stat(orphan).unwrap().pgrp == pgid);
    (pgid, orphan)
}

fn running(pid: i32) -> bool {
    stat(pid).is_some_and(|s| !s.zombie)
}

/// Whether `pid` is gone within a few seconds.
fn ends(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while running(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    !running(pid)
}

fn stop(pgid: i32) {
    // SAFETY: the test's own process group.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The sweep of `cache`, failing rather than hanging.
fn sweep_within(cache: &Path, secs: u64) -> Swept {
    let (tx, rx) = std::sync::mpsc::channel();
    let cache = cache.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(sweep(Some(&cache), &cache.join("matrix.lock")));
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the sweep returns in time")
}

#[test]
fn only_the_processes_that_carry_a_dead_runs_marker_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let gone = dead();
    let token = proof::new_token().unwrap();
    let marker = proof::marker(gone, &token);
    // A RUN step's process carries the marker in `no_proxy`, as buildah passes it on.
    let no_proxy = format!("example.com,{marker}");
    let (marked, orphan) = orphaned(&[("no_proxy", &no_proxy)]);
    // In a group the record names, but without the marker (its environment was replaced).
    let (plain, bystander) = orphaned(&[]);
    // Another run's marker.
    let other = proof::marker(dead(), &token);
    let (foreign, stranger) = orphaned(&[(proof::VAR, &other)]);
    std::fs::write(
        runs.join(gone.tag()),
        format!(
            "boot {}\ntoken {token}\ngroup {marked} 1\ngroup {plain} 1\n\
             group {foreign} 1\ngroup 999999 1\nend 999999\n",
            boot_id().unwrap()
        ),
    )
    .unwrap();
    // This (live) run's record naming the same group is never touched.
    std::fs::write(
        runs.join(RunId::current().tag()),
        format!("group {marked} 1\n"),
    )
    .unwrap();
    let swept = sweep_within(dir.path(), 30);
    assert_eq!(swept.runs[&gone.pid].groups, 1);
    assert!(ends(orphan), "the marked process is gone");
    assert!(running(bystander), "a process without the marker is left");
    assert!(running(stranger), "another run's marker is not this one's");
    assert!(!runs.join(gone.tag()).exists());
    assert!(runs.join(RunId::current().tag()).exists());
    stop(plain);
    stop(foreign);
}

#[test]
fn forged_records_kill_nothing_and_hang_nothing() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let boot = boot_id().unwrap();
    let mut victims = Vec::new();
    let mut groups = Vec::new();
    let mut forge = |text: &dyn Fn(RunId, i32) -> String, marked: bool| {
        let gone = dead();
        let token = proof::new_token().unwrap();
        let m = proof::marker(gone, &token);
        let env: Vec<(&str, &str)> = if marked {
            vec![(proof::VAR, &m)]
        } else {
            vec![]
        };
        let (pgid, orphan) = orphaned(&env);
        let text = text(gone, pgid).replace("TOKEN", &token);
        std::fs::write(runs.join(gone.tag()), text).unwrap();
        victims.push(orphan);
        groups.push(pgid);
        gone
    };
    // No boot line (even with a token, and processes that carry its marker).
    forge(&|_, g| format!("token TOKEN\ngroup {g} 0\n"), true);
    // Another boot.
    forge(
        &|_, g| format!("boot 00000000-0000-0000-0000-000000000000\ntoken TOKEN\ngroup {g} 0\n"),
        true,
    );
    // This boot, no token: a leader gone, members left.
    forge(&|_, g| format!("boot {boot}\ngroup {g} 0\n"), false);
    // This boot and a token, but the members do not carry the marker.
    forge(
        &|_, g| format!("boot {boot}\ntoken TOKEN\ngroup {g} 0\n"),
        false,
    );
    // Another user's file, however genuine it looks.
    let theirs = forge(
        &|_, g| format!("boot {boot}\ntoken TOKEN\ngroup {g} 0\n"),
        true,
    );
    let theirs = runs.join(theirs.tag());
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    // A live leader whose start time the record copies (anyone can read it in /proc).
    let mut leader = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let lpid = leader.id() as i32;
    let gone = dead();
    std::fs::write(
        runs.join(gone.tag()),
        format!(
            "boot {boot}\ntoken {}\ngroup {lpid} {}\n",
            proof::new_token().unwrap(),
            stat(lpid).unwrap().start
        ),
    )
    .unwrap();
    // A FIFO where a record would be.
    let fifo = runs.join(dead().tag());
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path it is given.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let started = Instant::now();
    let swept = sweep_within(dir.path(), 8);
    assert!(
        started.elapsed() < GRACE,
        "no grace is waited out for a process no record proves"
    );
    assert!(swept.messages().is_empty(), "{:?}", swept.messages());
    for v in &victims {
        assert!(running(*v), "process {v} was left alone");
    }
    assert!(running(lpid), "the live leader was left alone");
    assert!(theirs.exists(), "another user's file is not removed");
    assert!(fifo.exists(), "a FIFO is not removed");
    leader.kill().unwrap();
    leader.wait().unwrap();
    for g in groups {
        stop(g);
    }
}

#[test]
fn records_behind_a_link_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cache.join("runs")).unwrap();
    let gone = dead();
    let token = proof::new_token().unwrap();
    let (pgid, orphan) = orphaned(&[(proof::VAR, &proof::marker(gone, &token))]);
    std::fs::write(
        elsewhere.join(gone.tag()),
        format!(
            "boot {}\ntoken {token}\ngroup {pgid} 1\n",
            boot_id().unwrap()
        ),
    )
    .unwrap();
    let swept = sweep_within(&cache, 30);
    assert!(swept.messages().is_empty());
    assert!(running(orphan));
    assert!(elsewhere.join(gone.tag()).exists());
    stop(pgid);
}

#[test]
fn a_record_is_private_and_its_marker_is_what_buildah_carries() {
    let dir = tempfile::tempdir().unwrap();
    let record = Record::create(dir.path()).unwrap();
    let runs = dir.path().join("runs");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&runs), 0o700);
    let path = runs.join(RunId::current().tag());
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let token = text.lines().find_map(|l| l.strip_prefix("token ")).unwrap();
    assert!(text.starts_with(&format!("boot {}\n", boot_id().unwrap())));
    let env = record.env();
    let marker = proof::marker(RunId::current(), token);
    assert_eq!(env[0], (proof::VAR, marker.clone()));
    assert!(
        env[1].0 == "no_proxy" && env[1].1.ends_with(&marker),
        "{env:?}"
    );
    // A second record of the same run is not made over the first.
    assert!(Record::create(dir.path()).is_none());
    drop(record);
    assert!(!path.exists());
}
