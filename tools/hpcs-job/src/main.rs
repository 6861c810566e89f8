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
    if !spec.results_runs.is_empty() {
        let expect: String = spec
            .results_runs
            .iter()
            .map(|r| format!(" --expect-run {r}"))
            .collect();
        eprintln!(
            "hpcs-job: the results will be run(s) {} (one per node); accept only these with: hpcs-pack results decrypt DIR -o DEST --archive {} -i IDENTITY{expect}",
            spec.results_runs.join(" "),
            spec.mounts[0].archive
        );
    }
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
