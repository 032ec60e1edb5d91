//! `driver-matrix build`: flags in, [`crate::pipeline::build`] does the work, the dry run and
//! the summary rendered here.

use std::sync::Arc;
use std::time::Instant;

use super::{Context, Kernels};
use crate::buildah::{self, Cancel, Outcome, Task};
use crate::cli::BuildArgs;
use crate::error::Result;
use crate::exit::ExitCode;
use crate::matrix::Matrix;
use crate::pipeline::build::{self as pipe, Decision, Prepared, Request};
use crate::pipeline::{Access, Session};
use crate::plan::{Plan, Selection};
use crate::render::appendln;
use crate::report::{self, Row};

pub fn run(ctx: &Context, args: &BuildArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let session = open_session(ctx, args)?;
    pipe::refuse_shipped_secrets(&session.matrix, &args.secrets)?;
    // A Containerfile buildah would refuse fails here, once, before any release is resolved
    // or any DTK pulled.
    crate::matrix::containerfile::check_all(&session.matrix)?;
    let reporter = ctx.reporter();
    let planned = ctx.planned(&session, reporter.as_ref(), Kernels::Count)?;
    let req = build_request(
        args,
        checked_selection(&session.matrix, &planned.plan, args)?,
    );
    let prepared = pipe::prepare(&session, &planned, &req)?;
    ctx.warn_all(&session.matrix, &prepared.credential_warnings());
    if args.locked {
        return check_locked(ctx, &session, &prepared);
    }
    if args.dry_run {
        print!("{}", render_dry_run(&prepared));
        return Ok(ExitCode::Ok);
    }
    let cancel = interruptible(&session);
    let outcomes = pipe::build_and_record(&session, &prepared, &req, reporter.as_ref(), &cancel)?;
    // The progress display is gone before the summary is printed.
    drop(reporter);
    ctx.registry_stats(&session);
    if !ctx.global.quiet {
        print!(
            "{}",
            report::summary(&summary_rows(&prepared, &outcomes), started.elapsed())
        );
    }
    Ok(if cancel.is_interrupted() {
        ExitCode::Interrupted
    } else if outcomes.iter().any(|o| matches!(o, Outcome::Failed(_))) {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

/// The run's session. Only a run that records pushes writes the lock, and it holds the
/// writer's lock from before it reads the lock until it ends.
fn open_session(ctx: &Context, args: &BuildArgs) -> Result<Session> {
    let writes = !(args.locked || args.dry_run || args.no_push);
    let access = if writes {
        Access::Write("build")
    } else {
        Access::Read
    };
    if !(args.locked || args.dry_run) {
        // A build that only builds (`--no-push`) runs buildah too.
        ctx.sweep();
    }
    ctx.session(access)
}

/// Ctrl-C's flag, with the buildah process groups written down for the next run to stop if
/// this one is killed.
fn interruptible(session: &Session) -> Arc<Cancel> {
    let cancel = Cancel::with_record(
        session
            .opts
            .cache_dir()
            .and_then(|c| crate::runs::Record::create(&c)),
    );
    let handler = Arc::clone(&cancel);
    // Fails only when a handler is already set, which this binary never does twice.
    let _ = ctrlc::set_handler(move || handler.interrupt());
    cancel
}

/// What the flags ask of the build.
fn build_request(args: &BuildArgs, selection: Selection) -> Request {
    Request {
        selection,
        force: args.force,
        push: !args.no_push,
        jobs: args
            .jobs
            .map_or_else(buildah::executor::default_jobs, usize::from),
        fail_fast: args.fail_fast,
        secrets: args
            .secrets
            .iter()
            .map(|s| (s.id.clone(), s.path.clone()))
            .collect(),
    }
}

/// The summary's rows: every selected job, fresh or with how its build ended.
fn summary_rows<'p>(prepared: &'p Prepared<'_>, outcomes: &'p [Outcome]) -> Vec<Row<'p>> {
    let mut ran = outcomes.iter();
    prepared
        .selected
        .iter()
        .map(|(job, d)| match d {
            Decision::Fresh(digest) => Row::Fresh { job, digest },
            Decision::Build(_) => Row::Ran {
                job,
                outcome: ran.next().expect("one outcome per task"),
            },
        })
        .collect()
}

/// `--locked`: succeed only when nothing would be built and the lock would not change by a
/// byte.
fn check_locked(ctx: &Context, session: &Session, prepared: &Prepared<'_>) -> Result<ExitCode> {
    crate::pipeline::locked::check(session, &prepared.to_build(), &prepared.base)?;
    if !ctx.global.quiet {
        println!("{} jobs fresh", prepared.selected.len());
    }
    Ok(ExitCode::Ok)
}

/// The selection flags, checked against the matrix and the plan.
fn checked_selection(matrix: &Matrix, plan: &Plan, args: &BuildArgs) -> Result<Selection> {
    Ok(Selection::checked(
        matrix,
        plan,
        &args.select.drivers,
        &args.select.kernels,
        &args.select.arches,
        args.shard,
    )?)
}

fn render_dry_run(prepared: &Prepared<'_>) -> String {
    let mut out = String::new();
    let mut tasks: std::slice::Iter<'_, Task> = prepared.tasks.iter();
    let mut fresh = 0;
    for (job, d) in &prepared.selected {
        match d {
            Decision::Fresh(_) => fresh += 1,
            Decision::Build(why) => {
                let task = tasks.next().expect("one task per job to build");
                appendln!(
                    out,
                    "would build {} {} {} ({why})\n  {}",
                    job.driver,
                    job.kernel,
                    job.arch,
                    task.build
                );
                if let Some((push, _)) = &task.push {
                    appendln!(out, "  {push}");
                }
            }
        }
    }
    appendln!(
        out,
        "{} to build, {fresh} fresh",
        prepared.selected.len() - fresh
    );
    out
}
