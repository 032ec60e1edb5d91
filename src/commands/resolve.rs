//! `driver-matrix resolve [--locked]`: every release of the matrix (exact versions, and channels
//! expanded through the update graph) resolved to payload, DTK and kernel, written to the
//! `[[release]]` part of the lock; the `[[image]]` part follows (images whose job changed or
//! left the plan go, fresh ones serve the releases of their job now). Also the progress display
//! that every resolving command shows.

use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Context;
use crate::cli::ResolveArgs;
use crate::error::{Error, Result, exit};
use crate::lock;
use crate::pipeline::{self, Access, truth};
use crate::release::{Event, Progress, Target};

pub fn run(ctx: &Context, args: &ResolveArgs) -> Result<i32> {
    let access = if args.locked {
        Access::Read
    } else {
        Access::Write("resolve")
    };
    let session = ctx.session(access)?;
    let reporter = Reporter::new(ctx.global.quiet);
    let planned = super::plan::planned_with(ctx, &session, &reporter)?;
    let fetched = *reporter.fetched.lock().expect("no reporter panics");
    // The releases as resolved, and the images brought up to date with them.
    let new = session.without_missing(truth::reconcile(
        &session.lock,
        &planned.resolution.releases,
        &planned.plan,
        &truth::All,
    ))?;
    let path = session.lock_path();
    let changes = pipeline::describe_changes(&session.lock, &new);
    if args.locked {
        if lock::render(&new) != session.current_text() {
            let changes = if changes.is_empty() {
                vec!["its formatting differs from the canonical form".to_string()]
            } else {
                changes
            };
            return Err(Error::Outdated {
                lock: path,
                changes,
            });
        }
        return Ok(exit::OK);
    }
    let written = session.write(&new)?;
    ctx.registry_stats(&session);
    if !ctx.global.quiet {
        let mut err = std::io::stderr().lock();
        for c in &changes {
            let _ = writeln!(err, "  {c}");
        }
        let _ = writeln!(
            err,
            "resolved {} releases ({fetched} from the registry); `{}` {}",
            // A dual-stream release has an entry per stream: count releases, not entries.
            planned
                .resolution
                .releases
                .iter()
                .filter(|r| r.stream.is_none())
                .count(),
            path.display(),
            if written { "updated" } else { "unchanged" }
        );
    }
    Ok(exit::OK)
}

/// Progress on stderr: a bar on a terminal, a line per release read from the registry
/// elsewhere, nothing under `-q`.
pub struct Reporter {
    bar: Option<ProgressBar>,
    plain: bool,
    pub fetched: Mutex<usize>,
}

impl Reporter {
    pub fn new(quiet: bool) -> Reporter {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} resolving releases {pos}/{len} {msg}")
                    .expect("a valid template"),
            );
            bar
        });
        Reporter {
            bar,
            plain: !quiet && !tty,
            fetched: Mutex::new(0),
        }
    }
}

impl Progress for Reporter {
    fn start(&self, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
        }
    }

    fn done(&self, t: &Target, event: Event) {
        if event == Event::Fetched {
            *self.fetched.lock().expect("no reporter panics") += 1;
        }
        if let Some(b) = &self.bar {
            b.set_message(format!("{} ({})", t.version, t.arch));
            b.inc(1);
        } else if self.plain && event == Event::Fetched {
            eprintln!("resolved {} ({})", t.version, t.arch);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
