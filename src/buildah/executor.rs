//! The parallel executor: a pool of `-j N` workers takes tasks in plan order, runs each task's
//! buildah commands with their output in the task's log, and reports events. Jobs are
//! independent: a failure stops only its own job, or, with `--fail-fast`, the starting of
//! new ones. Outcomes come back in task order whatever order the jobs finished in.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::command::Invocation;
use super::process::{self, Cancel};
use crate::domain::Digest;
use crate::parallel::Next;
use crate::plan::Job;
use crate::progress::{Event, Failure, Outcome, Reporter};

/// One job to build: its commands and where its output goes.
#[derive(Debug, Clone)]
pub struct Task {
    pub job: Job,
    pub build: Invocation,
    /// The push, with the file its digest lands in; none under `--no-push`.
    pub push: Option<(Invocation, PathBuf)>,
    pub log: PathBuf,
}

/// Called after a successful push, before the job counts as finished (confirms the image and
/// records it in the lock); an error fails the job.
pub type OnPushed<'a> = dyn Fn(&Task, &Digest) -> Result<(), PushedError> + Sync + 'a;

/// Why a pushed image does not count: the job fails with this error and its causes.
pub type PushedError = Box<dyn std::error::Error + Send + Sync>;

pub struct Executor {
    /// Number of jobs run at once (at least 1).
    pub jobs: usize,
    pub fail_fast: bool,
    pub cancel: Arc<Cancel>,
}

impl Executor {
    /// Runs every task; returns one outcome per task, in task order.
    pub fn build_all(
        &self,
        tasks: &[Task],
        reporter: &dyn Reporter,
        on_pushed: &OnPushed<'_>,
    ) -> Vec<Outcome> {
        reporter.event(&Event::Begin { total: tasks.len() });
        // Each worker takes the next task in plan order, so `-j1` builds in plan order and
        // `--fail-fast` stops exactly the tasks not yet taken.
        crate::parallel::run(tasks, self.jobs, |index, task| {
            if self.cancel.is_interrupted() {
                return (Outcome::NotStarted, Next::Stop);
            }
            let outcome = self.build_task(index, task, reporter, on_pushed);
            let next = if matches!(outcome, Outcome::Failed(_)) && self.fail_fast {
                Next::Stop
            } else {
                Next::Continue
            };
            (outcome, next)
        })
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::NotStarted))
        .collect()
    }

    /// Builds (and pushes) one task, reporting it as started, then finished or failed.
    fn build_task(
        &self,
        index: usize,
        task: &Task,
        reporter: &dyn Reporter,
        on_pushed: &OnPushed<'_>,
    ) -> Outcome {
        let running = Running {
            index,
            task,
            start: Instant::now(),
            reporter,
        };
        let mut log = match open_log(task) {
            Ok(f) => f,
            Err(e) => {
                let message = format!("cannot create log file `{}`: {e}", task.log.display());
                return running.failed(message, None, Vec::new());
            }
        };
        reporter.event(&Event::Started {
            index,
            job: &task.job,
            log: &task.log,
        });
        match self.commands(index, task, &mut log, reporter) {
            Ok(()) => {}
            Err(Stop::Interrupted) => {
                return Outcome::Interrupted {
                    log: task.log.clone(),
                };
            }
            Err(Stop::Failed(message, inv, tail)) => {
                return running.failed(message, Some(inv), tail);
            }
        }
        match pushed(task, &mut log, on_pushed) {
            Ok(digest) => running.finished(digest, &mut log),
            Err((message, command)) => running.failed(message, command, Vec::new()),
        }
    }

    /// Runs the task's build, then its push, with their output in `log` and buildah's
    /// `STEP n/m` lines reported as they come.
    fn commands<'t>(
        &self,
        index: usize,
        task: &'t Task,
        log: &mut BufWriter<File>,
        reporter: &dyn Reporter,
    ) -> Result<(), Stop<'t>> {
        let job = &task.job;
        let mut steps = |line: &str| {
            if let Some((step, steps, text)) = process::parse_step(line) {
                reporter.event(&Event::Step {
                    index,
                    job,
                    step,
                    steps,
                    text,
                });
            }
        };
        let mut commands = vec![&task.build];
        if let Some((push, _)) = &task.push {
            commands.push(push);
        }
        let last = commands.len() - 1;
        for (i, inv) in commands.into_iter().enumerate() {
            if i == 1 {
                reporter.event(&Event::Pushing { index, job });
            }
            let _ = writeln!(log, "$ {inv}");
            let ran = process::run_logged(inv, log, &self.cancel, &mut steps);
            let _ = log.flush();
            let ran =
                ran.map_err(|e| Stop::Failed(format!("cannot run buildah: {e}"), inv, Vec::new()))?;
            // A push that completed is kept (and recorded) even after Ctrl-C; anything else
            // stops here, and no push starts after an interrupt.
            let pushed = i == last && ran.status.success();
            if self.cancel.is_interrupted() && !pushed {
                let _ = writeln!(log, "# interrupted");
                return Err(Stop::Interrupted);
            }
            if !ran.status.success() {
                let _ = writeln!(log, "# {}", describe(ran.status));
                return Err(Stop::Failed(describe(ran.status), inv, ran.tail.into()));
            }
        }
        Ok(())
    }
}

/// A task under way: what its events and its outcome name.
struct Running<'t> {
    index: usize,
    task: &'t Task,
    start: Instant,
    reporter: &'t dyn Reporter,
}

impl Running<'_> {
    /// The task failed: reported, and its outcome.
    fn failed(&self, message: String, command: Option<&Invocation>, tail: Vec<String>) -> Outcome {
        let failure = Failure {
            message,
            command: command.map(Invocation::display),
            log: self.task.log.clone(),
            tail,
            elapsed: self.start.elapsed(),
        };
        self.reporter.event(&Event::Failed {
            index: self.index,
            job: &self.task.job,
            failure: &failure,
        });
        Outcome::Failed(failure)
    }

    /// The task built (and pushed, unless `digest` is none): said in its log, reported, and
    /// its outcome.
    fn finished(&self, digest: Option<Digest>, log: &mut BufWriter<File>) -> Outcome {
        let elapsed = self.start.elapsed();
        let _ = writeln!(log, "# done in {:.1}s", elapsed.as_secs_f64());
        self.reporter.event(&Event::Finished {
            index: self.index,
            job: &self.task.job,
            digest: digest.as_ref(),
            elapsed,
        });
        Outcome::Built {
            digest,
            elapsed,
            log: self.task.log.clone(),
        }
    }
}

/// Why a task's commands stopped before the end.
enum Stop<'t> {
    Interrupted,
    /// What failed, the command, the last lines of its output.
    Failed(String, &'t Invocation, Vec<String>),
}

/// The digest a completed push wrote, once `on_pushed` accepted it (none under `--no-push`);
/// else what failed, and the command when one did.
fn pushed<'t>(
    task: &'t Task,
    log: &mut impl Write,
    on_pushed: &OnPushed<'_>,
) -> Result<Option<Digest>, (String, Option<&'t Invocation>)> {
    let Some((push, file)) = &task.push else {
        return Ok(None);
    };
    let digest = read_digest(file).map_err(|message| (message, Some(push)))?;
    if let Err(e) = on_pushed(task, &digest) {
        let message = crate::text::one_line(e.as_ref());
        let _ = writeln!(log, "# {message}");
        return Err((message, None));
    }
    Ok(Some(digest))
}

/// Opens a new job log, readable by this user alone: mode 0600 in a directory of mode 0700 (a
/// log holds what buildah printed, which no one else on the machine is owed). A link or
/// anything else already at the log's path is an error, never followed.
fn open_log(task: &Task) -> std::io::Result<BufWriter<File>> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = task.log.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let meta = std::fs::symlink_metadata(dir)?;
        // SAFETY: geteuid cannot fail and touches no memory.
        let me = unsafe { libc::geteuid() };
        if !meta.is_dir() || meta.uid() != me {
            return Err(std::io::Error::other(format!(
                "`{}` is not a directory of this user",
                dir.display()
            )));
        }
        // An existing directory (made by an older version) is made private too.
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&task.log)?;
    Ok(BufWriter::new(file))
}

fn read_digest(file: &std::path::Path) -> Result<Digest, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("buildah push wrote no digest to `{}`: {e}", file.display()))?;
    text.trim().parse().map_err(|e: crate::domain::ParseError| {
        format!("buildah push wrote a bad digest: {}", e.message)
    })
}

/// `exited with status 1`, `killed by signal 9`.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

/// The default `-j`: the machine's CPUs.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Outcome {
    pub fn elapsed(&self) -> Option<Duration> {
        match self {
            Outcome::Built { elapsed, .. } => Some(*elapsed),
            Outcome::Failed(f) => Some(f.elapsed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn task(log: PathBuf) -> Task {
        let inv = Invocation {
            program: "true".into(),
            args: vec![],
            env: vec![],
        };
        Task {
            job: Job::example(),
            build: inv,
            push: None,
            log,
        }
    }

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_log_is_private_to_its_user() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("logs/20260101T000000Z-1");
        let log = run.join("hello-kmod.log");
        drop(open_log(&task(log.clone())).unwrap());
        assert_eq!(mode(&log), 0o600);
        assert_eq!(mode(&run), 0o700);
        assert_eq!(mode(&dir.path().join("logs")), 0o700);
        // A directory an older version left open is closed.
        let old = dir.path().join("logs/old");
        std::fs::create_dir(&old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(open_log(&task(old.join("x.log"))).unwrap());
        assert_eq!(mode(&old), 0o700);
        assert_eq!(mode(&old.join("x.log")), 0o600);
    }

    #[test]
    fn a_link_at_a_logs_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "keep").unwrap();
        let run = dir.path().join("logs/run");
        std::fs::create_dir_all(&run).unwrap();
        let log = run.join("hello-kmod.log");
        std::os::unix::fs::symlink(&victim, &log).unwrap();
        assert!(open_log(&task(log)).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        // Nor a link in place of the run's directory.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("logs/linked")).unwrap();
        assert!(open_log(&task(dir.path().join("logs/linked/x.log"))).is_err());
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    }
}
