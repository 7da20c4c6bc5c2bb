//! The command line: clap definitions and the commands behind them.
//!
//! This is the only importer of clap. Commands return errors; [`main`]
//! prints the error with its chain of causes and turns it into an exit code.

use std::error::Error as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::crypto;

/// Exit codes, stable for scripts.
pub mod exit {
    /// The command did what was asked.
    pub const OK: u8 = 0;
    /// The command failed; the message says why.
    pub const FAILURE: u8 = 1;
    /// The command line was wrong (clap uses 2 as well).
    pub const USAGE: u8 = 2;
}

/// exsec keeps external secrets sealed and injects them into Kubernetes
/// apps at deploy time.
#[derive(Debug, Parser)]
#[command(name = "exsec", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: HTTP API, deploys, audit log.
    Serve {
        /// The configuration file (see config.example.toml).
        #[arg(long, short, value_name = "FILE", env = "EXSEC_CONFIG")]
        config: PathBuf,
    },
    /// Manage master keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a new random master key into the key directory (offline).
    ///
    /// The key is named after the current UTC time (YYYYMMDDTHHMMSSZ), so
    /// the newest key sorts last and becomes the active key. The file is
    /// written with mode 0600 and given the owner of the directory; an
    /// existing file is never overwritten. Back the key up: values sealed
    /// under it cannot be opened without it.
    Generate {
        /// The key directory (the `keys.dir` of the config).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Parses the command line, runs the command, prints any error, and
/// returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Errors of the command line, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Key generation failed.
    #[error("cannot generate a master key")]
    KeyGenerate(#[source] crypto::KeyfileError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The daemon could not start.
    #[error("exsec could not start")]
    Start(#[source] crate::app::StartError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { config } => {
            let config = crate::config::Config::load(&config)?;
            init_logging(config.log.format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(CliError::Runtime)?;
            runtime
                .block_on(crate::app::serve(&config))
                .map_err(CliError::Start)
        }
        Command::Keys(KeysCommand::Generate { dir }) => {
            let generated = crypto::generate_key_file(&dir, std::time::SystemTime::now())
                .map_err(CliError::KeyGenerate)?;
            println!("{}", generated.key_id);
            eprintln!(
                "wrote {} (mode 0600); back it up: values sealed under it cannot be opened without it",
                generated.path.display()
            );
            Ok(())
        }
    }
}

/// Logs to stderr (journald picks it up), human or JSON; `EXSEC_LOG` or
/// `RUST_LOG` set the filter (default `info`).
fn init_logging(format: crate::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("EXSEC_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Human => builder.try_init(),
    };
}
