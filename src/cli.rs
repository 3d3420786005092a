//! Command-line interface: `run`, `check` and `eval`. Output meant for people goes to
//! stdout/stderr directly; diagnostics of the running daemon go through `tracing`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use callscreen::config::{Config, Overrides};
use callscreen::facts::Facts;
use callscreen::rules::{self, Action, Reason, RuleMode, RuleSet};
use callscreen::{daemon, notification};

/// Screens Microsoft Teams / Graph incoming calls against TOML rules and rejects the
/// matching ones through Microsoft Graph.
#[derive(Debug, Parser)]
#[command(name = "callscreen", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` for log collectors. The level comes
    /// from RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the screening daemon.
    ///
    /// Listens for Graph's commsNotifications POSTs, screens every incoming-call invite
    /// against the rules folder (reloaded when its files change or on SIGHUP), rejects
    /// matching calls through Graph in enforce mode, and writes one audit record per invite.
    /// Without --config it runs on built-in defaults: 127.0.0.1:8080, ./rules, dry-run,
    /// audit log on stdout, no network access. SIGTERM or SIGINT stop it after rejects
    /// already under way have finished.
    Run {
        /// Configuration file (TOML). Relative paths inside it resolve against its folder.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Rules folder; overrides the config's `rules`.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Listen address, e.g. 127.0.0.1:8080; overrides the config's `listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Record decisions only, never call Graph, whatever the config's `mode` says.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check that a rules folder compiles.
    ///
    /// Prints a one-line summary and exits 0, or prints every problem as
    /// `file:line:col: message` and exits 1. With --config, the config file is checked too
    /// and its `rules` folder is used unless --rules is given.
    Check {
        /// Rules folder (default: the config's `rules`, else ./rules).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Configuration file to validate and take the rules folder from.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Decide notification files offline and print one JSON line per invite.
    ///
    /// Each line holds call_id, action, rule, reason, callback_uri, mode and the facts the
    /// rules saw. Notifications that are not invites print nothing. Exits 0 whatever the
    /// decisions; 1 when an input or the rules cannot be read.
    Eval {
        /// Rules folder (default: ./rules).
        #[arg(long, value_name = "DIR", default_value = "rules")]
        rules: PathBuf,
        /// commsNotifications JSON files; `-` reads standard input.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            config,
            rules,
            listen,
            dry_run,
        } => {
            let overrides = Overrides {
                rules,
                listen,
                dry_run,
            };
            let config = Config::load(config.as_deref(), &overrides)?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(daemon::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { rules, config } => check(rules, config.as_deref()),
        Command::Eval { rules, files } => eval(&rules, &files),
    }
}

fn check(rules: Option<PathBuf>, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = match config {
        Some(path) => {
            let overrides = Overrides {
                rules: rules.clone(),
                ..Overrides::default()
            };
            Config::load(Some(path), &overrides)?.rules
        }
        None => rules.unwrap_or_else(|| PathBuf::from("rules")),
    };
    match rules::load_dir(&dir) {
        Ok(rule_set) => {
            let count = rule_set.len();
            let noun = if count == 1 { "rule" } else { "rules" };
            println!(
                "ok: {count} {noun} in {} (rules_version {})",
                dir.display(),
                rule_set.version()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            let mut stderr = std::io::stderr().lock();
            for diagnostic in &diagnostics {
                writeln!(stderr, "{diagnostic}")?;
            }
            writeln!(
                stderr,
                "error: {} problems in {}",
                diagnostics.len(),
                dir.display()
            )?;
            Ok(ExitCode::from(1))
        }
    }
}

/// One line of `eval` output.
#[derive(Serialize)]
struct EvalLine<'a> {
    call_id: &'a str,
    action: Action,
    rule: Option<&'a str>,
    reason: Option<Reason>,
    callback_uri: Option<&'a str>,
    mode: RuleMode,
    facts: &'a Facts,
}

fn eval(rules_dir: &Path, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let rule_set = match rules::load_dir(rules_dir) {
        Ok(rule_set) => rule_set,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!("error: the rules in {} do not compile", rules_dir.display());
            return Ok(ExitCode::from(1));
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut unreadable = 0;
    for file in files {
        match read_input(file) {
            Ok(bytes) => match notification::parse(&bytes) {
                Ok(parsed) => {
                    for facts in &parsed.invites {
                        print_decision(&mut stdout, &rule_set, facts)?;
                    }
                }
                Err(error) => {
                    eprintln!("{}: {error}", file.display());
                    unreadable += 1;
                }
            },
            Err(error) => {
                eprintln!("{}: {error:#}", file.display());
                unreadable += 1;
            }
        }
    }
    Ok(if unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_decision(out: &mut impl Write, rule_set: &RuleSet, facts: &Facts) -> anyhow::Result<()> {
    let decision = rule_set.evaluate(facts);
    let line = EvalLine {
        call_id: &facts.call_id,
        action: decision.action,
        rule: decision.rule.as_deref(),
        reason: (decision.action == Action::Reject).then_some(decision.reason),
        callback_uri: decision.callback_uri.as_deref(),
        mode: decision.mode,
        facts,
    };
    serde_json::to_writer(&mut *out, &line)?;
    writeln!(out)?;
    Ok(())
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).context("cannot read the file")
}
