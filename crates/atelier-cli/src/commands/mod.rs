//! Dispatch from the parsed command line to one module per subcommand.

mod backbone;
mod check;
mod demo;
mod facets;
mod import;
mod synth;
mod weights;

use atelier_catalog::Catalog;

use crate::args::{Cli, Command};
use crate::error::CliResult;

pub async fn run(cli: &Cli) -> CliResult {
    let global = &cli.global;
    match &cli.command {
        Command::Synth(args) => synth::run(args, global.json).await,
        Command::Import(args) => {
            import::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Check(args) => {
            check::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Facets(args) => {
            facets::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Summary => {
            facets::summary(&open_catalog(global.db_url()).await?, global.json).await
        }
        Command::Demo(args) => demo::run(args, global).await,
        Command::Weights(args) => weights::run(args, global.json),
        Command::Backbone(args) => backbone::run(args, global.json).await,
    }
}

pub async fn open_catalog(url: &str) -> CliResult<Catalog> {
    Ok(Catalog::open(url).await?)
}
