//! The `coinsphere-ml` binary: parses the command line and runs it.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    coinsphere_ml::cli::run(coinsphere_ml::cli::Cli::parse())
}
