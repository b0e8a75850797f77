//! The `tern` command: parse the CLI, load config, set up logging and the
//! runtime, and hand over to the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tern::config::{Config, DEFAULT_CONFIG_TOML, LogFormat};

mod passwd_cmd;
mod store_cmd;

#[derive(Debug, Parser)]
#[command(name = "tern", version, about = "A lean MQTT broker for edge hardware")]
struct Cli {
    /// Configuration file (TOML). Without it the embedded default is used:
    /// one listener on 127.0.0.1:1883, anonymous access allowed.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write `name protocol address` per listener to FILE once all are bound.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Write the broker's process id to FILE (for `tern reload`).
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask a running broker to re-read its password and ACL files and TLS
    /// certificates (sends SIGHUP to the process in its --pid-file).
    Reload {
        #[arg(long, value_name = "FILE")]
        pid_file: PathBuf,
    },
    /// Check or compact the store named by the configuration's [store]
    /// section (stop the broker first: the file is locked while it runs).
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Check a configuration file and print any warnings.
    CheckConfig { file: PathBuf },
    /// Print the embedded default configuration, every key documented.
    PrintDefaultConfig,
    /// Add or update USER in a Mosquitto-format password file (prompts for
    /// the password, or reads one line from standard input), or delete it.
    Passwd {
        file: PathBuf,
        user: String,
        /// Delete USER instead.
        #[arg(short = 'D', long)]
        delete: bool,
        /// Start a new file, overwriting FILE.
        #[arg(short, long)]
        create: bool,
        /// Read the password from standard input (one line).
        #[arg(long)]
        stdin: bool,
        /// PBKDF2 iterations for the new hash.
        #[arg(long, default_value_t = tern::auth::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

#[derive(Debug, Subcommand)]
enum StoreAction {
    /// Verify checksums and decode every record; print what it holds.
    Check {
        /// The broker's configuration (also accepted before `store`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Give the file's free pages back to the file system.
    Compact {
        /// The broker's configuration (also accepted before `store`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PrintDefaultConfig) => {
            use std::io::Write;
            std::io::stdout().write_all(DEFAULT_CONFIG_TOML.as_bytes())?;
            Ok(())
        }
        Some(Command::Passwd {
            file,
            user,
            delete,
            create,
            stdin,
            iterations,
        }) => passwd_cmd::run(passwd_cmd::Args {
            file: &file,
            user: &user,
            delete,
            create,
            stdin,
            iterations,
        }),
        Some(Command::CheckConfig { file }) => {
            let config = Config::load(&file)?;
            if let Some(path) = &config.auth.password_file {
                let users = tern::auth::PasswordFile::load(path).context("[auth] password_file")?;
                println!("{}: {} user(s)", path.display(), users.len());
            }
            if let Some(jwt) = &config.auth.jwt {
                tern::auth::Jwt::load(jwt).context("[auth.jwt]")?;
                println!("[auth.jwt]: keys ok");
            }
            if let Some(path) = &config.auth.acl_file {
                tern::auth::AclFile::load(path).context("[auth] acl_file")?;
                println!("{}: ok", path.display());
            }
            use std::io::Write;
            let mut out = std::io::stdout();
            for w in config.warnings() {
                writeln!(out, "warning: {w}")?;
            }
            writeln!(out, "{}: ok ({} listener(s))", file.display(), config.listeners.len())?;
            Ok(())
        }
        Some(Command::Reload { pid_file }) => reload(&pid_file),
        Some(Command::Store { action }) => {
            let (StoreAction::Check { config } | StoreAction::Compact { config }) = &action;
            store_cmd::run(config.as_deref().or(cli.config.as_deref()), &action)
        }
        None => {
            if let Some(path) = &cli.pid_file {
                std::fs::write(path, format!("{}\n", std::process::id()))
                    .with_context(|| format!("cannot write the pid file {}", path.display()))?;
            }
            serve(cli.config, cli.ready_file)
        }
    }
}

fn serve(config_path: Option<PathBuf>, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, source) = match &config_path {
        Some(p) => (Config::load(p)?, p.display().to_string()),
        None => (Config::embedded_default(), "embedded default".to_string()),
    };
    init_logging(&config)?;
    if config_path.is_none() {
        // The first thing a newcomer reads: where it listens and that it
        // lets anyone in, which is only safe because that is loopback.
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            "tern starting on its embedded default config: MQTT on 127.0.0.1:1883 only, anonymous clients allowed \
             there; pass --config FILE for anything else (tern print-default-config shows every key)"
        );
    } else {
        tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %source, "tern starting");
    }
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if config.runtime.worker_threads > 0 {
        runtime.worker_threads(config.runtime.worker_threads);
    }
    let runtime = runtime.build().context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        // Installed before the server announces it is ready: a signal that
        // came earlier would kill the process the default way, without the
        // graceful shutdown.
        let stop = stop_signals().context("cannot listen for SIGTERM and SIGINT")?;
        tern::server::run(config, ready_file.as_deref(), stop)
            .await
            .map_err(anyhow::Error::from)
    })?;
    Ok(())
}

/// Registers SIGTERM and SIGINT now; the future resolves at the first one.
fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // RUST_LOG, when set, overrides the configured level for debugging.
    // `Targets` ("info", "tern=debug,info") rather than `EnvFilter`: the
    // same directives without a regex engine in the binary.
    let filter: Targets = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => v.parse(),
        _ => config.log.level.parse(),
    }
    .with_context(|| format!("log.level: not a valid filter: {:?}", config.log.level))?;
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log.format {
        LogFormat::Json => builder.json().finish().with(filter).init(),
        LogFormat::Human => builder.finish().with(filter).init(),
    }
    Ok(())
}

/// `tern reload`: SIGHUP to the broker named by its pid file.
fn reload(pid_file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(pid_file).with_context(|| format!("cannot read {}", pid_file.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a process id: {:?}", pid_file.display(), text.trim()))?;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .context("cannot run kill")?;
    anyhow::ensure!(
        status.success(),
        "no broker with process id {pid} (from {})",
        pid_file.display()
    );
    println!("sent SIGHUP to {pid}");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Clap checks its definitions only when a command line is parsed, so
    /// a clash (two `-c`) would otherwise show first in a user's hands.
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
