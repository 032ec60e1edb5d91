//! `driver-matrix resolve [--locked]`: every release of the matrix (exact versions, and channels
//! expanded through the update graph) resolved to payload, DTK and kernel, written to the
//! `[[release]]` part of the lock; the `[[image]]` part follows (images whose job changed or
//! left the plan go, fresh ones serve the releases of their job now).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Context, Kernels};
use crate::cli::ResolveArgs;
use crate::error::Result;
use crate::exit::ExitCode;
use crate::pipeline::{self, Access, Planned, Session, truth};
use crate::progress::{Event, Reporter};
use crate::render::appendln;

pub fn run(ctx: &Context, args: &ResolveArgs) -> Result<ExitCode> {
    let access = if args.locked {
        Access::Read
    } else {
        Access::Write("resolve")
    };
    let session = ctx.session(access)?;
    let shown = ctx.reporter();
    let reporter = Counting {
        inner: shown.as_ref(),
        fetched: AtomicUsize::new(0),
    };
    let planned = ctx.planned(&session, &reporter, Kernels::Full)?;
    let fetched = reporter.fetched.load(Ordering::Relaxed);
    // The releases as resolved, and the images brought up to date with them.
    let new = session.without_missing(truth::reconcile(
        &session.lock,
        &planned.resolution.releases,
        &planned.plan,
        &truth::All,
    ))?;
    if args.locked {
        pipeline::locked::check(&session, &[], &new)?;
        return Ok(ExitCode::Ok);
    }
    let changes = pipeline::describe_changes(&session.lock, &new);
    let written = session.write(&new)?;
    ctx.registry_stats(&session);
    if !ctx.global.quiet {
        print_summary(
            &session,
            &planned,
            Summary {
                changes,
                fetched,
                written,
            },
        );
    }
    Ok(ExitCode::Ok)
}

/// What `resolve` did, for its report.
struct Summary {
    changes: Vec<String>,
    /// Releases read from the registry (the others came from the cache).
    fetched: usize,
    /// Whether the lock file changed.
    written: bool,
}

/// Each change to the lock, then one line: how many releases, and whether the lock changed.
fn print_summary(session: &Session, planned: &Planned, summary: Summary) {
    let mut err = String::new();
    for c in &summary.changes {
        appendln!(err, "  {}", crate::text::escape_line(c));
    }
    appendln!(
        err,
        "resolved {} releases ({} from the registry); `{}` {}",
        // A dual-stream release has an entry per stream: count releases, not entries.
        planned
            .resolution
            .releases
            .iter()
            .filter(|r| r.stream.is_none())
            .count(),
        summary.fetched,
        session.lock_path().display(),
        if summary.written {
            "updated"
        } else {
            "unchanged"
        }
    );
    eprint!("{err}");
}

/// A reporter that also counts the releases read from the registry.
struct Counting<'r> {
    inner: &'r dyn Reporter,
    fetched: AtomicUsize,
}

impl Reporter for Counting<'_> {
    fn event(&self, event: &Event<'_>) {
        if let Event::Resolved { fetched: true, .. } = event {
            self.fetched.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.event(event);
    }
}
