//! `mcm`: the command line, a thin layer over the `mcm` library.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("mcm: {e}");
            ExitCode::from(e.exit_code().clamp(0, 255) as u8)
        }
    }
}
