//! Price files: the one reader of the daily closes that every subcommand, test and benchmark
//! takes (`date,...,close,...` CSV, header required, the `close` column found by name), on the
//! `csv` crate.

use std::path::{Path, PathBuf};

/// A named price series (oldest first).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The symbol (for a CSV, its file name without extension).
    pub symbol: String,
    /// Prices, each finite and > 0.
    pub prices: Vec<f64>,
}

/// Why a price file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is malformed.
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Reads the `close` column of the CSV at `path`; the symbol is the file name without
/// extension.
///
/// # Errors
/// [`CsvError::Io`], and [`CsvError::Malformed`] for an empty file, a missing `close` column or
/// a close that is not a finite number > 0 (with its line).
pub fn read_csv(path: &Path) -> Result<Series, CsvError> {
    let prices = read_rows(path)?
        .into_iter()
        .map(|(_, close)| close)
        .collect();
    let symbol = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Series { symbol, prices })
}

/// The symbol (file name without extension) and the (first column, close) of each row of the
/// CSV at `path`, for `coinsphere-ml import`: the first column is the date.
///
/// # Errors
/// As [`read_csv`].
pub fn read_dated_csv(path: &Path) -> Result<(String, Vec<(String, f64)>), CsvError> {
    let rows = read_rows(path)?;
    let symbol = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((symbol, rows))
}

/// The (first column, close) of each row of the CSV at `path`; the first column is the date in
/// the repository's files.
fn read_rows(path: &Path) -> Result<Vec<(String, f64)>, CsvError> {
    let file = std::fs::File::open(path).map_err(|source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let malformed = |line: u64, message: String| CsvError::Malformed {
        path: path.to_path_buf(),
        line: usize::try_from(line).unwrap_or(usize::MAX),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file);
    let header = reader
        .headers()
        .map_err(|e| malformed(1, e.to_string()))?
        .clone();
    if header.iter().all(str::is_empty) {
        return Err(malformed(1, "empty file".into()));
    }
    let close = header
        .iter()
        .position(|c| c.eq_ignore_ascii_case("close"))
        .ok_or_else(|| malformed(1, "no `close` column in the header".into()))?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            malformed(line, e.to_string())
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let field = record.get(close).unwrap_or("");
        match field.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => {
                rows.push((record.get(0).unwrap_or("").to_owned(), v))
            }
            _ => {
                return Err(malformed(
                    line,
                    format!("close {field:?} is not a number > 0"),
                ))
            }
        }
    }
    Ok(rows)
}

/// The repository's price file of `symbol`.
fn repository_file(symbol: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/prices")
        .join(format!("{symbol}.csv"))
}

/// The closes of the repository's price file for `symbol` (`data/prices/{symbol}.csv`), for
/// tests and benchmarks that run from the crate root.
///
/// # Panics
/// When the file is missing or malformed.
pub fn repository_closes(symbol: &str) -> Vec<f64> {
    match read_csv(&repository_file(symbol)) {
        Ok(series) => series.prices,
        Err(e) => panic!("{e}"),
    }
}

/// The last `n` closes of the repository's price file for `symbol`.
///
/// # Panics
/// When the file is missing, malformed or shorter than `n`.
pub fn repository_last_closes(symbol: &str, n: usize) -> Vec<f64> {
    let closes = repository_closes(symbol);
    closes[closes.len() - n..].to_vec()
}

/// `n` closes of the repository's price file for `symbol` from the day `start` (`YYYY-MM-DD`)
/// on.
///
/// # Panics
/// When the file is missing or malformed, or has fewer than `n` rows from `start` on.
pub fn repository_closes_from(symbol: &str, start: &str, n: usize) -> Vec<f64> {
    let rows = read_rows(&repository_file(symbol)).unwrap_or_else(|e| panic!("{e}"));
    let closes: Vec<f64> = rows
        .into_iter()
        .filter(|(day, _)| day.as_str() >= start)
        .take(n)
        .map(|(_, close)| close)
        .collect();
    assert_eq!(closes.len(), n, "{symbol} from {start}");
    closes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_reader_takes_the_close_column_and_the_file_stem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ABC.csv");
        std::fs::write(&path, "date,open,close\n2024-01-01,1,2.5\n2024-01-02,2,3\n").unwrap();
        let s = read_csv(&path).unwrap();
        assert_eq!(s.symbol, "ABC");
        assert_eq!(s.prices, vec![2.5, 3.0]);
        std::fs::write(&path, "date,close\n2024-01-01,x\n").unwrap();
        assert!(matches!(
            read_csv(&path),
            Err(CsvError::Malformed { line: 2, .. })
        ));
        std::fs::write(&path, "date,open\n2024-01-01,1\n").unwrap();
        assert!(matches!(
            read_csv(&path),
            Err(CsvError::Malformed { line: 1, .. })
        ));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(
            read_csv(&path),
            Err(CsvError::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn the_real_csv_files_parse() {
        let s = read_csv(Path::new("data/prices/BTC.csv")).unwrap();
        assert_eq!(s.symbol, "BTC");
        assert!(s.prices.len() > 3000);
        assert_eq!(repository_closes("BTC"), s.prices);
        assert_eq!(
            repository_last_closes("BTC", 3),
            s.prices[s.prices.len() - 3..]
        );
        assert_eq!(
            repository_closes_from("BTC", "2017-08-18", 2),
            s.prices[1..3]
        );
    }
}
