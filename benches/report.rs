//! Writes `docs/benchmarks.md` and its plots from the sections the other benches left in
//! `target/bench/` (`make bench` runs them first): the machine, the commands, then each
//! section in order, and one SVG per chart drawn with plotters.

// A benchmark prints its figures and may unwrap.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Series;
use plotters::prelude::*;

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|| "not found".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1 << 20) as f64);
    let rows = [
        ("CPU", format!("{cores} cores, {model}")),
        ("memory", format!("{mem_gib:.1} GiB")),
        ("kernel", first_line("uname", &["-sr"])),
        ("buildah", first_line("buildah", &["--version"])),
        ("skopeo", first_line("skopeo", &["--version"])),
        ("registry", first_line("docker-registry", &["--version"])),
        ("rustc", first_line("rustc", &["--version"])),
        (
            "driver-matrix",
            format!(
                "{} ({})",
                env!("CARGO_PKG_VERSION"),
                first_line("git", &["describe", "--always", "--dirty"])
            ),
        ),
        ("date", first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
    ];
    let mut t = common::Table::new(&["", ""]);
    for (k, v) in rows {
        t.row(&[k.to_string(), v]);
    }
    t.render().to_string()
}

/// Draws one chart (log-log: each series spans decades) into `path`.
fn plot(path: &Path, title: &str, curves: &[&Series]) {
    let all: Vec<(f64, f64)> = curves.iter().flat_map(|c| c.points.clone()).collect();
    let (xmin, xmax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ymin, ymax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (xmin * 0.8..xmax * 1.25).log_scale(),
            (ymin * 0.5..ymax * 2.0).log_scale(),
        )
        .unwrap();
    chart
        .configure_mesh()
        .x_desc(curves[0].x_label.as_str())
        .y_desc(curves[0].y_label.as_str())
        .draw()
        .unwrap();
    let colors = [&BLUE, &RED, &GREEN, &MAGENTA, &BLACK];
    for (curve, color) in curves.iter().zip(colors.iter().cycle()) {
        let color = **color;
        chart
            .draw_series(LineSeries::new(curve.points.clone(), color.stroke_width(2)))
            .unwrap()
            .label(curve.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(
                curve
                    .points
                    .iter()
                    .map(|p| Circle::new(*p, 3, color.filled())),
            )
            .unwrap();
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .unwrap();
    root.present().unwrap();
}

/// The file name of a chart's SVG, next to the page.
fn svg_name(section: &str) -> String {
    let name = section.split_once('-').map_or(section, |(_, n)| n);
    format!("benchmarks-{name}.svg")
}

fn main() {
    if common::smoke() {
        // Nothing to assemble in smoke mode: the other benches wrote no sections.
        plot(
            &std::env::temp_dir().join("driver-matrix-bench-smoke.svg"),
            "smoke",
            &[&Series {
                chart: "smoke".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                label: "a".into(),
                points: vec![(1.0, 1.0), (10.0, 5.0)],
            }],
        );
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/bench");
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut charts: Vec<(String, Vec<Series>)> = Vec::new();
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("target/bench: run the benches first") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(section) = name.strip_suffix(".series.json") {
            let curves: Vec<Series> =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            charts.push((section.to_string(), curves));
        } else if let Some(section) = name.strip_suffix(".targets") {
            targets.insert(section.to_string(), std::fs::read_to_string(&path).unwrap());
        } else if let Some(section) = name.strip_suffix(".md") {
            sections.insert(section.to_string(), std::fs::read_to_string(&path).unwrap());
        }
    }
    charts.sort_by(|a, b| a.0.cmp(&b.0));
    let docs = root.join("docs");
    for (section, curves) in &charts {
        let refs: Vec<&Series> = curves.iter().collect();
        plot(&docs.join(svg_name(section)), &curves[0].chart, &refs);
    }
    let mut page = String::from(
        "# Benchmarks\n\n\
         Written by `make bench` (do not edit by hand); every figure below comes from that run. \
         Each figure is the median of at least 5 runs with the smallest and largest in \
         parentheses; a comparison is a ratio of runs taken in the same bench run, since \
         absolute times on a shared machine drift. Targets are the project's; a missed one says \
         so in [Targets](#targets).\n\n## Machine\n\n",
    );
    page.push_str(&machine());
    page.push_str(
        "\n## Commands\n\n```sh\nmake bench          # every bench below, then this page\n\
         cargo bench --bench plan      # sections 2 and 5\n\
         cargo bench --bench resolve   # section 1\n\
         cargo bench --bench build     # section 3\n\
         cargo bench --bench nightly   # sections 4 and 6\n\
         cargo bench --bench report    # this page and its plots from target/bench/\n```\n\n\
         `make test` runs each bench once at its smallest size (`DM_BENCH_SMOKE=1`), so that \
         they keep working; it writes no page.\n\n",
    );
    for (name, text) in &sections {
        page.push_str(text.trim_end());
        page.push('\n');
        if charts.iter().any(|(s, _)| s == name) && !text.contains(&svg_name(name)) {
            page.push_str(&format!("\n![{name}]({})\n", svg_name(name)));
        }
        page.push('\n');
    }
    page.push_str("## Targets\n\n| target | measured (median) | |\n| --- | --- | --- |\n");
    for rows in targets.values() {
        page.push_str(rows);
    }
    std::fs::write(docs.join("benchmarks.md"), page).unwrap();
    println!("wrote docs/benchmarks.md and {} plots", charts.len());
}
