//! Crashes and races against the real binary and the real store: `coinsphere-ml train` killed
//! with SIGKILL at random moments of a retrain (some during the save), two trainings of one
//! symbol at once, and threads saving one model while another loads it. After each, the model
//! loads and verifies through the library (a crashed retrain leaves the previous model), and
//! opening the store leaves no temp file behind.
//!
//! Each retrain uses a different `--last`: the same prices and seed would give the same bytes,
//! and a crash during the save could not tear anything.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use coinsphere_ml::domain::{ModelVersion, Symbol};
use coinsphere_ml::store::{FsModelStore, ModelStore};

#[path = "common/models.rs"]
mod models;
use models::tiny_model;

/// The tests time runs of the binary: one test at a time, so they do not slow each other.
static SERIAL: Mutex<()> = Mutex::new(());

const KILLS_TIMED: usize = 20;
const KILLS_ON_SAVE: usize = 10;
const RACES: usize = 10;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn key() -> (Symbol, ModelVersion) {
    (
        Symbol::parse("BTC").unwrap(),
        ModelVersion::parse("v1.0.0").unwrap(),
    )
}

fn train(dir: &Path, last: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coinsphere-ml"));
    cmd.args(["train", "--symbol", "BTC", "--csv"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/prices/BTC.csv"))
        .args(["--last", &last.to_string()])
        .args(["--epochs", "1", "--training-threads", "1", "--models-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn run_to_completion(dir: &Path, last: usize) -> Duration {
    let started = Instant::now();
    let status = train(dir, last).status().unwrap();
    assert!(status.success(), "train --last {last}: {status}");
    started.elapsed()
}

/// Whether the model loads and verifies, through a freshly opened store (as a restarted
/// server would see it; opening also removes what the crash left).
fn model_loads(dir: &Path) -> bool {
    let (sym, ver) = key();
    FsModelStore::open(dir)
        .unwrap()
        .load(&sym, &ver)
        .unwrap()
        .is_some()
}

fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        })
        .count()
}

/// Names, sizes and mtimes of the directory's files.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, Option<SystemTime>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                (meta.len(), meta.modified().ok()),
            ))
        })
        .collect()
}

/// A small xorshift generator; the seed is printed so a failure can be replayed by reading it.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        println!("rng seed {seed:#x}");
        Self(seed)
    }

    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn kill(child: &mut Child) -> (bool, ExitStatus) {
    let finished_first = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    // Reaped before the store is opened: a zombie still counts as a live process.
    (finished_first, child.wait().unwrap())
}

#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    finished_before_the_kill: usize,
    in_training: usize,
    in_the_save: usize,
    after_the_commit: usize,
    models_lost: usize,
    temp_files_left_by_kills: usize,
}

impl Tally {
    /// One kill: where it landed (from what changed in the directory), and whether the model
    /// still loads.
    fn record(&mut self, dir: &Path, before: &BTreeMap<String, (u64, Option<SystemTime>)>) {
        let after = snapshot(dir);
        let sidecar = "BTC_v1.0.0.json";
        self.kills += 1;
        if after.get(sidecar) != before.get(sidecar) {
            self.after_the_commit += 1;
        } else if after != *before {
            self.in_the_save += 1;
        } else {
            self.in_training += 1;
        }
        self.temp_files_left_by_kills += temp_files(dir);
        if !model_loads(dir) {
            self.models_lost += 1;
            // Put a model back, so the next kill again has a previous model to lose.
            run_to_completion(dir, 365);
        }
    }
}

#[test]
fn a_killed_retrain_leaves_the_previous_model_or_the_new_one() {
    let _serial = serial();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut rng = Rng::new();
    let one_run = run_to_completion(dir, 365);
    assert!(model_loads(dir));
    let mut tally = Tally::default();
    let mut last = 366;

    // Killed at a uniform moment around the end of the run.
    for _ in 0..KILLS_TIMED {
        let before = snapshot(dir);
        let mut child = train(dir, last).spawn().unwrap();
        last += 1;
        std::thread::sleep(one_run.mul_f64(0.3 + 0.9 * rng.unit()));
        let (finished, status) = kill(&mut child);
        if finished {
            assert!(status.success(), "{status}");
            tally.finished_before_the_kill += 1;
        }
        tally.record(dir, &before);
    }

    // Killed within a few milliseconds of the first temp file the save writes: these land in
    // the save (the window is too short for uniform kills to hit often).
    for _ in 0..KILLS_ON_SAVE {
        let before = snapshot(dir);
        let mut child = train(dir, last).spawn().unwrap();
        last += 1;
        let deadline = Instant::now() + one_run * 10;
        let save_began = || {
            snapshot(dir)
                .keys()
                .any(|name| name.ends_with(".tmp") && !before.contains_key(name))
        };
        while !save_began() && child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no save began");
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(Duration::from_secs_f64(0.004 * rng.unit()));
        let (finished, status) = kill(&mut child);
        if finished {
            assert!(status.success(), "{status}");
            tally.finished_before_the_kill += 1;
        }
        tally.record(dir, &before);
    }

    let store = FsModelStore::open(dir).unwrap();
    let temps_after_open = temp_files(store.dir());
    println!(
        "one run {:.0} ms; {tally:?}; temp files after an open: {temps_after_open}; {:.1} s",
        one_run.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(tally.models_lost, 0, "{tally:?}");
    assert_eq!(temps_after_open, 0, "{tally:?}");
}

#[test]
fn two_trainings_of_one_symbol_at_once_leave_a_model_that_loads() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run_to_completion(dir, 365);
    let mut torn = 0;
    for round in 0..RACES {
        let last = 400 + 2 * round;
        let mut a = train(dir, last).spawn().unwrap();
        let mut b = train(dir, last + 1).spawn().unwrap();
        for child in [&mut a, &mut b] {
            let status = child.wait().unwrap();
            assert!(status.success(), "round {round}: {status}");
        }
        if !model_loads(dir) {
            torn += 1;
        }
    }
    println!("{torn} of {RACES} races tore the model");
    assert_eq!(torn, 0);
    assert_eq!(temp_files(dir), 0);
}

#[test]
fn threads_saving_one_model_never_let_a_reader_see_it_missing_or_torn() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = FsModelStore::open(dir.path()).unwrap();
    let (sym, ver) = key();
    let models: Vec<_> = (1..=2).map(tiny_model).collect();
    store.save(&sym, &ver, &models[0]).unwrap();
    let writers_done = AtomicBool::new(false);
    let mut misses = 0;
    let mut loads = 0;
    std::thread::scope(|s| {
        let writers: Vec<_> = models
            .iter()
            .map(|model| {
                let store = &store;
                let (sym, ver) = (&sym, &ver);
                s.spawn(move || {
                    for _ in 0..40 {
                        store.save(sym, ver, model).unwrap();
                    }
                })
            })
            .collect();
        s.spawn(|| {
            for w in writers {
                w.join().unwrap();
            }
            writers_done.store(true, Ordering::Relaxed);
        });
        while !writers_done.load(Ordering::Relaxed) {
            if store.load(&sym, &ver).unwrap().is_none() {
                misses += 1;
            }
            loads += 1;
        }
    });
    println!("{misses} of {loads} loads during the saves found no model");
    assert_eq!(misses, 0);
    assert!(
        store.load(&sym, &ver).unwrap().is_some(),
        "the last saves tore the model"
    );
}
