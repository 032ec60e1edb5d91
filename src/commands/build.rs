//! `driver-matrix build`: plan, pick the selected jobs that are not fresh, build and push them
//! in parallel, and record each pushed image in the lock as soon as it is pushed.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::Context;
use crate::build::{
    self, BuildError, Buildah, Cancel, Executor, ImageStore, Outcome, Reporter, Selection, Task,
    command, fresh, record, registries,
};
use crate::cli::BuildArgs;
use crate::domain::{Digest, did_you_mean};
use crate::error::{Error, Result, exit};
use crate::matrix::Matrix;
use crate::plan::{Job, Plan, State};
use crate::registry::{Client, ClientOptions};
use crate::report::{self, Row};

/// Registry checks wait on the network; this many run at once.
const CHECK_THREADS: usize = 16;

/// What to do with a selected job.
enum Decision {
    Fresh(Digest),
    /// Build it, and why.
    Build(&'static str),
}

pub fn run(ctx: &Context, args: &BuildArgs) -> Result<i32> {
    let started = Instant::now();
    // Resolves releases (or reads them from the lock under `--offline`) and plans.
    let super::plan::Planned {
        matrix,
        resolution,
        plan,
        ..
    } = super::plan::load(ctx)?;
    let selection = selection(&matrix, &plan, args)?;
    let selected: Vec<&Job> = plan.jobs.iter().filter(|j| selection.contains(j)).collect();
    let authfile = crate::registry::tool_authfile(ctx.global.authfile.as_deref());
    let decisions = decide(ctx, &matrix, &selected, args.force, authfile.as_ref())?;
    let to_build: Vec<&Job> = selected
        .iter()
        .zip(&decisions)
        .filter(|(_, d)| matches!(d, Decision::Build(_)))
        .map(|(j, _)| *j)
        .collect();

    if args.locked {
        return locked(ctx, &plan, &selected, &decisions);
    }

    // Mirrors and insecure hosts reach buildah through a generated registries.conf; the build
    // args keep the source references, so nothing else changes with a mirror.
    let mut env = Vec::new();
    if let Some(text) =
        registries::render(&matrix.registries, &registries::machine_search_registries())
    {
        let path = registries::write(&cache_dir(ctx)?, &text)?;
        env.push(("CONTAINERS_REGISTRIES_CONF".into(), path.into_os_string()));
    }
    let buildah = Buildah {
        authfile,
        timestamp: source_date_epoch()?,
        env,
        ..Buildah::default()
    };
    let logs = cache_dir(ctx)?.join("logs").join(run_id());
    let tasks: Vec<Task> = to_build
        .iter()
        .map(|job| task(&matrix, job, &buildah, &logs, !args.no_push))
        .collect();

    if args.dry_run {
        print!("{}", dry_run(&selected, &decisions, &tasks));
        return Ok(exit::OK);
    }

    let recorder = if args.no_push {
        None
    } else {
        let r = build::Recorder::open(&ctx.lock_path(), &plan, |p| {
            if !ctx.global.quiet {
                eprintln!("waiting for another build to release `{}`", p.display());
            }
        })
        .map_err(BuildError::from)?;
        // The lock gets the releases as resolved now, and loses images no longer planned.
        r.prune(&resolution.releases).map_err(BuildError::from)?;
        Some(r)
    };

    let cancel = Cancel::new();
    {
        let cancel = Arc::clone(&cancel);
        // Fails only when a handler is already set, which this binary never does twice.
        let _ = ctrlc::set_handler(move || cancel.interrupt());
    }
    let executor = Executor {
        jobs: args
            .jobs
            .map_or_else(build::executor::default_jobs, usize::from),
        fail_fast: args.fail_fast,
        cancel: Arc::clone(&cancel),
    };
    let on_pushed = |task: &Task, digest: &Digest| -> std::result::Result<(), String> {
        let Some(recorder) = &recorder else {
            return Ok(());
        };
        recorder
            .record(task.job.locked(digest.clone()))
            .map_err(|e| format!("pushed as {digest}, but not recorded in the lock: {e}"))
    };
    let outcomes = if tasks.is_empty() {
        Vec::new()
    } else {
        let reporter: Box<dyn Reporter> = if ctx.global.quiet {
            Box::new(report::Quiet)
        } else if std::io::stderr().is_terminal() {
            Box::new(report::Progress::new(tasks.len()))
        } else {
            Box::new(report::Plain::default())
        };
        executor.run(&tasks, reporter.as_ref(), &on_pushed)
    };

    let mut ran = outcomes.iter();
    let rows: Vec<Row<'_>> = selected
        .iter()
        .zip(&decisions)
        .map(|(job, d)| match d {
            Decision::Fresh(digest) => Row::Fresh { job, digest },
            Decision::Build(_) => Row::Ran {
                job,
                outcome: ran.next().expect("one outcome per task"),
            },
        })
        .collect();
    if !ctx.global.quiet {
        print!("{}", report::summary(&rows, started.elapsed()));
    }
    Ok(if cancel.is_interrupted() {
        exit::INTERRUPTED
    } else if outcomes.iter().any(|o| matches!(o, Outcome::Failed(_))) {
        exit::FAILED
    } else {
        exit::OK
    })
}

/// The selection flags, checked against the matrix and the plan.
fn selection(matrix: &Matrix, plan: &Plan, args: &BuildArgs) -> Result<Selection> {
    for d in &args.drivers {
        if matrix.driver(d).is_none() {
            let names = matrix.drivers.iter().map(|d| d.name.as_str());
            let help = match did_you_mean(d, names.clone()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("the drivers are: {}", names.collect::<Vec<_>>().join(", ")),
            };
            return Err(Error::usage(
                format!("`--driver {d}` names no driver of the matrix"),
                Some(help),
            ));
        }
    }
    let kernels: BTreeSet<&str> = plan.jobs.iter().map(|j| j.kernel.as_str()).collect();
    for k in &args.kernels {
        let known = plan
            .jobs
            .iter()
            .any(|j| j.kernel.as_str() == k || j.kernel.normalized() == *k);
        if !known {
            return Err(Error::usage(
                format!("`--kernel {k}` names no kernel of the plan"),
                Some(format!(
                    "the plan's kernels are: {}",
                    kernels.iter().copied().collect::<Vec<_>>().join(", ")
                )),
            ));
        }
    }
    Ok(Selection {
        drivers: args.drivers.clone(),
        kernels: args.kernels.clone(),
        arches: args.arches.clone(),
        shard: args.shard,
    })
}

/// Fresh or not, per selected job; one registry check per job the plan calls fresh.
fn decide(
    ctx: &Context,
    matrix: &Matrix,
    selected: &[&Job],
    force: bool,
    authfile: Option<&PathBuf>,
) -> Result<Vec<Decision>> {
    let lock = ctx.lock()?;
    let offline = ctx.global.offline;
    // The registry is asked only about jobs the plan calls fresh, and only online.
    let must_check = !force && !offline && selected.iter().any(|j| j.state == State::Fresh);
    let store = if must_check {
        Some(Client::new(ClientOptions {
            registries: matrix.registries.clone(),
            authfile: authfile.cloned(),
            max_in_flight: CHECK_THREADS,
            ..ClientOptions::default()
        })?)
    } else {
        None
    };
    let decisions = fresh::parallel_map(selected, CHECK_THREADS, |job| {
        if force {
            return Ok(Decision::Build("forced"));
        }
        let locked = match (job.state, lock.image(&job.driver, &job.kernel, job.arch)) {
            (State::New, _) | (_, None) => return Ok(Decision::Build("new")),
            (State::Stale, _) => return Ok(Decision::Build("inputs changed")),
            (State::Fresh, Some(l)) => l,
        };
        let present = match &store {
            Some(store) => store.has_digest(&locked.image, &locked.digest)?,
            None => true,
        };
        if present {
            Ok(Decision::Fresh(locked.digest.clone()))
        } else {
            Ok(Decision::Build("missing from the registry"))
        }
    });
    decisions
        .into_iter()
        .map(|d: std::result::Result<Decision, build::StoreError>| {
            d.map_err(|e| Error::from(BuildError::from(e)))
        })
        .collect()
}

/// `--locked`: succeed only when nothing would be built and the lock would not change.
fn locked(ctx: &Context, plan: &Plan, selected: &[&Job], decisions: &[Decision]) -> Result<i32> {
    let mut out: Vec<String> = selected
        .iter()
        .zip(decisions)
        .filter_map(|(j, d)| match d {
            Decision::Build(why) => Some(format!("{} ({why})", j.id())),
            Decision::Fresh(_) => None,
        })
        .collect();
    let lock = ctx.lock()?;
    let dropped = lock.images.len() - record::prune(lock.clone(), plan).images.len();
    if dropped > 0 {
        out.push(format!(
            "{dropped} image{} of jobs no longer in the plan",
            if dropped == 1 { "" } else { "s" }
        ));
    }
    if out.is_empty() {
        if !ctx.global.quiet {
            println!("{} jobs fresh", selected.len());
        }
        return Ok(exit::OK);
    }
    Err(Error::Outdated {
        message: format!("the lock is out of date: {}", out.join(", ")),
    })
}

fn task(matrix: &Matrix, job: &Job, buildah: &Buildah, logs: &Path, push: bool) -> Task {
    let driver = matrix
        .driver(&job.driver)
        .expect("every job comes from a driver of the matrix");
    let stem = format!("{}_{}_{}", job.driver, job.kernel.normalized(), job.arch);
    let digestfile = logs.join(format!("{stem}.digest"));
    let spec = command::Spec {
        job,
        driver,
        registries: &matrix.registries,
        buildah,
        digestfile: &digestfile,
    };
    Task {
        job: job.clone(),
        build: command::build(&spec),
        push: push.then(|| (command::push(&spec), digestfile.clone())),
        log: logs.join(format!("{stem}.log")),
    }
}

fn dry_run(selected: &[&Job], decisions: &[Decision], tasks: &[Task]) -> String {
    let mut out = String::new();
    let mut tasks = tasks.iter();
    let mut fresh = 0;
    for (job, d) in selected.iter().zip(decisions) {
        match d {
            Decision::Fresh(_) => fresh += 1,
            Decision::Build(why) => {
                let task = tasks.next().expect("one task per job to build");
                out.push_str(&format!(
                    "would build {} {} {} ({why})\n  {}\n",
                    job.driver, job.kernel, job.arch, task.build
                ));
                if let Some((push, _)) = &task.push {
                    out.push_str(&format!("  {push}\n"));
                }
            }
        }
    }
    out.push_str(&format!(
        "{} to build, {fresh} fresh\n",
        selected.len() - fresh
    ));
    out
}

/// `--cache-dir`, else `driver-matrix` in the user's cache directory.
fn cache_dir(ctx: &Context) -> Result<PathBuf> {
    match &ctx.global.cache_dir {
        Some(dir) => Ok(dir.clone()),
        None => dirs::cache_dir()
            .map(|d| d.join("driver-matrix"))
            .ok_or_else(|| BuildError::NoCacheDir.into()),
    }
}

/// `SOURCE_DATE_EPOCH`, the reproducible-builds convention, as buildah's `--timestamp`.
fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.trim().parse().map(Some).map_err(|_| {
            Error::usage(
                format!("`SOURCE_DATE_EPOCH={v}` is not a number of seconds"),
                Some("set it to seconds since 1970, or unset it".into()),
            )
        }),
        _ => Ok(None),
    }
}

/// A name for this run's log directory: UTC time and process id, `20260131T235959Z-4242`.
fn run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        std::process::id()
    )
}
