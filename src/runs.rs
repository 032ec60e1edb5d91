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
//! that had it. A `build` keeps a record in `<cache>/runs/<pid>-<start>` (mode 0600 in a
//! directory of mode 0700): the machine's boot, a random token, and the buildah process groups
//! it starts; every buildah carries the run's marker in its environment (see [`proof`]). The
//! temporary files the tool writes carry the identity in their names
//! (`.matrix.lock.<pid>-<start>.XXXXXX`). At start, [`sweep`] looks for those of runs that are
//! gone: it kills the processes that carry a dead run's marker, removes its temporary files and
//! then its record. Nothing of a live run is ever touched.
//!
//! A record is data, never a command: the cache may come from anywhere. A record signals
//! nothing unless it is a regular file of this user, names this boot and holds a token, and
//! even then only processes whose own environment carries that run's marker are signalled.
//! Whatever else is in `runs/` is ignored (and removed only when it is a regular file of this
//! user); a FIFO or a link there is never opened.

mod proof;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    /// What every buildah of this run carries in its environment (see [`proof`]).
    marker: String,
}

impl Record {
    /// Creates the record; `None` when it cannot be written (the run then only loses the
    /// ability to be cleaned up after, which is no reason to fail it).
    pub fn create(cache: &Path) -> Option<Record> {
        let dir = cache.join("runs");
        std::fs::create_dir_all(cache).ok()?;
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        if !proof::is_own_dir(&dir) {
            return None;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
        let boot = boot_id()?;
        let token = proof::new_token()?;
        let path = dir.join(RunId::current().tag());
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ok()?;
        let record = Record {
            path,
            file: Mutex::new(file),
            marker: proof::marker(RunId::current(), &token),
        };
        record.line(&format!("boot {boot}\ntoken {token}\n"));
        Some(record)
    }

    /// The environment every buildah of this run gets, so that the next run can prove what it
    /// started if this one is killed.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![(proof::VAR, self.marker.clone())];
        if let Some(no_proxy) = proof::no_proxy_with(&self.marker) {
            env.push((proof::NO_PROXY, no_proxy));
        }
        env
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
    // A `runs` that is a link, or not this user's, is not where this tool keeps records.
    if !proof::is_own_dir(dir) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let boot = boot_id();
    for entry in entries.flatten() {
        let Some(run) = entry.file_name().to_str().and_then(RunId::parse) else {
            continue;
        };
        if run.is_alive() {
            continue;
        }
        let text = match proof::open_record(&entry.path()) {
            proof::Opened::Ours(text) => text,
            proof::Opened::Garbage => String::new(),
            proof::Opened::NotOurs => continue,
        };
        if let Some(left) = LeftRunning::of(&text, boot.as_deref()) {
            let groups = left.kill(run);
            swept.runs.entry(run.pid).or_default().groups += groups;
        }
        let _ = std::fs::remove_file(entry.path());
    }
}

/// What a dead run's record says it may have left running.
struct LeftRunning {
    /// Its token, which its processes carry in their marker.
    token: String,
    /// Its buildah process groups that had not ended, by leader.
    groups: BTreeSet<i32>,
}

impl LeftRunning {
    /// What a record proves: nothing unless it names this boot and holds a token.
    fn of(text: &str, boot: Option<&str>) -> Option<LeftRunning> {
        let (mut this_boot, mut token) = (false, None);
        let mut groups = BTreeSet::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["boot", id] => this_boot = boot == Some(id),
                ["token", t] if proof::is_token(t) => token = Some(t),
                ["group", pgid, _] => {
                    if let Ok(p) = pgid.parse() {
                        groups.insert(p);
                    }
                }
                ["end", pgid] => {
                    if let Ok(p) = pgid.parse::<i32>() {
                        groups.remove(&p);
                    }
                }
                _ => {}
            }
        }
        // A record from another machine or before a reboot: its processes are not here.
        if !this_boot || groups.is_empty() {
            return None;
        }
        Some(LeftRunning {
            token: token?.to_string(),
            groups,
        })
    }

    /// Stops what is left of the dead run `run`: the processes that carry its marker. A buildah
    /// of it still running (it got SIGTERM when its run died, and is removing its working
    /// container) gets time to finish first. Returns the number of process groups in which
    /// something was killed.
    fn kill(self, run: RunId) -> usize {
        let marker = proof::marker(run, &self.token);
        let leaders = |ps: &[proof::Process]| ps.iter().any(|p| self.groups.contains(&p.pid));
        let until = Instant::now() + GRACE;
        let mut marked = carrying(&marker);
        while leaders(&marked) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
            marked = carrying(&marker);
        }
        let mut groups = BTreeSet::new();
        for p in &marked {
            let pgrp = stat(p.pid).map(|s| s.pgrp);
            if p.signal(libc::SIGKILL) {
                groups.insert(pgrp.unwrap_or(p.pid));
            }
        }
        groups.len()
    }
}

/// The running processes (zombies are done) that carry `marker`, this one never among them.
fn carrying(marker: &str) -> Vec<proof::Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = RunId::current().pid;
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid > 1 && pid != me)
        .filter_map(proof::Process::open)
        .filter(|p| stat(p.pid).is_some_and(|s| !s.zombie) && p.carries(marker))
        .collect()
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
mod tests;
