//! The reports of a backtest: the mean per (model, horizon) over series ([`overall`]), the
//! fixed-width and markdown tables, JSON rows, and the SVG chart of one forecast.

use std::path::Path;

use serde::Serialize;

use super::{BacktestError, BacktestRow};
use crate::forecast::intervals::IntervalForecast;

/// Mean scores of one model at one horizon across series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverallRow {
    pub model: String,
    pub horizon: usize,
    /// Series averaged.
    pub symbols: usize,
    pub mean_mase: f64,
    pub mean_coverage: f64,
    /// Mean stated `confidence`.
    pub mean_confidence: f64,
    /// Mean realised `1 - MAPE`: what `mean_confidence` claims.
    pub mean_realised_confidence: f64,
    /// Coverage of the main interval over all series' cutoffs pooled, in the calm, middle
    /// and turbulent third of their recent volatility.
    pub coverage_by_volatility_tercile: [f64; 3],
    /// Mean coverage at each `(level, coverage)` of the rows.
    #[serde(skip)]
    pub mean_coverage_by_level: Vec<(f64, f64)>,
}

/// Mean MASE and coverage per (model, horizon) across series, in first-seen order.
/// Infinite MASEs (a constant series) are left out of the mean.
pub fn overall(rows: &[BacktestRow]) -> Vec<OverallRow> {
    let mut keys: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.model.as_str(), r.horizon)) {
            keys.push((r.model.as_str(), r.horizon));
        }
    }
    keys.into_iter()
        .map(|(model, horizon)| {
            let group: Vec<&BacktestRow> = rows
                .iter()
                .filter(|r| r.model == model && r.horizon == horizon)
                .collect();
            let finite: Vec<f64> = group
                .iter()
                .map(|r| r.mase)
                .filter(|m| m.is_finite())
                .collect();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let levels = group[0].coverage_by_level.len();
            let mean_coverage_by_level = (0..levels)
                .map(|li| {
                    let c: Vec<f64> = group.iter().map(|r| r.coverage_by_level[li].1).collect();
                    (group[0].coverage_by_level[li].0, mean(&c))
                })
                .collect();
            let coverage: Vec<f64> = group.iter().map(|r| r.coverage).collect();
            let confidence: Vec<f64> = group.iter().map(|r| r.mean_confidence).collect();
            let realised: Vec<f64> = group.iter().map(|r| 1.0 - r.mape).collect();
            let mut pooled: Vec<(f64, bool)> = group
                .iter()
                .flat_map(|r| r.fold_volatility_inside.iter().copied())
                .collect();
            pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
            let n = pooled.len();
            let tercile = |t: usize| {
                let part = &pooled[t * n / 3..(t + 1) * n / 3];
                part.iter().filter(|f| f.1).count() as f64 / part.len().max(1) as f64
            };
            OverallRow {
                model: model.to_string(),
                horizon,
                symbols: group.len(),
                mean_mase: mean(&finite),
                mean_coverage: mean(&coverage),
                mean_confidence: mean(&confidence),
                mean_realised_confidence: mean(&realised),
                coverage_by_volatility_tercile: [tercile(0), tercile(1), tercile(2)],
                mean_coverage_by_level,
            }
        })
        .collect()
}

/// The rows as a fixed-width text table.
pub fn render_table(rows: &[BacktestRow]) -> String {
    let mut out = format!(
        "{:<10} {:<15} {:>7} {:>5} {:>14} {:>8} {:>7} {:>9}\n",
        "symbol", "model", "horizon", "n", "mae", "mape", "mase", "coverage"
    );
    for r in rows {
        out += &format!(
            "{:<10} {:<15} {:>7} {:>5} {:>14.6} {:>7.2}% {:>7.3} {:>8.1}%\n",
            r.symbol,
            r.model,
            r.horizon,
            r.n,
            r.mae,
            r.mape * 100.0,
            r.mase,
            r.coverage * 100.0
        );
    }
    out
}

/// The overall rows as a text table, with a column per coverage level.
pub fn render_overall_table(rows: &[OverallRow]) -> String {
    let levels: Vec<f64> = rows
        .first()
        .map(|r| r.mean_coverage_by_level.iter().map(|c| c.0).collect())
        .unwrap_or_default();
    let mut out = format!(
        "{:<15} {:>7} {:>7} {:>9}",
        "model", "horizon", "symbols", "mean_mase"
    );
    for l in &levels {
        out += &format!(" {:>9}", format!("cov@{:.0}%", l * 100.0));
    }
    out.push('\n');
    for r in rows {
        out += &format!(
            "{:<15} {:>7} {:>7} {:>9.3}",
            r.model, r.horizon, r.symbols, r.mean_mase
        );
        for (_, c) in &r.mean_coverage_by_level {
            out += &format!(" {:>8.1}%", c * 100.0);
        }
        out.push('\n');
    }
    out
}

/// The rows as Markdown: a table of mean MASE and coverage per model and horizon over all
/// series, then for each horizon a table with a row per series and a column per model
/// (`MASE (coverage)` at the main level). Used to generate ACCURACY.md.
pub fn render_markdown(rows: &[BacktestRow]) -> String {
    let summary = overall(rows);
    let mut models: Vec<&str> = Vec::new();
    let mut horizons: Vec<usize> = Vec::new();
    let mut symbols: Vec<&str> = Vec::new();
    for r in rows {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
        if !horizons.contains(&r.horizon) {
            horizons.push(r.horizon);
        }
        if !symbols.contains(&r.symbol.as_str()) {
            symbols.push(&r.symbol);
        }
    }
    let levels: Vec<f64> = rows
        .first()
        .map(|r| r.coverage_by_level.iter().map(|c| c.0).collect())
        .unwrap_or_default();
    let days = |h: usize| {
        if h == 1 {
            "1 day".to_string()
        } else {
            format!("{h} days")
        }
    };
    let pct = |v: f64| format!("{:.0}%", v * 100.0);

    let mut out = format!("### Mean over {} series\n\n| model |", symbols.len());
    for &h in &horizons {
        out += &format!(" MASE {} |", days(h));
    }
    for &l in &levels {
        for &h in &horizons {
            out += &format!(" {} coverage {} |", pct(l), days(h));
        }
    }
    out += &format!(
        "\n|---|{}\n",
        "---:|".repeat(horizons.len() * (1 + levels.len()))
    );
    for &m in &models {
        out += &format!("| {m} |");
        let find = |h: usize| summary.iter().find(|r| r.model == m && r.horizon == h);
        for &h in &horizons {
            out += &find(h).map_or(" |".into(), |r| format!(" {:.3} |", r.mean_mase));
        }
        for li in 0..levels.len() {
            for &h in &horizons {
                out += &find(h)
                    .and_then(|r| r.mean_coverage_by_level.get(li))
                    .map_or(" |".into(), |c| format!(" {:.1}% |", c.1 * 100.0));
            }
        }
        out.push('\n');
    }
    out += "\n### Stated confidence against realised 1 - MAPE (mean over series)\n\n| model |";
    for &h in &horizons {
        out += &format!(" {} stated | {} realised |", days(h), days(h));
    }
    out += &format!("\n|---|{}\n", "---:|".repeat(2 * horizons.len()));
    out += &model_rows(&summary, &models, &horizons, " | |", |r| {
        format!(
            " {:.1}% | {:.1}% |",
            r.mean_confidence * 100.0,
            r.mean_realised_confidence * 100.0
        )
    });
    out += &format!(
        "\n### Coverage of the {} interval by volatility tercile (all series' cutoffs pooled; calm / middle / turbulent)\n\n| model |",
        levels.first().map_or(String::new(), |&l| pct(l))
    );
    for &h in &horizons {
        out += &format!(" {} |", days(h));
    }
    out += &format!("\n|---|{}\n", "---:|".repeat(horizons.len()));
    out += &model_rows(&summary, &models, &horizons, " |", |r| {
        let [a, b, c] = r.coverage_by_volatility_tercile;
        format!(" {} / {} / {} |", pct(a), pct(b), pct(c))
    });
    for &h in &horizons {
        out += &format!(
            "\n### {} ahead: MASE (coverage of the {} interval)\n\n| series | folds |",
            days(h),
            levels.first().map_or(String::new(), |&l| pct(l))
        );
        for &m in &models {
            out += &format!(" {m} |");
        }
        out += &format!("\n|---|---:|{}\n", "---:|".repeat(models.len()));
        for &sym in &symbols {
            let cells: Vec<&BacktestRow> = models
                .iter()
                .filter_map(|&m| {
                    rows.iter()
                        .find(|r| r.symbol == sym && r.model == m && r.horizon == h)
                })
                .collect();
            let n = cells.first().map_or(0, |r| r.n);
            out += &format!("| {sym} | {n} |");
            for r in cells {
                out += &format!(" {:.3} ({}) |", r.mase, pct(r.coverage));
            }
            out.push('\n');
        }
    }
    out
}

/// A Markdown table body with a row per model and a cell per horizon: `cell` of the model's
/// summary row at that horizon, `empty` where it has none.
fn model_rows(
    summary: &[OverallRow],
    models: &[&str],
    horizons: &[usize],
    empty: &str,
    cell: impl Fn(&OverallRow) -> String,
) -> String {
    let mut out = String::new();
    for &m in models {
        out += &format!("| {m} |");
        for &h in horizons {
            let row = summary.iter().find(|r| r.model == m && r.horizon == h);
            out += &row.map_or_else(|| empty.to_string(), &cell);
        }
        out.push('\n');
    }
    out
}

/// The rows as a JSON list of
/// `{"symbol","model","horizon","n","mae","mape","mase","coverage","mean_confidence"}`.
pub fn render_json(rows: &[BacktestRow]) -> String {
    // Serialising plain structs of numbers and strings cannot fail.
    serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into())
}

/// Writes an SVG chart of the last `show_history` prices of `history`, the forecast path
/// and its band to `path` ([`crate::chart::forecast_svg`]).
///
/// # Errors
/// [`BacktestError::Chart`] when drawing or writing fails (an unwritable path included).
pub fn render_chart_svg(
    path: &Path,
    title: &str,
    history: &[f64],
    forecast: &IntervalForecast,
    show_history: usize,
) -> Result<(), BacktestError> {
    let svg = crate::chart::forecast_svg(
        title,
        history,
        &forecast.path,
        forecast.level,
        &forecast.model,
        show_history,
    )
    .map_err(BacktestError::Chart)?;
    std::fs::write(path, svg).map_err(|e| BacktestError::Chart(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::tests::{small_config, wavy};
    use crate::backtest::{models_from_names, run_backtest};
    use crate::forecast::{intervals::forecast_with_intervals, theta::Theta};
    use crate::prices::Series;

    #[test]
    fn the_markdown_report_has_a_row_per_model_and_per_series() {
        let series = [
            Series {
                symbol: "W".into(),
                prices: wavy(300),
            },
            Series {
                symbol: "V".into(),
                prices: wavy(280),
            },
        ];
        let models = models_from_names(&["naive", "drift"]).unwrap();
        let rows = run_backtest(&series, &models, &small_config(), &|_| {}).unwrap();
        let md = render_markdown(&rows);
        assert!(md.contains("### Mean over 2 series"), "{md}");
        assert!(md.contains("| naive | 1.000 | 1.000 |"), "{md}");
        assert!(md.lines().any(|l| l.starts_with("| drift |")), "{md}");
        for sym in ["| W | 6 |", "| V | 6 |"] {
            // One line per horizon table.
            assert_eq!(md.lines().filter(|l| l.starts_with(sym)).count(), 2, "{md}");
        }
    }

    #[test]
    fn overall_averages_mase_and_coverage_per_model_and_horizon() {
        let row = |symbol: &str, mase: f64, coverage: f64, t: f64| BacktestRow {
            symbol: symbol.into(),
            model: "m".into(),
            horizon: 1,
            n: 1,
            mae: 0.0,
            mape: 0.1 * t,
            mase,
            coverage,
            mean_confidence: 1.0 - 0.2 * t,
            coverage_by_level: vec![(0.8, coverage)],
            // Volatilities t and t + 0.5: the pooled terciles are A's, B's and C's folds.
            fold_volatility_inside: vec![(t, t < 2.5), (t + 0.5, t < 1.5)],
        };
        let o = overall(&[
            row("A", 0.9, 0.7, 1.0),
            row("B", 1.1, 0.9, 2.0),
            row("C", f64::INFINITY, 0.8, 3.0),
        ]);
        assert!((o[0].mean_confidence - 0.6).abs() < 1e-12);
        assert!((o[0].mean_realised_confidence - 0.8).abs() < 1e-12);
        assert_eq!(o[0].coverage_by_volatility_tercile, [1.0, 0.5, 0.0]);
        assert_eq!(o.len(), 1);
        assert!((o[0].mean_mase - 1.0).abs() < 1e-12);
        assert!((o[0].mean_coverage - 0.8).abs() < 1e-12);
        assert!(render_overall_table(&o).contains("cov@80%"));
    }

    #[test]
    fn the_chart_is_an_svg_with_history_and_band() {
        let prices = wavy(200);
        let f = forecast_with_intervals(&Theta::default(), &prices, 14, 0.8).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        render_chart_svg(&path, "W", &prices, &f, 90).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("polygon") || svg.contains("<path") || svg.contains("polyline"));
    }
}
