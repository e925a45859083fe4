//! `atelier train similarity`: builds the run's configuration (defaults or `--config`, with the
//! options on top), lets `atelier_app::similarity` record and train the run, prints the table
//! of held-out numbers and publishes the model when asked.

use atelier_app::similarity::{create_similarity_run, execute_similarity_run};
use atelier_train::similarity_run::SimilarityRunConfig;
use serde_json::json;

use crate::args::{GlobalArgs, TrainSimilarityArgs};
use crate::commands::open_catalog;
use crate::commands::train::{CliObserver, read_config, run_paths};
use crate::error::{CliError, CliResult};
use crate::output::print_json;
use crate::progress::TrainProgress;

pub async fn run(args: &TrainSimilarityArgs, global: &GlobalArgs) -> CliResult {
    let config = configure(args)?;
    if args.print_config {
        return print_json(&config);
    }
    let catalog = open_catalog(global.db_url()).await?;
    let paths = run_paths(&args.checkpoint_dir, &global.store)?;
    if !args.queue {
        crate::commands::train::check_device(config.device)?;
    }
    let run = create_similarity_run(&catalog, &config, &paths, args.publish.as_deref()).await?;
    if args.queue {
        let job = atelier_app::jobs::queue_run(&catalog, run, "cli").await?;
        return crate::commands::jobs::print_queued(job, Some(run), global.json);
    }
    let observer = Box::new(CliObserver::new(
        TrainProgress::new(global.json),
        global.json,
    ));
    let finished = execute_similarity_run(&catalog, run, &paths, observer).await?;
    let published = match finished.published {
        Some(Ok(model)) => Some(model),
        Some(Err(error)) => return Err(CliError::internal(error)),
        None => None,
    };
    if global.json {
        return print_json(&json!({
            "run": finished.run,
            "model": finished.model_dir,
            "published": published,
            "summary": finished.summary,
        }));
    }
    println!(
        "run {run}: similarity model saved in {}",
        finished.model_dir.display()
    );
    print!("{}", finished.summary);
    println!("similar photos: atelier similar --id IMAGE_ID (or a photo file) --run {run}");
    Ok(())
}

/// The defaults (or the `--config` file) with every option given on top.
pub fn configure(args: &TrainSimilarityArgs) -> CliResult<SimilarityRunConfig> {
    let mut config = match &args.config {
        Some(path) => read_config(path, "similarity configuration", "train similarity")?,
        None => SimilarityRunConfig::default(),
    };
    if let Some(backbone) = args.backbone {
        if backbone != config.backbone {
            config.weights = None;
            config.feature_stage = None;
        }
        config.backbone = backbone;
    }
    if let Some(weights) = &args.weights {
        config.weights = Some(std::path::absolute(weights).unwrap_or_else(|_| weights.clone()));
    }
    config.image_size = args.image_size.unwrap_or(config.image_size);
    config.feature_stage = args.feature_stage.or(config.feature_stage);
    config.device = args.device.unwrap_or(config.device);
    let similarity = &mut config.similarity;
    similarity.epochs = args.epochs.unwrap_or(similarity.epochs);
    similarity.margin = args.margin.unwrap_or(similarity.margin);
    similarity.embedding_dim = args.embedding_dim.unwrap_or(similarity.embedding_dim);
    similarity.grid = args.grid.unwrap_or(similarity.grid);
    similarity.eval_fraction = args.eval_fraction.unwrap_or(similarity.eval_fraction);
    similarity.mining = args.mining.unwrap_or(similarity.mining);
    similarity.neighbour_batches |= args.neighbour_batches;
    similarity.facet_weight = args.facet_weight.unwrap_or(similarity.facet_weight);
    similarity.colour_weight = args.colour_weight.unwrap_or(similarity.colour_weight);
    similarity.colour = args.colour.unwrap_or(similarity.colour);
    similarity.hub_neighbours = args.hub_neighbours.unwrap_or(similarity.hub_neighbours);
    similarity.seed = args.seed.unwrap_or(similarity.seed);
    config.validate()?;
    Ok(config)
}
