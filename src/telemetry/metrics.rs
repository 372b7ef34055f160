//! A small Prometheus registry: labelled counters and histograms behind one mutex per family,
//! rendered in the text exposition format (version 0.0.4). Hand-written because the service
//! needs a dozen series, not a metrics framework.
//!
//! Label values come from requests (symbols), so each family keeps at most
//! [`MAX_SERIES_PER_FAMILY`] label sets; later new ones are counted under the value `_other`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Most label sets one family keeps before new ones fold into `_other`.
pub const MAX_SERIES_PER_FAMILY: usize = 1000;

/// Buckets of request and prediction latencies, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets of training durations, in seconds.
pub const TRAINING_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A counter family with fixed label names.
#[derive(Debug)]
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterVec {
    /// An empty family.
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds one to the series with these label values (in the order of the label names).
    pub fn inc(&self, values: &[&str]) {
        debug_assert_eq!(values.len(), self.labels.len());
        let mut series = lock(&self.series);
        let key = bounded_key(&series, values);
        *series.entry(key).or_insert(0) += 1;
    }

    /// The value of one series (0 if never incremented).
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.series).get(&key).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (values, n) in lock(&self.series).iter() {
            let _ = writeln!(
                out,
                "{}{} {n}",
                self.name,
                labels(self.labels, values, None)
            );
        }
    }
}

#[derive(Clone, Debug)]
struct HistogramData {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram family with fixed buckets and label names.
#[derive(Debug)]
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    series: Mutex<BTreeMap<Vec<String>, HistogramData>>,
}

impl HistogramVec {
    /// An empty family.
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            buckets,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation in seconds.
    pub fn observe(&self, values: &[&str], seconds: f64) {
        let mut series = lock(&self.series);
        let key = bounded_key(&series, values);
        let data = series.entry(key).or_insert_with(|| HistogramData {
            counts: vec![0; self.buckets.len()],
            sum: 0.0,
            count: 0,
        });
        if let Some(i) = self.buckets.iter().position(|&b| seconds <= b) {
            data.counts[i] += 1;
        }
        data.sum += seconds;
        data.count += 1;
    }

    /// Observations recorded in one series.
    pub fn count(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.series).get(&key).map_or(0, |d| d.count)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (values, d) in lock(&self.series).iter() {
            let mut cumulative = 0;
            for (bound, n) in self.buckets.iter().zip(&d.counts) {
                cumulative += n;
                let le = format!("{bound}");
                let _ = writeln!(
                    out,
                    "{}_bucket{} {cumulative}",
                    self.name,
                    labels(self.labels, values, Some(&le))
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                self.name,
                labels(self.labels, values, Some("+Inf")),
                d.count
            );
            let l = labels(self.labels, values, None);
            let _ = writeln!(out, "{}_sum{l} {}", self.name, d.sum);
            let _ = writeln!(out, "{}_count{l} {}", self.name, d.count);
        }
    }
}

fn bounded_key<V>(series: &BTreeMap<Vec<String>, V>, values: &[&str]) -> Vec<String> {
    let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    if series.len() >= MAX_SERIES_PER_FAMILY && !series.contains_key(&key) {
        vec!["_other".to_owned(); values.len()]
    } else {
        key
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `{a="x",b="y"}` (empty when there are no labels), with an optional `le`.
fn labels(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A gauge value read at scrape time.
#[derive(Clone, Copy, Debug)]
pub struct Gauge {
    /// Metric name.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Current value.
    pub value: f64,
}

/// Every metric of the service. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    /// `ml_predictions_total{model,outcome}`: model is the symbol, outcome `ok` or an error code.
    pub predictions: CounterVec,
    /// `ml_prediction_duration_seconds`: time to answer one prediction (training included).
    pub prediction_seconds: HistogramVec,
    /// `ml_trainings_total{kind,outcome}`: kind `train` or `fine_tune`; outcome `ok`,
    /// `failed` or `rejected` (training queue full).
    pub trainings: CounterVec,
    /// `ml_training_duration_seconds{kind}`.
    pub training_seconds: HistogramVec,
    /// `ml_model_cache_requests_total{result}`: result `hit` or `miss`.
    pub cache: CounterVec,
    /// `ml_http_requests_total{method,route,status}`: route is the route template.
    pub http_requests: CounterVec,
    /// `ml_http_request_duration_seconds{route}`.
    pub http_seconds: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self {
            predictions: CounterVec::new(
                "ml_predictions_total",
                "Predictions answered, by model (symbol) and outcome.",
                &["model", "outcome"],
            ),
            prediction_seconds: HistogramVec::new(
                "ml_prediction_duration_seconds",
                "Time to answer one prediction, including any loading or training.",
                &[],
                LATENCY_BUCKETS,
            ),
            trainings: CounterVec::new(
                "ml_trainings_total",
                "Trainings and fine-tunings, by kind and outcome.",
                &["kind", "outcome"],
            ),
            training_seconds: HistogramVec::new(
                "ml_training_duration_seconds",
                "Duration of finished trainings and fine-tunings.",
                &["kind"],
                TRAINING_BUCKETS,
            ),
            cache: CounterVec::new(
                "ml_model_cache_requests_total",
                "Model look-ups answered from memory (hit) or not (miss).",
                &["result"],
            ),
            http_requests: CounterVec::new(
                "ml_http_requests_total",
                "HTTP requests, by method, route template and status.",
                &["method", "route", "status"],
            ),
            http_seconds: HistogramVec::new(
                "ml_http_request_duration_seconds",
                "HTTP request duration, by route template.",
                &["route"],
                LATENCY_BUCKETS,
            ),
        }
    }

    /// Records a finished training of `kind` (`train`, `fine_tune`).
    pub fn training_finished(&self, kind: &str, ok: bool, duration: Duration) {
        let outcome = if ok { "ok" } else { "failed" };
        self.trainings.inc(&[kind, outcome]);
        self.training_seconds
            .observe(&[kind], duration.as_secs_f64());
    }

    /// The text exposition of every family plus `gauges`.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::with_capacity(8 * 1024);
        for g in gauges {
            header(&mut out, g.name, g.help, "gauge");
            let _ = writeln!(out, "{} {}", g.name, g.value);
        }
        self.predictions.render(&mut out);
        self.prediction_seconds.render(&mut out);
        self.trainings.render(&mut out);
        self.training_seconds.render(&mut out);
        self.cache.render(&mut out);
        self.http_requests.render(&mut out);
        self.http_seconds.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_escaped_labels() {
        let m = Metrics::new();
        m.predictions.inc(&["BTC", "ok"]);
        m.predictions.inc(&["BTC", "ok"]);
        m.predictions.inc(&["a\"b", "no_model"]);
        let text = m.render(&[]);
        assert!(text.contains("# TYPE ml_predictions_total counter"));
        assert!(text.contains("ml_predictions_total{model=\"BTC\",outcome=\"ok\"} 2\n"));
        assert!(text.contains("ml_predictions_total{model=\"a\\\"b\",outcome=\"no_model\"} 1\n"));
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_inf_sum_and_count() {
        let h = HistogramVec::new("t_seconds", "help", &[], &[0.1, 1.0]);
        h.observe(&[], 0.25);
        h.observe(&[], 0.5);
        h.observe(&[], 4.0);
        let mut text = String::new();
        h.render(&mut text);
        assert!(text.contains("t_seconds_bucket{le=\"0.1\"} 0\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_seconds_sum 4.75\n"), "{text}");
        assert!(text.contains("t_seconds_count 3\n"), "{text}");
    }

    #[test]
    fn label_sets_are_bounded() {
        let c = CounterVec::new("c_total", "help", &["model"]);
        for i in 0..MAX_SERIES_PER_FAMILY + 5 {
            c.inc(&[&format!("S{i}")]);
        }
        assert_eq!(lock(&c.series).len(), MAX_SERIES_PER_FAMILY + 1);
        assert_eq!(c.get(&["_other"]), 5);
    }

    #[test]
    fn gauges_come_first_with_their_type() {
        let text = Metrics::new().render(&[Gauge {
            name: "ml_models_loaded",
            help: "Models in memory.",
            value: 3.0,
        }]);
        assert!(text.starts_with("# HELP ml_models_loaded Models in memory.\n# TYPE ml_models_loaded gauge\nml_models_loaded 3\n"));
    }
}
