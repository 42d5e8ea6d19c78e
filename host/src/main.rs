//! The `portcullis` command line: run the broker, check config, inspect plugins.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::connectors::{CompileCache, PluginEngine, inspect};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "A federated OpenID Connect provider with WebAssembly connectors")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with connector plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print the world and contract version a component targets, its exports, size and sha256.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Plugin { command: PluginCommand::Inspect { file } } => inspect(file).await,
    }
}

async fn inspect(file: PathBuf) -> anyhow::Result<()> {
    let engine = PluginEngine::new(CompileCache::disabled()).context("cannot start the WebAssembly engine")?;
    print!("{}", inspect::report(&engine, &file).await?);
    Ok(())
}
