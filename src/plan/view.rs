//! What users read of a plan: an aligned table for terminals and a stable JSON document for
//! scripts. The JSON shape is documented in `docs/plan-json.md`; keys are only ever added.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Plan, State};
use crate::render::{Table, appendln};

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct JsonPlan<'a> {
    version: u32,
    summary: Summary,
    jobs: Vec<JsonJob<'a>>,
}

#[derive(Serialize)]
struct Summary {
    cells: usize,
    jobs: usize,
    /// Builds saved because releases share a kernel.
    saved: usize,
    fresh: usize,
    stale: usize,
    new: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct JsonJob<'a> {
    driver: &'a str,
    kernel: String,
    arch: &'static str,
    rt: bool,
    state: State,
    image: String,
    tag: &'a str,
    dtk: String,
    rhel: &'a str,
    inputs: &'a str,
    releases: Vec<String>,
    build_args: BTreeMap<String, String>,
}

fn summary(plan: &Plan) -> Summary {
    let count = |s: State| plan.jobs.iter().filter(|j| j.state == s).count();
    Summary {
        cells: plan.cells,
        jobs: plan.jobs.len(),
        saved: plan.builds_without_sharing.saturating_sub(plan.jobs.len()),
        fresh: count(State::Fresh),
        stale: count(State::Stale),
        new: count(State::New),
    }
}

/// The plan as pretty JSON with a trailing newline.
pub fn render_json(plan: &Plan) -> String {
    let doc = JsonPlan {
        version: 1,
        summary: summary(plan),
        jobs: plan
            .jobs
            .iter()
            .map(|j| JsonJob {
                driver: &j.driver,
                kernel: j.kernel.to_string(),
                arch: j.arch.as_str(),
                rt: j.rt,
                state: j.state,
                image: j.image.to_string(),
                tag: j.image.tag().unwrap_or_default(),
                dtk: j.dtk.to_string(),
                rhel: &j.rhel,
                inputs: j.inputs.as_str(),
                releases: j.releases.iter().map(ToString::to_string).collect(),
                build_args: j.build_args(),
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("the plan is plain JSON");
    s.push('\n');
    s
}

/// The plan as an aligned table with a summary line.
pub fn render_table(plan: &Plan) -> String {
    let mut table = Table::new(&["DRIVER", "KERNEL", "ARCH", "STATE", "TAG", "RELEASES"]);
    for j in &plan.jobs {
        table.row([
            j.driver.clone(),
            format!("{}{}", j.kernel, if j.rt { " (rt)" } else { "" }),
            j.arch.to_string(),
            j.state.as_str().to_string(),
            j.image.tag().unwrap_or_default().to_string(),
            j.releases
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    let mut out = table.aligned();
    let s = summary(plan);
    appendln!(
        out,
        "\n{} jobs for {} cells ({} builds saved by shared kernels): {} fresh, {} stale, {} new",
        s.jobs,
        s.cells,
        s.saved,
        s.fresh,
        s.stale,
        s.new
    );
    out
}
