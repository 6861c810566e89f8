//! hpcs-job: writes (and with --submit, submits) a Slurm batch script that
//! mounts hpcs archives with hpcs-mount, verifies the inputs, runs the
//! application, verifies the outputs and unmounts on every path. This file
//! only wires the parts together: `cli` parses, `config` checks, `script`
//! renders, `submit` hands the script to sbatch. Exit codes: `cli::EXIT_HELP`.

mod cli;
mod config;
mod error;
mod quote;
mod script;
mod submit;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hpcs-job: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: &cli::Cli) -> Result<(), error::Error> {
    let spec = config::JobSpec::from_cli(cli)?;
    let text = script::render(&spec);
    if let Some(path) = &cli.output {
        submit::write_script(path, &text)?;
    }
    if cli.submit {
        let id = submit::sbatch(cli.output.as_deref(), &text)?;
        println!("{id}");
    } else if cli.output.is_none() {
        print!("{text}");
    }
    Ok(())
}
