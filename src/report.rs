//! What a user sees of a run: the [`crate::progress::Reporter`] implementations (progress bars
//! on a terminal, one plain line per event elsewhere (CI logs), only errors under `-q`), and
//! the build's summary table at the end.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::buildah::Outcome;
use crate::domain::Digest;
use crate::plan::Job;
use crate::progress::{Event, Failure, Reporter};
use crate::render::{Table, appendln};
use crate::text::{escape, escape_line};

/// `driver kernel arch`, how a job is named on one line.
fn name(job: &Job) -> String {
    format!("{} {} {}", job.driver, job.kernel, job.arch)
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The block shown for a failed job: what failed, the command, the log and its last lines.
pub fn failure_block(job: &Job, failure: &Failure) -> String {
    // The message, the command and the log come from buildah and the registry: escaped.
    let mut s = format!(
        "error: {} failed: {}\n",
        name(job),
        escape(&failure.message)
    );
    if let Some(cmd) = &failure.command {
        appendln!(s, "  command: {}", escape_line(cmd));
    }
    appendln!(s, "  log: {}", failure.log.display());
    if !failure.tail.is_empty() {
        appendln!(s, "  last lines of the log:");
        for line in &failure.tail {
            appendln!(s, "  | {}", escape_line(line));
        }
    }
    s
}

/// The one line that stands for the releases whose Driver Toolkit carries another kernel than
/// their nodes boot, outside `resolve` (which shows each in full) and `verify` (a finding
/// each); `None` when there is none.
pub fn kernel_mismatch_line(releases: &[crate::lock::LockedRelease]) -> Option<String> {
    let labels: Vec<String> = releases
        .iter()
        .filter(|r| r.node_kernel_mismatch().is_some())
        .map(|r| r.label())
        .collect();
    let list = match labels.len() {
        0 => return None,
        1 => format!(
            "1 release's Driver Toolkit carries another kernel than its nodes boot ({})",
            labels[0]
        ),
        n => format!(
            "{n} releases' Driver Toolkits carry another kernel than their nodes boot ({})",
            labels.join(", ")
        ),
    };
    Some(
        escape_line(&format!(
            "warning: {list}; `driver-matrix resolve` shows each"
        ))
        .into_owned(),
    )
}

/// Only failures, on stderr (`-q`).
pub struct Quiet;

impl Reporter for Quiet {
    fn event(&self, event: &Event<'_>) {
        if let Event::Failed { job, failure, .. } = event {
            let _ = std::io::stderr().write_all(failure_block(job, failure).as_bytes());
        }
    }
}

/// One line per event on stderr, for logs that are not a terminal.
#[derive(Default)]
pub struct Plain {
    total: Mutex<usize>,
}

impl Reporter for Plain {
    fn event(&self, event: &Event<'_>) {
        let total = *self.total.lock().unwrap_or_else(|e| e.into_inner());
        let at = |i: &usize| format!("[{}/{total}]", i + 1);
        let line = match event {
            // Releases known from the cache or the lock are not news in a log.
            Event::Resolving { .. } | Event::ResolveEnd => return,
            Event::Resolved { fetched: false, .. } => return,
            Event::Resolved { version, arch, .. } => format!("resolved {version} ({arch})"),
            Event::Begin { total } => {
                *self.total.lock().unwrap_or_else(|e| e.into_inner()) = *total;
                format!("building {total} job{}", if *total == 1 { "" } else { "s" })
            }
            Event::Started { index, job, log } => {
                format!(
                    "{} started {} (log: {})",
                    at(index),
                    name(job),
                    log.display()
                )
            }
            Event::Step {
                index,
                job,
                step,
                steps,
                text,
            } => format!(
                "{} {} STEP {step}/{steps}: {}",
                at(index),
                name(job),
                escape_line(text)
            ),
            Event::Pushing { index, job } => format!("{} pushing {}", at(index), job.image),
            Event::Finished {
                index,
                job,
                digest,
                elapsed,
            } => format!(
                "{} built {} in {}{}",
                at(index),
                name(job),
                secs(*elapsed),
                digest
                    .map(|d| format!(": {}@{d}", job.image))
                    .unwrap_or_default()
            ),
            Event::Failed { job, failure, .. } => {
                failure_block(job, failure).trim_end().to_string()
            }
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// While resolving, a bar of releases; while building, a line per running job (its current
/// buildah step) and an overall bar with an ETA.
pub struct Progress {
    multi: MultiProgress,
    resolving: Mutex<Option<ProgressBar>>,
    overall: ProgressBar,
    running: Mutex<HashMap<usize, ProgressBar>>,
}

impl Progress {
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        // Hidden until the build says how many jobs it has, so it never draws without a length.
        let overall = ProgressBar::hidden();
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {pos}/{len} jobs, {elapsed} elapsed, ETA {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        overall.set_prefix("building");
        Progress {
            multi,
            resolving: Mutex::new(None),
            overall,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn resolve_event(&self, event: &Event<'_>) {
        let mut bar = self.resolving.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Resolving { total } => {
                let b = self.multi.add(ProgressBar::new(*total as u64));
                b.set_style(
                    ProgressStyle::with_template("{spinner} resolving releases {pos}/{len} {msg}")
                        .expect("the template is valid"),
                );
                *bar = Some(b);
            }
            Event::Resolved { version, arch, .. } => {
                if let Some(b) = bar.as_ref() {
                    b.set_message(format!("{version} ({arch})"));
                    b.inc(1);
                }
            }
            _ => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
            }
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Reporter for Progress {
    fn event(&self, event: &Event<'_>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Resolving { .. } | Event::Resolved { .. } | Event::ResolveEnd => {
                return self.resolve_event(event);
            }
            Event::Begin { total } => {
                self.overall.set_length(*total as u64);
                self.multi.add(self.overall.clone());
                self.overall.enable_steady_tick(Duration::from_millis(200));
            }
            Event::Started { index, job, .. } => {
                running.insert(*index, self.job_line(job));
            }
            Event::Step {
                index,
                step,
                steps,
                text,
                ..
            } => {
                if let Some(bar) = running.get(index) {
                    bar.set_message(format!("STEP {step}/{steps}: {}", escape_line(text)));
                }
            }
            Event::Pushing { index, job } => {
                if let Some(bar) = running.get(index) {
                    bar.set_message(format!("pushing {}", job.image));
                }
            }
            Event::Finished {
                index,
                job,
                digest,
                elapsed,
            } => {
                let digest = digest.map(|d| format!(" ({d})")).unwrap_or_default();
                let line = format!("   built {} in {}{digest}", name(job), secs(*elapsed));
                self.job_done(running.remove(index), &line);
            }
            Event::Failed {
                index,
                job,
                failure,
            } => {
                let block = failure_block(job, failure);
                self.job_done(running.remove(index), block.trim_end());
            }
        }
        if running.is_empty() && self.overall.position() >= self.overall.length().unwrap_or(0) {
            self.overall.finish_and_clear();
        }
    }
}

impl Progress {
    /// A spinner line for a job that starts, above the overall bar.
    fn job_line(&self, job: &Job) -> ProgressBar {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {prefix} {wide_msg} {elapsed}")
                .expect("the template is valid"),
        );
        bar.set_prefix(name(job));
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A job ended: its spinner goes, `line` stays above the bars, the overall bar moves on.
    fn job_done(&self, bar: Option<ProgressBar>, line: &str) {
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let _ = self.multi.println(line);
        self.overall.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// One row of the summary: a selected job and how it ended.
pub enum Row<'a> {
    Fresh { job: &'a Job, digest: &'a Digest },
    Ran { job: &'a Job, outcome: &'a Outcome },
}

/// The summary table, in plan order, and a closing count.
pub fn summary(rows: &[Row<'_>], elapsed: Duration) -> String {
    let cells: Vec<(&str, [String; 6])> = rows.iter().map(row_cells).collect();
    let mut out = table(&cells);
    let count = |what: &[&str]| cells.iter().filter(|(r, _)| what.contains(r)).count();
    let mut parts = vec![
        format!("{} built", count(&["built"])),
        format!("{} fresh", count(&["fresh"])),
    ];
    let failed = count(&["FAILED"]);
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    let skipped = count(&["interrupted", "not started"]);
    if skipped > 0 {
        parts.push(format!("{skipped} not built"));
    }
    appendln!(out, "{} in {}", parts.join(", "), secs(elapsed));
    for row in rows {
        if let Row::Ran {
            job,
            outcome: Outcome::Failed(f),
        } = row
        {
            appendln!(
                out,
                "failed: {}: {} (log: {})",
                name(job),
                escape(&f.message),
                f.log.display()
            );
        }
    }
    out
}

/// A row's result word and its cells: driver, kernel, arch, result, time, digest.
fn row_cells(row: &Row<'_>) -> (&'static str, [String; 6]) {
    let (job, result, time, digest) = match row {
        Row::Fresh { job, digest } => (job, "fresh", String::new(), digest.to_string()),
        Row::Ran { job, outcome } => match outcome {
            Outcome::Built {
                digest, elapsed, ..
            } => {
                let digest = digest
                    .as_ref()
                    .map_or_else(|| "(not pushed)".to_string(), ToString::to_string);
                (job, "built", secs(*elapsed), digest)
            }
            Outcome::Failed(f) => (job, "FAILED", secs(f.elapsed), String::new()),
            Outcome::Interrupted { .. } => (job, "interrupted", String::new(), String::new()),
            Outcome::NotStarted => (job, "not started", String::new(), String::new()),
        },
    };
    let cells = [
        job.driver.clone(),
        job.kernel.to_string(),
        job.arch.to_string(),
        result.to_string(),
        time,
        digest,
    ];
    (result, cells)
}

/// The rows under a header, columns padded to their widest cell; nothing for no rows.
fn table(rows: &[(&str, [String; 6])]) -> String {
    let mut table = Table::new(&["DRIVER", "KERNEL", "ARCH", "RESULT", "TIME", "DIGEST"]);
    for (_, cells) in rows {
        table.row(cells.iter().cloned());
    }
    if table.is_empty() {
        return String::new();
    }
    let mut out = table.aligned();
    appendln!(out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_table_is_aligned_under_its_header() {
        let (fresh, waiting) = (
            Job::example(),
            Job {
                driver: "a".into(),
                ..Job::example()
            },
        );
        let digest = Digest::sha256(b"image");
        let outcome = Outcome::NotStarted;
        let table = summary(
            &[
                Row::Fresh {
                    job: &fresh,
                    digest: &digest,
                },
                Row::Ran {
                    job: &waiting,
                    outcome: &outcome,
                },
            ],
            Duration::from_millis(2500),
        );
        assert_eq!(
            table,
            format!(
                "DRIVER      KERNEL                        ARCH    RESULT       TIME  DIGEST\n\
                 hello-kmod  5.14.0-284.52.1.el9_2.x86_64  x86_64  fresh              {digest}\n\
                 a           5.14.0-284.52.1.el9_2.x86_64  x86_64  not started\n\
                 \n0 built, 1 fresh, 1 not built in 2.5s\n"
            )
        );
        assert_eq!(summary(&[], Duration::ZERO), "0 built, 0 fresh in 0.0s\n");
    }

    #[test]
    fn a_failure_prints_no_control_character() {
        let failure = Failure {
            message: "pull failed: \x1b]0;owned\x07".into(),
            command: Some("buildah build \x1b[2J".into()),
            log: "/cache/logs/x.log".into(),
            tail: vec!["Error: \x1b[8mhidden\rover".into()],
            elapsed: Duration::from_secs(1),
        };
        let block = failure_block(&Job::example(), &failure);
        assert!(!block.contains(['\x1b', '\x07', '\r']), "{block}");
        assert!(block.contains(r"\x1b]0;owned\x07"), "{block}");
        assert!(block.contains(r"\x1b[8mhidden\x0dover"), "{block}");
        let outcome = Outcome::Failed(failure);
        let j = Job::example();
        let table = summary(
            &[Row::Ran {
                job: &j,
                outcome: &outcome,
            }],
            Duration::from_secs(1),
        );
        assert!(!table.contains('\x1b'), "{table}");
    }
}
