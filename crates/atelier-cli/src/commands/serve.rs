//! `atelier serve`: the review web app on the catalogue (`--db`) and store (`--store`).

use std::net::SocketAddr;

use atelier_catalog::Catalog;
use atelier_web::AppConfig;

use crate::args::{GlobalArgs, ServeArgs};
use crate::commands::{similar, train};
use crate::error::{CliError, CliResult};

/// The app's settings for a catalogue and store: retrains write where `atelier train` would.
pub fn app_config(args: &ServeArgs, global: &GlobalArgs) -> CliResult<AppConfig> {
    let home = std::env::var_os("HOME").map_or_else(|| ".".into(), std::path::PathBuf::from);
    let mut config = AppConfig::new(
        train::run_paths(&args.checkpoint_dir, &global.store)?,
        args.thumbnail_cache
            .clone()
            .unwrap_or_else(|| home.join(".cache/atelier/thumbnails")),
    );
    config.secure_cookies = args.secure_cookies;
    config.behind_proxy = args.behind_proxy;
    config.index_files = Some(similar::index_files(global.db_url(), &args.ann));
    config.worker = !args.no_worker;
    Ok(config)
}

pub async fn run(catalog: Catalog, args: &ServeArgs, global: &GlobalArgs) -> CliResult {
    let config = app_config(args, global)?;
    let addr: SocketAddr = args.addr.parse().map_err(|e| {
        CliError::bad_input(format!(
            "--addr {}: {e}; use HOST:PORT such as 127.0.0.1:8080",
            args.addr
        ))
    })?;
    if catalog.users().await?.is_empty() {
        eprintln!(
            "no users yet: add one with `atelier users add NAME --role admin` (the app asks for a login)"
        );
    }
    serve(catalog, config, addr).await
}

/// Starts listening and prints where, then serves until the process ends.
pub async fn serve(catalog: Catalog, config: AppConfig, addr: SocketAddr) -> CliResult {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::bad_input(format!(
            "cannot listen on {addr}: {e}; pick another port with --addr 127.0.0.1:PORT"
        ))
    })?;
    let local = listener.local_addr()?;
    println!("serving atelier on http://{local}/ (Ctrl-C stops)");
    atelier_web::serve_on(listener, catalog, config)
        .await
        .map_err(|e| CliError::internal(format!("the web server stopped: {e}")))
}
