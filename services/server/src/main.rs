//! `ferrite`: the server binary.

use clap::{Parser, Subcommand};
use ferrite_server::config::ServeConfig;
use ferrite_server::serve::{Server, VERSION, shutdown_signal};
use tracing_subscriber::EnvFilter;

/// ferrite: a time-series database wire-compatible with InfluxDB 3.
#[derive(Debug, Parser)]
#[command(name = "ferrite", version = VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in one process on embedded defaults (SQLite catalog, local files).
    Serve(ServeConfig),
    /// Run one service of the cluster.
    Run {
        #[command(subcommand)]
        service: ferrite_server::run::Service,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FERRITE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Colours only for a terminal: `kubectl logs` and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(config) => {
                let server = Server::start(&config).await?;
                server.run(shutdown_signal()).await
            }
            Command::Run { service } => ferrite_server::run::run(service, shutdown_signal()).await,
        }
    })
}
