//! `driver-matrix plan`: the jobs, from the matrix and the resolved releases.

use super::Context;
use crate::cli::{PlanArgs, PlanFormat};
use crate::error::Result;
use crate::exit::ExitCode;
use crate::pipeline::{Access, Planned, Session};
use crate::plan::{self, Plan};
use crate::progress::Reporter;
use crate::text;

pub fn run(ctx: &Context, args: &PlanArgs) -> Result<ExitCode> {
    let plan = compute(ctx)?;
    match args.format {
        PlanFormat::Json => print!("{}", text::escape_json(&plan::render_json(&plan))),
        PlanFormat::Table => print!("{}", text::escape(&plan::render_table(&plan))),
    }
    Ok(ExitCode::Ok)
}

/// Resolves (online through the update graph and the registry, the cache saving what it can;
/// `--offline` from the lock and the cache only) and plans, without writing anything.
pub fn compute(ctx: &Context) -> Result<Plan> {
    let session = ctx.session(Access::Read)?;
    crate::matrix::containerfile::check_all(&session.matrix)?;
    Ok(planned(ctx, &session)?.plan)
}

/// Resolves and plans in `session`, with the resolve progress display; prints the plan's
/// warnings.
pub fn planned(ctx: &Context, session: &Session) -> Result<Planned> {
    planned_with(ctx, session, ctx.reporter().as_ref())
}

pub fn planned_with(ctx: &Context, session: &Session, progress: &dyn Reporter) -> Result<Planned> {
    planned_showing(ctx, session, progress, Kernels::Count)
}

/// How the releases whose DTK kernel is not their nodes' are shown: in full where they are
/// found (`resolve`), as one line with the count everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Full,
    Count,
}

pub fn planned_showing(
    ctx: &Context,
    session: &Session,
    progress: &dyn Reporter,
    kernels: Kernels,
) -> Result<Planned> {
    let resolution = session.resolve(progress)?;
    let planned = session.plan(resolution)?;
    // After planning: a release every driver excludes has left, and is not warned about.
    let releases = &planned.resolution.releases;
    match kernels {
        Kernels::Full => ctx.warn_all(&session.matrix, &crate::pipeline::kernel_warnings(releases)),
        Kernels::Count => {
            if let Some(line) = crate::report::kernel_mismatch_line(releases)
                && !ctx.global.quiet
            {
                eprintln!("{line}");
            }
        }
    }
    ctx.warn_all(&session.matrix, &planned.plan.warnings);
    Ok(planned)
}
