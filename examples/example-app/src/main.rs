//! The `example-app` binary: parses the command line and runs the app (see the library).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match example_app::run(example_app::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("example-app: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
