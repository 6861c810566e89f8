//! Entry point of `hpcs-spiffe-agent`: parse flags, print the development
//! warning, run the agent until SIGTERM/SIGINT, map failures to exit codes
//! (2 bad usage, 1 runtime failure, 0 clean stop).

mod cli;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use tokio::signal::unix::{signal, SignalKind};

const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // clap exits with 2 on malformed flags and 0 for --help/--version.
    let cli = cli::Cli::parse();
    eprintln!(
        "hpcs-spiffe-agent: WARNING: development and test use only, NOT FOR PRODUCTION \
         (identities by uid alone, no attestation, no key rotation); use SPIRE in production"
    );
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hpcs-spiffe-agent: error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if config.identities.is_empty() {
        eprintln!(
            "hpcs-spiffe-agent: note: no --map and no --default-id: every caller will be denied"
        );
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hpcs-spiffe-agent: error: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn run(config: hpcs_spiffe_agent::config::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Install the handlers before announcing readiness, so a SIGTERM sent
        // right after `ready` is never lost.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        hpcs_spiffe_agent::agent::run(config, stop, || {
            let mut out = std::io::stdout().lock();
            // If stdout is gone nobody is waiting for the line; keep serving.
            let _ = writeln!(out, "ready").and_then(|()| out.flush());
        })
        .await?;
        Ok(())
    })
}
