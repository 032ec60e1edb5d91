//! What every benchmark shares: how many runs, the statistics of a figure, and the page
//! fragments that `benches/report.rs` assembles into `docs/benchmarks.md`.
//!
//! Each bench writes its section as Markdown to `target/bench/NN-name.md` (and the points of
//! its curves to `target/bench/NN-name.series.json`); the report puts them under the machine's
//! description. `DM_BENCH_SMOKE=1` (what `make test` sets) runs each bench once at its smallest
//! size and writes nothing.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `make test`'s mode: the smallest size, one run, no page.
pub fn smoke() -> bool {
    std::env::var_os("DM_BENCH_SMOKE").is_some_and(|v| v != "0")
}

/// Runs per figure: at least 5, the page's rule; 1 in smoke mode.
pub fn runs() -> usize {
    if smoke() {
        1
    } else {
        std::env::var("DM_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5)
            .max(5)
    }
}

/// The sizes of a series: all of them, or the smallest in smoke mode.
pub fn sizes<T: Copy>(all: &[T]) -> Vec<T> {
    if smoke() {
        all[..1].to_vec()
    } else {
        all.to_vec()
    }
}

/// One figure over several runs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Stat {
    pub fn of(mut v: Vec<f64>) -> Stat {
        assert!(!v.is_empty(), "a figure needs at least one run");
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        }
    }

    pub fn of_durations(v: &[Duration]) -> Stat {
        Stat::of(v.iter().map(|d| d.as_secs_f64() * 1e3).collect())
    }

    /// `median (min–max)` with `digits` decimals and a unit.
    pub fn show(&self, digits: usize, unit: &str) -> String {
        format!(
            "{:.d$} {unit} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }

    pub fn scale(&self, k: f64) -> Stat {
        Stat {
            median: self.median * k,
            min: self.min * k,
            max: self.max * k,
            runs: self.runs,
        }
    }
}

/// The ratio of two figures measured in the same runs: `a[i] / b[i]` for each run.
pub fn ratios(a: &[f64], b: &[f64]) -> Stat {
    Stat::of(a.iter().zip(b).map(|(x, y)| x / y).collect())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Milliseconds a closure takes.
pub fn time_ms<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let start = Instant::now();
    let out = f();
    (ms(start.elapsed()), out)
}

/// A Markdown table, built row by row.
pub struct Table {
    text: String,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        let mut text = format!("| {} |\n", headers.join(" | "));
        let _ = writeln!(
            text,
            "|{}",
            headers.iter().map(|_| " --- |").collect::<String>()
        );
        Table { text }
    }

    pub fn row(&mut self, cells: &[String]) {
        let _ = writeln!(self.text, "| {} |", cells.join(" | "));
    }

    pub fn render(&self) -> &str {
        &self.text
    }
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("creating target/bench");
    dir
}

/// Writes a section of the page (not in smoke mode), and prints it.
pub fn section(name: &str, markdown: &str) {
    println!("{markdown}");
    if !smoke() {
        std::fs::write(out_dir().join(format!("{name}.md")), markdown).expect("writing a section");
    }
}

/// A curve for the page's plot: `(x, y)` points with a label, in a named chart.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Series {
    pub chart: String,
    pub x_label: String,
    pub y_label: String,
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Writes the curves of a section (not in smoke mode).
pub fn series(name: &str, curves: &[Series]) {
    if !smoke() {
        std::fs::write(
            out_dir().join(format!("{name}.series.json")),
            serde_json::to_string_pretty(curves).expect("serializing curves"),
        )
        .expect("writing curves");
    }
}

/// Peak resident memory of this process so far, in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A target the page checks: what it asks, what was measured, whether it was met, and why not
/// when it was missed.
pub struct Target<'a> {
    pub what: &'a str,
    pub measured: String,
    pub met: bool,
    pub why_missed: &'a str,
}

/// Writes a section's targets (not in smoke mode); the report gathers them in one table.
pub fn targets(name: &str, targets: &[Target<'_>]) {
    let mut rows = String::new();
    for t in targets {
        let verdict = if t.met {
            "met".to_string()
        } else {
            format!("**missed**: {}", t.why_missed)
        };
        let _ = writeln!(rows, "| {} | {} | {verdict} |", t.what, t.measured);
        println!("target: {} | {} | {verdict}", t.what, t.measured);
    }
    if !smoke() {
        std::fs::write(out_dir().join(format!("{name}.targets")), rows).expect("writing targets");
    }
}
