//! Every metric of the service, on the `prometheus-client` crate (the Prometheus project's Rust
//! client), exposed in the OpenMetrics text format: labelled counters and histograms, gauges
//! read at scrape time, the standard `process_*` metrics ([`process`]) and `ml_build_info`.
//!
//! Label values come from requests (symbols), so each family keeps at most
//! [`MAX_SERIES_PER_FAMILY`] label sets; later new ones are counted under the value `_other`.

pub mod process;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// One series' labels: (name, value) in the family's order.
type Labels = Vec<(&'static str, String)>;

/// A family of one metric type with fixed label names, holding at most
/// [`MAX_SERIES_PER_FAMILY`] label sets: later new ones share the set of all `_other`.
#[derive(Debug)]
pub struct BoundedFamily<M, C = fn() -> M> {
    labels: &'static [&'static str],
    family: Family<Labels, M, C>,
    /// Label sets created; two threads adding one set at once may count it twice, which only
    /// makes the bound a little tighter.
    series: AtomicUsize,
}

/// A counter family (`{name}_total`).
pub type CounterVec = BoundedFamily<Counter>;

/// A histogram family with fixed buckets.
pub type HistogramVec = BoundedFamily<Histogram>;

impl<M, C> BoundedFamily<M, C>
where
    M: prometheus_client::registry::Metric + prometheus_client::metrics::TypedMetric,
    C: MetricConstructor<M> + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    /// `family` (empty), registered in `registry`.
    fn register(
        registry: &mut Registry,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        family: Family<Labels, M, C>,
    ) -> Self {
        registry.register(name, help, family.clone());
        Self {
            labels,
            family,
            series: AtomicUsize::new(0),
        }
    }

    /// The label set of `values` (in the order of the label names).
    fn label_set(&self, values: &[&str]) -> Labels {
        debug_assert_eq!(self.labels.len(), values.len());
        self.labels
            .iter()
            .zip(values)
            .map(|(n, v)| (*n, (*v).to_owned()))
            .collect()
    }

    /// Runs `f` on the series of `values`, created if new and the family is not full.
    fn with(&self, values: &[&str], f: impl FnOnce(&M)) {
        let mut labels = self.label_set(values);
        if self.family.get(&labels).is_none()
            && self.series.fetch_add(1, Ordering::Relaxed) >= MAX_SERIES_PER_FAMILY
        {
            self.series.fetch_sub(1, Ordering::Relaxed);
            labels = self
                .labels
                .iter()
                .map(|n| (*n, "_other".to_owned()))
                .collect();
        }
        f(&self.family.get_or_create(&labels));
    }
}

impl CounterVec {
    /// Adds one to the series with these label values (in the order of the label names).
    pub fn inc(&self, values: &[&str]) {
        self.with(values, |c| {
            c.inc();
        });
    }

    /// Adds `n` to the series with these label values.
    pub fn inc_by(&self, values: &[&str], n: u64) {
        self.with(values, |c| {
            c.inc_by(n);
        });
    }

    /// The value of one series (0 if never incremented).
    pub fn get(&self, values: &[&str]) -> u64 {
        self.family
            .get(&self.label_set(values))
            .map_or(0, |c| c.get())
    }
}

impl HistogramVec {
    /// Records one observation in seconds.
    pub fn observe(&self, values: &[&str], seconds: f64) {
        self.with(values, |h| h.observe(seconds));
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

fn training_histogram() -> Histogram {
    Histogram::new(TRAINING_BUCKETS.iter().copied())
}

/// The values of the gauges, read when `/metrics` is scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GaugeValues {
    /// Models in memory.
    pub models_loaded: usize,
    /// Trainings running now.
    pub trainings_running: usize,
    /// Trainings admitted and waiting for a slot.
    pub trainings_waiting: usize,
    /// Whether the service is ready for traffic.
    pub ready: bool,
    /// Seconds since start-up.
    pub uptime_seconds: f64,
}

#[derive(Debug, Default)]
struct Gauges {
    models_loaded: Gauge<f64, AtomicU64>,
    trainings_running: Gauge<f64, AtomicU64>,
    trainings_waiting: Gauge<f64, AtomicU64>,
    ready: Gauge<f64, AtomicU64>,
    uptime_seconds: Gauge<f64, AtomicU64>,
}

/// What `ml_build_info` states about the running binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// The crate's version.
    pub version: &'static str,
    /// `release` or `debug`.
    pub profile: &'static str,
    /// What cached LSTM forecasts run on (`int16-avx512vnni`, `int16-avx2`, `f32-avx2`, `f32-scalar`).
    pub lstm_kernel: &'static str,
    /// Where models are stored: `filesystem`, `postgres` or `postgres+s3`.
    pub store: &'static str,
    /// This process's replica id (`REPLICA_ID`).
    pub replica: String,
}

impl BuildInfo {
    /// This binary, forecasting on `lstm_kernel`.
    pub fn current(lstm_kernel: &'static str) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            lstm_kernel,
            store: "filesystem",
            replica: String::new(),
        }
    }
}

/// Every metric of the service. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    gauges: Gauges,
    /// `ml_predictions_total{symbol,model,outcome}`: symbol is the symbol when it has a model
    /// in memory (else `other`), model the model asked for, outcome `ok` or an error code.
    pub predictions: CounterVec,
    /// `ml_prediction_duration_seconds{model}`: time to answer one prediction (training
    /// included).
    pub prediction_seconds: HistogramVec,
    /// `ml_trainings_total{kind,outcome}`: kind `train` or `fine_tune`; outcome `ok`,
    /// `failed`, `rejected` (training queue full) or `abandoned`.
    pub trainings: CounterVec,
    /// `ml_training_duration_seconds{kind}`.
    pub training_seconds: HistogramVec,
    /// `ml_model_cache_requests_total{result}`: result `hit` or `miss`.
    pub cache: CounterVec,
    /// `ml_http_requests_total{method,route,status}`: route is the route template.
    pub http_requests: CounterVec,
    /// `ml_http_request_duration_seconds{route}`.
    pub http_seconds: HistogramVec,
    /// `ml_store_events_total{event}`: changes of shared models seen from other replicas
    /// (`published`, `purged`, `resync`), models reloaded after one (`reloaded`), and waits
    /// for another replica's training of a symbol (`lock_wait`).
    pub store_events: CounterVec,
    /// `ml_model_generation{symbol}`: the generation of each model in memory (stores that
    /// number them); a symbol's series goes when its model leaves memory.
    pub generations: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    /// `ml_prediction_log_total{outcome}`: served forecasts `written` to the prediction log,
    /// dropped because its queue was full (`dropped_queue_full`) or after failed writes
    /// (`dropped_write_failed`), and failed write attempts (`write_error`).
    pub prediction_log: CounterVec,
    /// `ml_price_reads_total{source}`: closes by symbol answered from the `cache` or read from
    /// the `database`.
    pub price_reads: CounterVec,
    /// `ml_stats_cache_requests_total{result}`: statistical forecasts answered from memory
    /// (`hit`) or fitted (`miss`).
    pub stats_cache: CounterVec,
    /// `ml_stats_path_cache_requests_total{result}`: a model's rolling calibration paths taken
    /// from memory (`hit`) or computed (`miss`).
    pub stats_paths: CounterVec,
    /// `ml_stats_path_cache_bytes`: what the rolling paths kept in memory hold.
    pub stats_path_bytes: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Empty metrics of a binary described by `build`.
    pub fn new(build: &BuildInfo) -> Self {
        let mut registry = Registry::default();
        let gauges = Gauges::default();
        for (name, help, gauge) in [
            (
                "ml_models_loaded",
                "Models in memory.",
                &gauges.models_loaded,
            ),
            (
                "ml_trainings_running",
                "Trainings running now.",
                &gauges.trainings_running,
            ),
            (
                "ml_trainings_waiting",
                "Trainings admitted and waiting for a slot.",
                &gauges.trainings_waiting,
            ),
            (
                "ml_ready",
                "1 when the service is ready for traffic.",
                &gauges.ready,
            ),
            (
                "ml_uptime_seconds",
                "Seconds since start-up.",
                &gauges.uptime_seconds,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "ml_build",
            "The running binary: version, build profile and LSTM kernel.",
            Info::new(vec![
                ("version", build.version),
                ("profile", build.profile),
                ("lstm_kernel", build.lstm_kernel),
            ]),
        );
        registry.register(
            "ml_store",
            "Where models are stored, and this replica's id.",
            Info::new(vec![
                ("kind", build.store.to_owned()),
                ("replica", build.replica.clone()),
            ]),
        );
        let store_events = CounterVec::register(
            &mut registry,
            "ml_store_events",
            "Changes of shared models from other replicas, reloads after them, and waits for another replica's training.",
            &["event"],
            Family::default(),
        );
        let generations = Family::default();
        registry.register(
            "ml_model_generation",
            "Generation of each model in memory, as published in the shared store.",
            generations.clone(),
        );
        let predictions = CounterVec::register(
            &mut registry,
            "ml_predictions",
            "Predictions answered, by symbol (with a model in memory, else other), model asked for and outcome.",
            &["symbol", "model", "outcome"],
            Family::default(),
        );
        let prediction_seconds = HistogramVec::register(
            &mut registry,
            "ml_prediction_duration_seconds",
            "Time to answer one prediction, including any loading or training, by model asked for.",
            &["model"],
            Family::new_with_constructor(latency_histogram),
        );
        let trainings = CounterVec::register(
            &mut registry,
            "ml_trainings",
            "Trainings and fine-tunings, by kind and outcome.",
            &["kind", "outcome"],
            Family::default(),
        );
        let training_seconds = HistogramVec::register(
            &mut registry,
            "ml_training_duration_seconds",
            "Duration of finished trainings and fine-tunings.",
            &["kind"],
            Family::new_with_constructor(training_histogram),
        );
        let cache = CounterVec::register(
            &mut registry,
            "ml_model_cache_requests",
            "Model look-ups answered from memory (hit) or not (miss).",
            &["result"],
            Family::default(),
        );
        let http_requests = CounterVec::register(
            &mut registry,
            "ml_http_requests",
            "HTTP requests, by method, route template and status.",
            &["method", "route", "status"],
            Family::default(),
        );
        let http_seconds = HistogramVec::register(
            &mut registry,
            "ml_http_request_duration_seconds",
            "HTTP request duration, by route template.",
            &["route"],
            Family::new_with_constructor(latency_histogram),
        );
        let prediction_log = CounterVec::register(
            &mut registry,
            "ml_prediction_log",
            "Served forecasts written to the prediction log or dropped (queue full, writes failed), and failed write attempts.",
            &["outcome"],
            Family::default(),
        );
        let price_reads = CounterVec::register(
            &mut registry,
            "ml_price_reads",
            "Closes by symbol answered from the cache or read from the database.",
            &["source"],
            Family::default(),
        );
        let stats_cache = CounterVec::register(
            &mut registry,
            "ml_stats_cache_requests",
            "Statistical forecasts of a request answered before, from memory (hit), or fitted (miss).",
            &["result"],
            Family::default(),
        );
        let stats_paths = CounterVec::register(
            &mut registry,
            "ml_stats_path_cache_requests",
            "A statistical model's rolling calibration paths taken from memory (hit) or computed (miss).",
            &["result"],
            Family::default(),
        );
        let stats_path_bytes = Gauge::default();
        registry.register(
            "ml_stats_path_cache_bytes",
            "Bytes of rolling calibration paths kept in memory.",
            stats_path_bytes.clone(),
        );
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        Self {
            registry,
            gauges,
            predictions,
            prediction_seconds,
            trainings,
            training_seconds,
            cache,
            http_requests,
            http_seconds,
            store_events,
            generations,
            prediction_log,
            price_reads,
            stats_cache,
            stats_paths,
            stats_path_bytes,
        }
    }

    /// Sets (`Some`) or removes (`None`) the generation served for `symbol`.
    pub fn set_generation(&self, symbol: &str, generation: Option<u64>) {
        let labels = vec![("symbol".to_owned(), symbol.to_owned())];
        match generation {
            Some(g) => {
                self.generations.get_or_create(&labels).set(g as f64);
            }
            None => {
                self.generations.remove(&labels);
            }
        }
    }

    /// Records a finished training of `kind` (`train`, `fine_tune`).
    pub fn training_finished(&self, kind: &str, ok: bool, duration: Duration) {
        let outcome = if ok { "ok" } else { "failed" };
        self.trainings.inc(&[kind, outcome]);
        self.training_seconds
            .observe(&[kind], duration.as_secs_f64());
    }

    /// The OpenMetrics text of every metric, with the gauges at `values`.
    pub fn render(&self, values: GaugeValues) -> String {
        let g = &self.gauges;
        g.models_loaded.set(values.models_loaded as f64);
        g.trainings_running.set(values.trainings_running as f64);
        g.trainings_waiting.set(values.trainings_waiting as f64);
        g.ready.set(if values.ready { 1.0 } else { 0.0 });
        g.uptime_seconds.set(values.uptime_seconds);
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(&BuildInfo::current("f32-scalar"))
    }

    /// One parsed sample: name, sorted labels, value (NaN for histogram and summary lines).
    type Sample = (String, Vec<(String, String)>, f64);

    /// The text through a real Prometheus text parser.
    fn parse(text: &str) -> Vec<Sample> {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");
        scrape
            .samples
            .into_iter()
            .map(|s| {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => {
                        f64::NAN
                    }
                };
                let mut labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.sort();
                (s.metric, labels, value)
            })
            .collect()
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|s| s.2)
    }

    #[test]
    fn counters_parse_back_with_escaped_labels() {
        let m = metrics();
        m.predictions.inc(&["BTC", "lstm", "ok"]);
        m.predictions.inc(&["BTC", "lstm", "ok"]);
        m.predictions.inc(&["a\"b", "naive", "no_model"]);
        let text = m.render(GaugeValues::default());
        assert!(text.contains("# TYPE ml_predictions counter"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let samples = parse(&text);
        let ok = [("symbol", "BTC"), ("model", "lstm"), ("outcome", "ok")];
        assert_eq!(value(&samples, "ml_predictions_total", &ok), Some(2.0));
        assert!(text.contains(r#"symbol="a\"b""#), "{text}");
        assert_eq!(m.predictions.get(&["BTC", "lstm", "ok"]), 2);
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_inf_sum_and_count() {
        let m = metrics();
        for s in [0.0005, 0.002, 4.0] {
            m.http_seconds.observe(&["/predict"], s);
        }
        let text = m.render(GaugeValues::default());
        let bucket = |le: &str| {
            format!(r#"ml_http_request_duration_seconds_bucket{{le="{le}",route="/predict"}} "#)
        };
        for (le, n) in [("0.001", 1), ("0.0025", 2), ("+Inf", 3)] {
            assert!(
                text.contains(&format!("{}{n}\n", bucket(le))),
                "{le}: {text}"
            );
        }
        assert!(text.contains("ml_http_request_duration_seconds_count{route=\"/predict\"} 3\n"));
    }

    #[test]
    fn label_sets_are_bounded() {
        let m = metrics();
        for i in 0..MAX_SERIES_PER_FAMILY + 5 {
            m.cache.inc(&[&format!("S{i}")]);
        }
        assert_eq!(m.cache.get(&["_other"]), 5);
        assert_eq!(
            m.cache.get(&[&format!("S{}", MAX_SERIES_PER_FAMILY - 1)]),
            1
        );
        assert_eq!(m.cache.get(&[&format!("S{MAX_SERIES_PER_FAMILY}")]), 0);
        m.cache.inc(&["S0"]);
        assert_eq!(m.cache.get(&["S0"]), 2, "a known set still counts");
    }

    #[test]
    fn gauges_build_info_and_process_metrics_are_exposed() {
        let text = metrics().render(GaugeValues {
            models_loaded: 3,
            ready: true,
            ..GaugeValues::default()
        });
        let samples = parse(&text);
        assert_eq!(value(&samples, "ml_models_loaded", &[]), Some(3.0));
        assert_eq!(value(&samples, "ml_ready", &[]), Some(1.0));
        let build = samples
            .iter()
            .find(|s| s.0 == "ml_build_info")
            .expect("ml_build_info");
        assert!(
            build
                .1
                .contains(&("lstm_kernel".into(), "f32-scalar".into())),
            "{build:?}"
        );
        assert!(build
            .1
            .contains(&("version".into(), env!("CARGO_PKG_VERSION").into())));
        if cfg!(target_os = "linux") {
            for name in [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_start_time_seconds",
                "process_threads",
            ] {
                let v = value(&samples, name, &[]).unwrap_or_else(|| panic!("{name} in {text}"));
                assert!(v.is_finite() && v >= 0.0, "{name} {v}");
            }
            assert!(value(&samples, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
        }
    }
}
