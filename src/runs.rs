//! What a killed run leaves behind, and the next run removing it.
//!
//! A run that ends normally (or on Ctrl-C) stops its buildah processes and removes its temporary
//! files. A run killed with SIGKILL cannot: buildah gets SIGTERM from the kernel
//! (`PR_SET_PDEATHSIG`) and removes its own working container on the way out, but the processes
//! a `RUN` step started are buildah's grandchildren and keep running, and a temporary file
//! being written stays where it is.
//!
//! So every run has an identity, [`RunId`]: its process id and the time the process started
//! (field 22 of `/proc/self/stat`), so that a recycled process id is never taken for the run
//! that had it. A `build` keeps a record of the buildah process groups it starts in
//! `<cache>/runs/<pid>-<start>`, and the temporary files the tool writes carry the identity in
//! their names (`.matrix.lock.<pid>-<start>.XXXXXX`). At start, [`sweep`] looks for those of
//! runs that are gone: it kills what is left of their process groups, removes their temporary
//! files and then their record. Nothing of a live run is ever touched.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a buildah of a dead run still running (it got SIGTERM when its run died) gets to
/// remove its working container before its process group is killed.
const GRACE: Duration = Duration::from_secs(10);

/// A run: a process id and the start time of that process (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunId {
    pub pid: i32,
    pub start: u64,
}

/// What `/proc/PID/stat` says of a process: whether it is a zombie, and when it started.
struct Stat {
    zombie: bool,
    pgrp: i32,
    start: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses, so fields are
    // counted from the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    Some(Stat {
        zombie: matches!(*fields.first()?, "Z" | "X"),
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

impl RunId {
    /// This process.
    pub fn current() -> RunId {
        static ME: OnceLock<RunId> = OnceLock::new();
        *ME.get_or_init(|| {
            let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
            RunId {
                pid,
                start: stat(pid).map_or(0, |s| s.start),
            }
        })
    }

    /// Whether the process that made this run is still there (a zombie is not).
    pub fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| !s.zombie && s.start == self.start)
    }

    /// `<pid>-<start>`, as it appears in file names.
    pub fn tag(&self) -> String {
        format!("{}-{}", self.pid, self.start)
    }

    pub fn parse(tag: &str) -> Option<RunId> {
        let (pid, start) = tag.split_once('-')?;
        Some(RunId {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }
}

/// The prefix of a temporary file this run writes: `base` then the run's tag and a dot
/// (`.matrix.lock.4242-123456.`), so that a later run can tell whose it is.
pub fn temp_prefix(base: &str) -> String {
    format!("{base}{}.", RunId::current().tag())
}

/// The base prefixes of the temporary files the tool writes, and where: the lockfile's
/// directory (`.<lockfile name>.`), anywhere in the cache (`.tmp.`).
pub const CACHE_TEMP: &str = ".tmp.";

/// `.matrix.lock.` for `matrix.lock`.
pub fn lock_temp_base(lock_path: &Path) -> String {
    format!(
        ".{}.",
        lock_path.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// This run's record of the buildah process groups it started, `<cache>/runs/<pid>-<start>`;
/// removed when dropped (a killed run leaves it for the next run to read).
#[derive(Debug)]
pub struct Record {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Record {
    /// Creates the record; `None` when it cannot be written (the run then only loses the
    /// ability to be cleaned up after, which is no reason to fail it).
    pub fn create(cache: &Path) -> Option<Record> {
        let dir = cache.join("runs");
        std::fs::create_dir_all(&dir).ok()?;
        let path = dir.join(RunId::current().tag());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ok()?;
        let record = Record {
            path,
            file: Mutex::new(file),
        };
        if let Some(boot) = boot_id() {
            record.line(&format!("boot {boot}\n"));
        }
        Some(record)
    }

    fn line(&self, line: &str) {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // One write per line: with O_APPEND the line lands whole.
        let _ = f.write_all(line.as_bytes());
    }

    /// A buildah started as the leader of process group `pgid`.
    pub fn started(&self, pgid: i32) {
        let start = stat(pgid).map_or(0, |s| s.start);
        self.line(&format!("group {pgid} {start}\n"));
    }

    /// That buildah has exited and been waited for: its group is nothing to clean up.
    pub fn ended(&self, pgid: i32) {
        self.line(&format!("end {pgid}\n"));
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This machine's boot, `/proc/sys/kernel/random/boot_id`: process ids and start times mean
/// something only within one boot of one machine, and a cache directory can come from another
/// (a CI cache restored on a fresh runner).
fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_string())
}

/// What one dead run left that [`sweep`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Left {
    /// Process groups in which a process was still running.
    pub groups: usize,
    pub files: usize,
}

/// What [`sweep`] removed, per dead run (by process id).
#[derive(Debug, Clone, Default)]
pub struct Swept {
    pub runs: BTreeMap<i32, Left>,
}

impl Swept {
    /// One line per run that left something:
    /// `removed 1 process group and 2 temporary files left by a killed run (pid 4242)`.
    pub fn messages(&self) -> Vec<String> {
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        self.runs
            .iter()
            .filter(|(_, l)| l.groups + l.files > 0)
            .map(|(pid, l)| {
                let mut parts = Vec::new();
                if l.groups > 0 {
                    parts.push(count(l.groups, "process group"));
                }
                if l.files > 0 {
                    parts.push(count(l.files, "temporary file"));
                }
                format!(
                    "removed {} left by a killed run (pid {pid})",
                    parts.join(" and ")
                )
            })
            .collect()
    }
}

/// Removes what runs that are gone left: the process groups their records name, then their
/// temporary files beside `lock_path` and in `cache`, then their records. Best effort: what
/// cannot be removed is left for the next run.
pub fn sweep(cache: Option<&Path>, lock_path: &Path) -> Swept {
    let mut swept = Swept::default();
    if let Some(cache) = cache {
        sweep_records(&cache.join("runs"), &mut swept);
        sweep_temp_tree(cache, CACHE_TEMP, 3, &mut swept);
    }
    let dir = match lock_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sweep_temp_tree(dir, &lock_temp_base(lock_path), 0, &mut swept);
    swept
}

fn sweep_records(dir: &Path, swept: &mut Swept) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(run) = entry.file_name().to_str().and_then(RunId::parse) else {
            continue;
        };
        if run.is_alive() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut groups: BTreeMap<i32, u64> = BTreeMap::new();
        let mut other_boot = false;
        let boot = boot_id();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["boot", id] => other_boot = boot.as_deref().is_some_and(|b| b != id),
                ["group", pgid, start] => {
                    if let (Ok(p), Ok(s)) = (pgid.parse(), start.parse()) {
                        groups.insert(p, s);
                    }
                }
                ["end", pgid] => {
                    if let Ok(p) = pgid.parse() {
                        groups.remove(&p);
                    }
                }
                _ => {}
            }
        }
        if other_boot {
            // Written by another machine or before a reboot: its processes are not here.
            groups.clear();
        }
        let killed = groups
            .into_iter()
            .filter(|&(pgid, start)| kill_group(pgid, start))
            .count();
        swept.runs.entry(run.pid).or_default().groups += killed;
        let _ = std::fs::remove_file(entry.path());
    }
}

/// The processes of group `pgid` that are still running (zombies are done).
fn members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.pgrp == pgid && !s.zombie))
        .collect()
}

/// Stops what is left of a dead run's buildah process group `pgid`, whose leader started at
/// `start`; whether anything was still running.
///
/// A process id stays reserved while a process group of that id has members, so a group
/// without its leader is the one buildah made. When a process of that id exists with another
/// start time, the id was recycled and the group is someone else's: it is left alone.
fn kill_group(pgid: i32, start: u64) -> bool {
    if pgid <= 1 {
        return false;
    }
    match stat(pgid) {
        Some(s) if s.start != start => return false,
        Some(s) if !s.zombie => {
            // buildah itself is still there, removing its working container after the SIGTERM
            // it got when its run died: a second signal would cut that short, so it gets time.
            let until = Instant::now() + GRACE;
            while Instant::now() < until && stat(pgid).is_some_and(|s| !s.zombie) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        _ => {}
    }
    if members(pgid).is_empty() {
        return false;
    }
    // SAFETY: as above, a negative pid signals the process group checked to be the dead run's.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    true
}

/// Removes the temporary files named `<base><pid>-<start>.*` of runs that are gone, in `dir`
/// and down to `depth` levels of directories below it.
fn sweep_temp_tree(dir: &Path, base: &str, depth: usize, swept: &mut Swept) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth > 0 {
                sweep_temp_tree(&entry.path(), base, depth - 1, swept);
            }
            continue;
        }
        let name = entry.file_name();
        let Some(run) = name
            .to_str()
            .and_then(|n| n.strip_prefix(base))
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(tag, _)| RunId::parse(tag))
        else {
            continue;
        };
        if kind.is_file() && !run.is_alive() && std::fs::remove_file(entry.path()).is_ok() {
            swept.runs.entry(run.pid).or_default().files += 1;
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_dead_runs_process_group_is_killed_and_a_live_ones_is_not() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        // A group whose leader exits at once, leaving a child behind: what a killed buildah
        // leaves of a RUN step.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 300 >/dev/null & echo $!"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        let start = stat(pgid).unwrap().start;
        let mut out = String::new();
        std::io::Read::read_to_string(leader.stdout.as_mut().unwrap(), &mut out).unwrap();
        leader.wait().unwrap();
        let orphan: i32 = out.trim().parse().unwrap();
        assert!(stat(orphan).is_some_and(|s| !s.zombie && s.pgrp == pgid));
        let gone = dead();
        std::fs::write(
            runs.join(gone.tag()),
            format!("group {pgid} {start}\ngroup 999999 1\nend 999999\n"),
        )
        .unwrap();
        // This (live) run's record names the same group: a live run's is never touched.
        std::fs::write(
            runs.join(RunId::current().tag()),
            format!("group {pgid} {start}\n"),
        )
        .unwrap();
        let swept = sweep(Some(dir.path()), &dir.path().join("matrix.lock"));
        assert_eq!(swept.runs[&gone.pid].groups, 1);
        let until = Instant::now() + Duration::from_secs(5);
        while stat(orphan).is_some_and(|s| !s.zombie) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(stat(orphan).is_none_or(|s| s.zombie), "the orphan is gone");
        assert!(!runs.join(gone.tag()).exists());
        assert!(runs.join(RunId::current().tag()).exists());
    }

    #[test]
    fn a_record_from_another_boot_kills_nothing() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 300 >/dev/null & echo $!"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        let start = stat(pgid).unwrap().start;
        let mut out = String::new();
        std::io::Read::read_to_string(leader.stdout.as_mut().unwrap(), &mut out).unwrap();
        leader.wait().unwrap();
        let orphan: i32 = out.trim().parse().unwrap();
        let gone = dead();
        // The same group, as a record restored from another machine's cache would name it.
        std::fs::write(
            runs.join(gone.tag()),
            format!("boot 00000000-0000-0000-0000-000000000000\ngroup {pgid} {start}\n"),
        )
        .unwrap();
        let swept = sweep(Some(dir.path()), &dir.path().join("matrix.lock"));
        assert!(swept.messages().is_empty(), "{:?}", swept.messages());
        assert!(stat(orphan).is_some_and(|s| !s.zombie), "left alone");
        assert!(!runs.join(gone.tag()).exists(), "the record is dropped");
        // SAFETY: the test's own process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}
