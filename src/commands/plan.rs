//! `driver-matrix plan`: the jobs, from the matrix and the resolved releases.

use super::Context;
use crate::cli::{PlanArgs, PlanFormat};
use crate::error::Result;
use crate::plan::{self, Plan, PlanInput};

pub fn run(ctx: &Context, args: &PlanArgs) -> Result<i32> {
    let plan = compute(ctx)?;
    match args.format {
        PlanFormat::Json => print!("{}", plan::render_json(&plan)),
        PlanFormat::Table => print!("{}", plan::render_table(&plan)),
    }
    Ok(0)
}

/// Everything a command that plans has loaded: the matrix, the lock as it was, the resolved
/// releases and the plan.
pub struct Planned {
    pub matrix: crate::matrix::Matrix,
    pub lock: crate::lock::Lock,
    pub resolution: super::resolve::Resolution,
    pub plan: Plan,
}

/// Loads everything and plans.
pub fn compute(ctx: &Context) -> Result<Plan> {
    Ok(load(ctx)?.plan)
}

/// Loads the matrix and the lock, resolves the releases (online through the update graph and
/// the registry, the cache saving what it can; `--offline` from the lock and the cache only,
/// failing on any release they do not hold), and plans.
pub fn load(ctx: &Context) -> Result<Planned> {
    let matrix = ctx.matrix()?;
    let lock = ctx.lock()?;
    let resolution = super::resolve::resolve_matrix(ctx, &matrix, &lock)?;
    let contexts = crate::inputs::context_digests(&matrix)?;
    let plan = plan::plan(&PlanInput {
        matrix: &matrix,
        versions: &resolution.versions,
        releases: &resolution.releases,
        contexts: &contexts,
        lock: &lock,
    })?;
    ctx.warn_all(&matrix, &plan.warnings);
    Ok(Planned {
        matrix,
        lock,
        resolution,
        plan,
    })
}
