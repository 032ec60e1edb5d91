//! Running one buildah process: its output merged into the job's log, `STEP` lines picked out,
//! the process group registered so that Ctrl-C can stop it, and the run's marker in its
//! environment so that the next run can prove what this one started.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::command::Invocation;

/// How many lines of a failed job's log are shown.
pub const TAIL_LINES: usize = 20;

/// The run's stop switch: set by Ctrl-C, it stops every running buildah and starts nothing new.
#[derive(Debug, Default)]
pub struct Cancel {
    interrupted: AtomicBool,
    /// Process group ids of the running buildah processes.
    running: Mutex<BTreeSet<i32>>,
    /// Where the groups are also written down, for the next run to find if this one is killed.
    record: Option<crate::runs::Record>,
}

impl Cancel {
    pub fn new() -> Arc<Self> {
        Arc::new(Cancel::default())
    }

    /// A stop switch that also keeps `record` of the process groups it starts (see
    /// [`crate::runs`]).
    pub fn with_record(record: Option<crate::runs::Record>) -> Arc<Self> {
        Arc::new(Cancel {
            record,
            ..Cancel::default()
        })
    }

    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Sends SIGTERM to every running buildah (SIGKILL on a second call, or when one is still
    /// there after a grace period), and marks the run interrupted.
    pub fn interrupt(self: &Arc<Self>) {
        let again = self.interrupted.swap(true, Ordering::SeqCst);
        self.signal(if again { libc::SIGKILL } else { libc::SIGTERM });
        if !again {
            let me = Arc::clone(self);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(10));
                me.signal(libc::SIGKILL);
            });
        }
    }

    fn signal(&self, sig: i32) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for &pgid in running.iter() {
            // SAFETY: kill(2) with a negative pid signals a process group this run created; it
            // touches no memory of ours.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }

    fn register(&self, pgid: i32) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pgid);
        if let Some(r) = &self.record {
            r.started(pgid);
        }
        // An interrupt that came between the spawn and this point found nothing to stop.
        if self.is_interrupted() {
            // SAFETY: as in `signal`.
            unsafe {
                libc::kill(-pgid, libc::SIGTERM);
            }
        }
    }

    fn unregister(&self, pgid: i32) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pgid);
        if let Some(r) = &self.record {
            r.ended(pgid);
        }
    }
}

/// What one process left behind.
pub struct Ran {
    pub status: ExitStatus,
    /// The last [`TAIL_LINES`] lines it printed.
    pub tail: VecDeque<String>,
}

/// A pipe whose ends are closed on exec, so that a buildah started by another worker never
/// inherits this job's write end (which would keep the read below from ever ending).
/// (`std::io::pipe` does the same but needs Rust 1.87; the crate's MSRV is 1.85.)
fn pipe() -> std::io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors, or fails and leaves them alone.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// `STEP n/m: text` as buildah prints it; in a multi-stage build, after the stage
/// (`[2/3] STEP n/m: text`), whose steps are counted on their own.
pub fn parse_step(line: &str) -> Option<(u32, u32, &str)> {
    let line = match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
        Some((stage, rest)) if stage.bytes().all(|b| b.is_ascii_digit() || b == b'/') => rest,
        _ => line,
    };
    let rest = line.strip_prefix("STEP ")?;
    let (frac, text) = rest.split_once(':')?;
    let (n, m) = frac.split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?, text.trim()))
}

/// Runs `inv` to completion with stdout and stderr merged into `log`, calling `on_line` for
/// each line. The process gets its own process group (so a terminal's Ctrl-C reaches only us,
/// and we stop it cleanly) and gets SIGTERM when this process dies, as on Ctrl-C: buildah then
/// removes its working container. What its `RUN` steps started may outlive it; the next run
/// kills that group (see [`crate::runs`]).
pub fn run_logged(
    inv: &Invocation,
    log: &mut impl Write,
    cancel: &Cancel,
    on_line: &mut dyn FnMut(&str),
) -> std::io::Result<Ran> {
    let (reader, writer) = pipe()?;
    let mut cmd = inv.command();
    // The run's marker, which proves to the next run that what carries it is this run's (see
    // `crate::runs`); not part of the invocation, which is what users read.
    if let Some(record) = &cancel.record {
        cmd.envs(record.env());
    }
    cmd.stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to stop buildah when the
    // thread that started it dies. SIGTERM rather than SIGKILL: buildah then removes its
    // working container, where SIGKILL would leave it in the machine's storage.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    // Our copies of the pipe's write end must be gone, or the read below never ends.
    drop(cmd);
    let pgid = i32::try_from(child.id()).expect("process ids fit in pid_t");
    cancel.register(pgid);
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let read = loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        let _ = log.write_all(&buf);
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        on_line(line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    };
    let status = child.wait();
    cancel.unregister(pgid);
    read?;
    Ok(Ran {
        status: status?,
        tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildah_steps() {
        assert_eq!(
            parse_step("STEP 2/3: RUN make -C /src"),
            Some((2, 3, "RUN make -C /src"))
        );
        assert_eq!(parse_step("STEP 1/1: FROM a:b"), Some((1, 1, "FROM a:b")));
        assert_eq!(
            parse_step("[1/2] STEP 2/3: RUN make"),
            Some((2, 3, "RUN make"))
        );
        assert_eq!(parse_step("[2/2] COMMIT x"), None);
        assert_eq!(parse_step("[x] STEP 1/1: FROM a"), None);
        assert_eq!(parse_step("Getting image source signatures"), None);
        assert_eq!(parse_step("STEP x/3: RUN"), None);
    }

    #[test]
    fn merges_output_and_keeps_the_tail() {
        let inv = Invocation {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                "for i in $(seq 1 30); do echo out $i; done; echo STEP 1/2: RUN x >&2; exit 3"
                    .into(),
            ],
            env: vec![],
        };
        let mut log = Vec::new();
        let mut steps = Vec::new();
        let ran = run_logged(&inv, &mut log, &Cancel::default(), &mut |l| {
            if let Some(s) = parse_step(l) {
                steps.push((s.0, s.1));
            }
        })
        .unwrap();
        assert_eq!(ran.status.code(), Some(3));
        assert_eq!(ran.tail.len(), TAIL_LINES);
        assert_eq!(ran.tail.back().unwrap(), "STEP 1/2: RUN x");
        assert_eq!(steps, [(1, 2)]);
        assert!(String::from_utf8(log).unwrap().starts_with("out 1\n"));
    }

    #[test]
    fn buildah_carries_the_runs_marker() {
        let dir = tempfile::tempdir().unwrap();
        let record = crate::runs::Record::create(dir.path()).unwrap();
        let env = record.env();
        let cancel = Cancel::with_record(Some(record));
        let inv = Invocation {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                "echo \"DRIVER_MATRIX_RUN=$DRIVER_MATRIX_RUN\"; echo \"no_proxy=$no_proxy\"".into(),
            ],
            env: vec![],
        };
        let mut log = Vec::new();
        run_logged(&inv, &mut log, &cancel, &mut |_| {}).unwrap();
        let log = String::from_utf8(log).unwrap();
        for (k, v) in env {
            assert!(log.contains(&format!("{k}={v}\n")), "{log}");
        }
    }

    #[test]
    fn interrupt_stops_a_running_process() {
        let cancel = Cancel::new();
        let c = Arc::clone(&cancel);
        let t = std::thread::spawn(move || {
            let inv = Invocation {
                program: "sleep".into(),
                args: vec!["30".into()],
                env: vec![],
            };
            run_logged(&inv, &mut std::io::sink(), &c, &mut |_| {}).unwrap()
        });
        std::thread::sleep(Duration::from_millis(200));
        cancel.interrupt();
        let ran = t.join().unwrap();
        assert!(!ran.status.success());
    }
}
