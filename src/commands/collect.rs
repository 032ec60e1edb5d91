//! `driver-matrix collect`: the lock rebuilt from the registry ([`crate::pipeline::collect`]).

use super::{Context, Kernels};
use crate::domain::Digest;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::pipeline::build::Unconfirmed;
use crate::pipeline::collect::Unmatched;
use crate::pipeline::{Access, collect};
use crate::render::appendln;
use crate::text::escape_line;

pub fn run(ctx: &Context) -> Result<ExitCode> {
    if ctx.global.offline {
        return Err(Error::usage(
            "`collect` reads the registry and cannot run with `--offline`",
            None,
        ));
    }
    let session = ctx.session(Access::Write("collect"))?;
    let planned = ctx.planned(&session, ctx.reporter().as_ref(), Kernels::Count)?;
    let (lock, missing) = collect::collect(&session, &planned)?;
    let changed = session.write(&lock)?;
    ctx.registry_stats(&session);
    let mut err = String::new();
    if !ctx.global.quiet {
        appendln!(
            err,
            "collected {} of {} images; {} {}",
            lock.images.len(),
            planned.plan.jobs.len(),
            session.lock_path().display(),
            if changed { "updated" } else { "unchanged" }
        );
    }
    for (job, why) in &missing {
        let (summary, detail) = not_collected_reason(why);
        appendln!(
            err,
            "not collected: {}: {summary} ({})",
            job.id(),
            job.image
        );
        if let Some(detail) = detail {
            appendln!(err, "  {}", escape_line(&detail));
        }
    }
    eprint!("{err}");
    Ok(if missing.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

/// Why a job was not collected: a summary for its `not collected:` line, and the details the
/// registry gave, if any, for a line of their own.
///
/// CI pastes the `not collected:` lines into a pull request (docs/ci.md), so they hold only
/// fixed text and values of a checked grammar (the job's driver, kernel, arch and image, a
/// digest): a label, a module's `vermagic` or a path read from an image could otherwise put
/// a mention, an issue-closing keyword, a link or HTML into the pull request. What the
/// registry said goes on the indented line below, escaped for the terminal.
fn not_collected_reason(why: &Unmatched) -> (String, Option<String>) {
    match why {
        Unmatched::OtherInputs { found } => match found.parse::<Digest>() {
            Ok(d) => (
                format!("the tag holds an image built from other inputs (`{d}`)"),
                None,
            ),
            Err(_) => (
                "the tag holds an image whose inputs label is not a digest".into(),
                Some(format!("its inputs label: {found}")),
            ),
        },
        Unmatched::Unconfirmed(Unconfirmed::Modules {
            kernel, findings, ..
        }) => {
            let summary = match kernel.parse::<crate::domain::Kernel>() {
                Ok(k) => format!("its modules do not confirm kernel `{k}`"),
                Err(_) => "its modules do not confirm the job's kernel".into(),
            };
            (summary, Some(findings.clone()))
        }
        // The driver is a matrix name (its grammar is checked), the findings registry text.
        Unmatched::Unconfirmed(Unconfirmed::Signing { driver, findings }) => (
            format!("its modules break the signing rule of driver `{driver}`"),
            Some(findings.clone()),
        ),
        Unmatched::NoTag | Unmatched::NoLabels => (why.to_string(), None),
        Unmatched::Unconfirmed(Unconfirmed::Registry(_)) | Unmatched::Registry(_) => (
            "the registry failed".into(),
            Some(crate::text::one_line(why)),
        ),
    }
}
