//! `ferrite`: the server binary.

use clap::{Parser, Subcommand};
use ferrite_server::config::ServeConfig;
use ferrite_server::serve::{Server, VERSION, shutdown_signal};
use ferrite_telemetry::TelemetryArgs;

/// ferrite: a time-series database wire-compatible with InfluxDB 3.
#[derive(Debug, Parser)]
#[command(name = "ferrite", version = VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    telemetry: TelemetryArgs,
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
    let cli = Cli::parse();
    let service = match &cli.command {
        Command::Serve(_) => "serve",
        Command::Run { service } => service.name(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Inside the runtime: the trace exporter's channel runs on it. Dropped last, so the
        // spans of the shutdown are flushed too.
        let _telemetry = ferrite_telemetry::init(service, &cli.telemetry)?;
        match cli.command {
            Command::Serve(config) => {
                let server = Server::start(&config).await?;
                server.run(shutdown_signal()).await
            }
            Command::Run { service } => ferrite_server::run::run(service, shutdown_signal()).await,
        }
    })
}
