//! `driver-matrix plan`: the jobs, from the matrix and the resolved releases.

use super::Context;
use crate::cli::{PlanArgs, PlanFormat};
use crate::error::Result;
use crate::exit::ExitCode;
use crate::plan;
use crate::text;

pub fn run(ctx: &Context, args: &PlanArgs) -> Result<ExitCode> {
    let plan = ctx.read_only_plan()?;
    match args.format {
        PlanFormat::Json => print!("{}", text::escape_json(&plan::render_json(&plan))),
        PlanFormat::Table => print!("{}", text::escape(&plan::render_table(&plan))),
    }
    Ok(ExitCode::Ok)
}
