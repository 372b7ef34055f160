//! `coinsphere-ml import --csv FILE...`: daily closes into the database's `prices` table, the
//! symbol from each file's name (`BTC.csv` is BTC), the day from its first column. A day
//! already stored takes the file's close, so importing a file twice changes nothing; every
//! replica drops its cached closes of the symbol.

use std::path::PathBuf;

use anyhow::Context;

use crate::domain::Symbol;
use crate::prices::read_dated_csv;
use crate::settings::Secret;
use crate::store::postgres::{PgModelStore, SchemaName, DEFAULT_SCHEMA};
use crate::store::prices::{import, parse_day, Day};

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// CSV files with a header, the date (`YYYY-MM-DD`) in the first column and a `close`
    /// column.
    #[arg(long, num_args = 1.., required = true)]
    pub csv: Vec<PathBuf>,
    /// PostgreSQL URL (never printed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    /// The database schema the service owns.
    #[arg(long, env = "DATABASE_SCHEMA", default_value = DEFAULT_SCHEMA)]
    pub database_schema: SchemaName,
}

/// Imports every file, one transaction each.
///
/// # Errors
/// A file that does not read (named, with its line), or the database refusing the rows.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    // Connecting also applies the migrations, so a fresh database gets its tables.
    let store = PgModelStore::connect(
        args.database_url.expose(),
        args.database_schema.clone(),
        "import",
        None,
    )
    .context("cannot open the database")?;
    let db = store.database();
    for path in &args.csv {
        let (name, rows) = read_dated_csv(path)?;
        let symbol = Symbol::parse(&name).map_err(|e| {
            anyhow::anyhow!("{}: the file name is not a symbol: {e}", path.display())
        })?;
        let days = rows
            .iter()
            .enumerate()
            .map(|(i, (day, close))| {
                parse_day(day).map(|d| (d, *close)).with_context(|| {
                    format!(
                        "{}:{}: {day:?} is not a date YYYY-MM-DD",
                        path.display(),
                        i + 2
                    )
                })
            })
            .collect::<anyhow::Result<Vec<(Day, f64)>>>()?;
        let written = import(&db, &symbol, &days)
            .with_context(|| format!("cannot import {}", path.display()))?;
        println!("{symbol}: {written} closes from {}", path.display());
    }
    Ok(())
}
