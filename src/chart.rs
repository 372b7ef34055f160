//! An SVG picture of a forecast: the recent history, the forecast path and its band. Drawn by
//! `plotters` into a string, so the CLI writes it to a file and `POST /predict?format=svg`
//! answers it.

use crate::forecast::intervals::PathPoint;

/// Days of history drawn before the forecast.
pub const SHOWN_HISTORY: usize = 180;

/// The SVG of the last `show_history` prices of `history`, then `path` with its band at
/// `level`; `label` names the model in the legend.
///
/// # Errors
/// What drawing reported, as text.
pub fn forecast_svg(
    title: &str,
    history: &[f64],
    path: &[PathPoint],
    level: f64,
    label: &str,
    show_history: usize,
) -> Result<String, String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let shown = &history[history.len().saturating_sub(show_history)..];
    let last = shown.last().copied().unwrap_or(1.0);
    let x0 = -(shown.len() as i64) + 1;
    let x1 = path.len() as i64;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in shown
        .iter()
        .copied()
        .chain(path.iter().flat_map(|p| [p.lower, p.upper]))
        .filter(|v| v.is_finite())
    {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        (lo, hi) = (last * 0.9, last * 1.1);
    }
    let pad = (hi - lo) * 0.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(80)
            .build_cartesian_2d(x0.min(0)..x1.max(1), (lo - pad)..(hi + pad))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("days from the last price")
            .y_desc("price")
            .draw()
            .map_err(|e| err(&e))?;
        let band: Vec<(i64, f64)> = std::iter::once((0, last))
            .chain(path.iter().map(|p| (p.day as i64, p.upper)))
            .chain(path.iter().rev().map(|p| (p.day as i64, p.lower)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.2))))
            .map_err(|e| err(&e))?
            .label(format!("{:.0}% interval", level * 100.0))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.mix(0.2).filled()));
        chart
            .draw_series(LineSeries::new(
                shown.iter().enumerate().map(|(i, &p)| (x0 + i as i64, p)),
                &BLACK,
            ))
            .map_err(|e| err(&e))?
            .label("history")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLACK));
        chart
            .draw_series(LineSeries::new(
                std::iter::once((0, last)).chain(path.iter().map(|p| (p.day as i64, p.price))),
                &BLUE,
            ))
            .map_err(|e| err(&e))?
            .label(format!("forecast ({label})"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLUE));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_is_an_svg_with_history_path_band_and_label() {
        let history: Vec<f64> = (0..300).map(|i| 100.0 + f64::from(i % 17)).collect();
        let path: Vec<PathPoint> = (1..=7)
            .map(|d| PathPoint {
                day: d,
                price: 110.0,
                lower: 100.0,
                upper: 120.0,
            })
            .collect();
        let svg = forecast_svg("BTC", &history, &path, 0.8, "lstm(shrunk 0.30)", 180).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(svg.contains("<polygon") || svg.contains("<path"));
        assert!(svg.contains("lstm(shrunk 0.30)") && svg.contains("80% interval"));
        // A degenerate band (infinite upper end) still draws.
        let mut wild = path.clone();
        wild[0].upper = f64::INFINITY;
        assert!(forecast_svg("X", &history[..60], &wild, 0.95, "naive", 180).is_ok());
    }
}
