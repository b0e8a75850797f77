//! Medians, ratios and spreads across rounds; the table, JSON and SVG chart.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::harness::CompareArgs;
use crate::scenarios::{Better, Metric};

/// Per-round metric lists for each side.
#[derive(Default)]
pub struct RoundMetrics {
    pub a: Vec<Vec<Metric>>,
    pub b: Vec<Vec<Metric>>,
}

#[derive(Serialize)]
pub struct Row {
    pub key: String,
    pub unit: &'static str,
    pub better: Better,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub a_median: f64,
    pub b_median: f64,
    /// a_median / b_median.
    pub ratio: f64,
    /// Min and max of the per-round ratios a_i / b_i.
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// (max - min) / median within one side, in percent.
    pub a_spread_pct: f64,
    pub b_spread_pct: f64,
}

#[derive(Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mosquitto: String,
}

#[derive(Serialize)]
pub struct Report {
    pub date: String,
    pub machine: Machine,
    pub a_name: String,
    pub b_name: String,
    pub args: CompareArgs,
    pub rows: Vec<Row>,
}

pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn spread_pct(v: &[f64]) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
    let m = median(v);
    if m.abs() < f64::EPSILON {
        0.0
    } else {
        100.0 * (hi - lo) / m.abs()
    }
}

pub fn ratio(a: f64, b: f64) -> f64 {
    if b.abs() < f64::EPSILON {
        if a.abs() < f64::EPSILON { 1.0 } else { f64::NAN }
    } else {
        a / b
    }
}

pub fn build(args: &CompareArgs, r: &RoundMetrics) -> Report {
    let mut rows: Vec<Row> = Vec::new();
    let Some(first) = r.a.first() else {
        return Report {
            date: today(),
            machine: machine(),
            a_name: args.a.name().into(),
            b_name: args.b.name().into(),
            args: args.clone(),
            rows,
        };
    };
    for m in first {
        let pick = |side: &[Vec<Metric>]| -> Vec<f64> {
            side.iter()
                .map(|round| round.iter().find(|x| x.key == m.key).map_or(f64::NAN, |x| x.value))
                .collect()
        };
        let (a, b) = (pick(&r.a), pick(&r.b));
        let per_round: Vec<f64> = a.iter().zip(&b).map(|(x, y)| ratio(*x, *y)).collect();
        let (a_median, b_median) = (median(&a), median(&b));
        rows.push(Row {
            key: m.key.clone(),
            unit: m.unit,
            better: m.better,
            ratio: ratio(a_median, b_median),
            ratio_min: per_round.iter().copied().fold(f64::INFINITY, f64::min),
            ratio_max: per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            a_spread_pct: spread_pct(&a),
            b_spread_pct: spread_pct(&b),
            a_median,
            b_median,
            a,
            b,
        });
    }
    Report {
        date: today(),
        machine: machine(),
        a_name: args.a.name().into(),
        b_name: args.b.name().into(),
        args: args.clone(),
        rows,
    }
}

pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Markdown table, so it can be pasted into the README as is.
pub fn print_table(rep: &Report) {
    let m = &rep.machine;
    println!(
        "\n{} — {} × {} (nproc {}), {}",
        rep.date, rep.a_name, rep.b_name, m.nproc, m.cpu_model
    );
    println!(
        "rounds {}, {} s per scenario, MQTT {}, broker on cpu {}, generator on cpu {}\n",
        rep.args.rounds,
        rep.args.duration,
        match rep.args.proto {
            crate::client::Proto::V311 => "3.1.1",
            crate::client::Proto::V5 => "5.0",
        },
        rep.args.broker_cpu,
        rep.args.gen_cpu
    );
    println!(
        "| metric | unit | A: {} | B: {} | A/B | A/B per round (min–max) | A spread | B spread |",
        rep.a_name, rep.b_name
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|");
    for r in &rep.rows {
        let tag = match r.better {
            Better::Higher => " ↑",
            Better::Lower => " ↓",
            Better::Info => "",
        };
        let fr = |x: f64| {
            if x.is_finite() { format!("{x:.3}") } else { "n/a".into() }
        };
        println!(
            "| {}{} | {} | {} | {} | {} | {}–{} | {:.1}% | {:.1}% |",
            r.key,
            tag,
            r.unit,
            fmt_num(r.a_median),
            fmt_num(r.b_median),
            fr(r.ratio),
            fr(r.ratio_min),
            fr(r.ratio_max),
            r.a_spread_pct,
            r.b_spread_pct
        );
    }
}

pub fn write(rep: &Report, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    fs::create_dir_all(dir)?;
    let stem = format!("{}-vs-{}-{}", rep.a_name, rep.b_name, now_hms());
    let json = dir.join(format!("{stem}.json"));
    let svg = dir.join(format!("{stem}.svg"));
    fs::write(&json, serde_json::to_string_pretty(rep)?)?;
    fs::write(&svg, chart(rep))?;
    Ok((json, svg))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Horizontal bars of A/B per metric on a log2 axis (0.25× … 4×), a line at
/// 1.0, and a whisker for the per-round min–max ratio. Green when A is
/// better, red when worse; grey for informational rows.
pub fn chart(rep: &Report) -> String {
    // Bookkeeping rows (contention, attempts) stay in the table and JSON only.
    let rows: Vec<&Row> = rep
        .rows
        .iter()
        .filter(|r| r.ratio.is_finite() && !r.key.ends_with(".foreign_cpu") && !r.key.ends_with(".attempts"))
        .collect();
    let (label_w, plot_w, row_h, top) = (300.0, 520.0, 22.0, 56.0);
    let width = label_w + plot_w + 280.0;
    let height = top + row_h * rows.len() as f64 + 40.0;
    let x = |ratio: f64| {
        // Non-finite whisker ends (a zero in some round) sit on the 1.0 line.
        let r = if ratio.is_finite() { ratio } else { 1.0 };
        let l = r.clamp(0.25, 4.0).log2(); // -2 ..= 2
        label_w + (l + 2.0) / 4.0 * plot_w
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="15" font-weight="bold">{a} / {b} — {date}</text>
<text x="10" y="38" fill="#555">{cpu}, nproc {np}; bar = ratio of medians, whisker = per-round min–max; log scale</text>
"##,
        a = esc(&rep.a_name),
        b = esc(&rep.b_name),
        date = rep.date,
        cpu = esc(&rep.machine.cpu_model),
        np = rep.machine.nproc
    );
    for tick in [0.25, 0.5, 1.0, 2.0, 4.0] {
        let tx = x(tick);
        let _ = writeln!(
            s,
            r##"<line x1="{tx}" y1="{top}" x2="{tx}" y2="{y2}" stroke="{c}" stroke-width="{w}"/><text x="{tx}" y="{ty}" text-anchor="middle" fill="#555">{tick}×</text>"##,
            y2 = height - 30.0,
            ty = height - 14.0,
            c = if tick == 1.0 { "#000" } else { "#ddd" },
            w = if tick == 1.0 { 1.5 } else { 1.0 }
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let (x0, x1) = (x(1.0).min(x(r.ratio)), x(1.0).max(x(r.ratio)));
        let a_better = match r.better {
            Better::Higher => Some(r.ratio >= 1.0),
            Better::Lower => Some(r.ratio <= 1.0),
            Better::Info => None,
        };
        let color = match a_better {
            Some(true) => "#3a9a4a",
            Some(false) => "#c84040",
            None => "#999",
        };
        let _ = write!(
            s,
            r##"<text x="{lx}" y="{ty}" text-anchor="end">{key}</text>
<rect x="{x0}" y="{by}" width="{bw}" height="{bh}" fill="{color}"/>
<line x1="{wx0}" y1="{wy}" x2="{wx1}" y2="{wy}" stroke="#222"/>
<text x="{vx}" y="{ty}" fill="#333">{ratio:.3} ({a} / {b} {unit})</text>
"##,
            lx = label_w - 8.0,
            ty = y + 15.0,
            key = esc(&r.key),
            by = y + 4.0,
            bw = (x1 - x0).max(1.0),
            bh = row_h - 8.0,
            wx0 = x(r.ratio_min),
            wx1 = x(r.ratio_max),
            wy = y + row_h / 2.0,
            vx = label_w + plot_w + 8.0,
            ratio = r.ratio,
            a = fmt_num(r.a_median),
            b = fmt_num(r.b_median),
            unit = esc(r.unit),
        );
    }
    s.push_str("</svg>\n");
    s
}

pub fn machine() -> Machine {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_string());
    // `mosquitto -h` prints its version on the first line (and exits 3).
    let mosquitto = std::process::Command::new("/usr/sbin/mosquitto")
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_default();
    Machine {
        // Not available_parallelism(): the harness has pinned itself to one
        // core by now, and that would report 1.
        // SAFETY: sysconf has no memory effects.
        nproc: unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(0) as usize,
        cpu_model,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        mosquitto,
    }
}

fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// UTC date as YYYY-MM-DD (days-to-civil, H. Hinnant), to avoid a date crate.
pub fn today() -> String {
    let z = unix_secs().div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn now_hms() -> String {
    let s = unix_secs().rem_euclid(86_400);
    format!("{:02}{:02}{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!((spread_pct(&[90.0, 100.0, 110.0]) - 20.0).abs() < 1e-9);
        assert_eq!(ratio(0.0, 0.0), 1.0);
    }

    #[test]
    fn date_is_plausible() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
    }
}
