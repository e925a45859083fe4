//! Dispatch from the parsed command line to one module per subcommand.

mod backbone;
mod boxes;
mod check;
mod crowd;
mod demo;
mod devices;
mod duplicates;
mod eval;
mod facets;
mod images;
mod import;
mod jobs;
mod mistags;
mod models;
mod retrain;
mod serve;
mod similar;
mod similarity;
mod synth;
mod tag;
pub mod train;
mod users;
mod weights;

use atelier_catalog::Catalog;

use crate::args::{Cli, Command, GlobalArgs, TrainWhat};
use crate::error::CliResult;

pub async fn run(cli: &Cli) -> CliResult {
    let global = &cli.global;
    configure_images(global);
    atelier_app::checkpoint_mirror::configure(&global.store);
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
        Command::Devices => devices::run(global.json),
        Command::Backbone(args) => backbone::run(args, global.json).await,
        Command::Train(args) => match &args.what {
            TrainWhat::Facets(facets) => {
                train::run(&open_catalog(global.db_url()).await?, facets, global).await
            }
            TrainWhat::Similarity(args) => similarity::run(args, global).await,
        },
        Command::Images(args) => {
            images::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Similar(args) => {
            let catalog = open_catalog(global.db_url()).await?;
            similar::run(&catalog, global.db_url(), args, global.json).await
        }
        Command::Crop(args) => {
            similar::crop(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Duplicates(args) => {
            let catalog = open_catalog(global.db_url()).await?;
            duplicates::run(&catalog, global.db_url(), args, global.json).await
        }
        Command::Boxes(args) => {
            boxes::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Index(args) => {
            let catalog = open_catalog(global.db_url()).await?;
            similar::index(&catalog, global.db_url(), args, global.json).await
        }
        Command::Retrain(args) => {
            retrain::run(&open_catalog(global.db_url()).await?, args, global).await
        }
        Command::Mistags(args) => {
            mistags::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Runs => eval::list(&open_catalog(global.db_url()).await?, global.json).await,
        Command::Eval(args) => {
            eval::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Tag(args) => tag::run(args, global).await,
        Command::Models(args) => models::run(args, global).await,
        Command::Serve(args) => {
            serve::run(open_catalog(global.db_url()).await?, args, global).await
        }
        Command::Users(args) => {
            users::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Worker(args) => {
            jobs::worker(&open_catalog(global.db_url()).await?, args, global).await
        }
        Command::Jobs(args) => {
            jobs::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
        Command::Crowd(args) => {
            crowd::run(&open_catalog(global.db_url()).await?, args, global.json).await
        }
    }
}

/// Every use case reads catalogue images through one resolver with the global options' cache.
fn configure_images(global: &GlobalArgs) {
    let mut settings = atelier_store::images::ImageSettings {
        cache_size: global.cache_size,
        ..Default::default()
    };
    if let Some(dir) = &global.image_cache {
        settings.cache_dir = dir.clone();
    }
    atelier_app::images::configure(settings);
}

pub async fn open_catalog(url: &str) -> CliResult<Catalog> {
    Ok(Catalog::open(url).await?)
}
