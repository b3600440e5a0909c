//! The `hactl` binary: parses the command line and hands over to the library (see `hactl::cli`).
use clap::Parser;
use hactl::cli::Cli;

fn main() {
    let cli = Cli::parse();
    let code = match hactl::cli::main_with(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    };
    std::process::exit(code);
}
