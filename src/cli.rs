//! Command-line interface: `run`, `check`, `eval`, `test`, `explain` and `replay`. Output
//! meant for people goes to stdout/stderr directly; diagnostics of the running daemon go
//! through `tracing`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use callscreen::log_writer::BatchedStderr;

use callscreen::authoring::{cases, explain, replay};
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
    /// from RUST_LOG, else the config's `log_level`, else info.
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
    /// Check that a rules folder compiles and its rule tests pass.
    ///
    /// Prints a one-line summary and exits 0, or prints every problem as
    /// `file:line:col: message` (and every failing rule test) and exits 1. Warnings
    /// (`file:line:col: warning: message`) do not change the exit status. With --config, the
    /// config file is checked too and its `rules` folder is used unless --rules is given.
    Check {
        /// Rules folder (default: the config's `rules`, else ./rules).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Configuration file to validate and take the rules folder from.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Ask a running daemon for its status.
    ///
    /// Prints the version, uptime, mode, the rules version in force and when it was loaded,
    /// the last reload error, and per rule its hits (audit-mode rules: the calls and
    /// distinct callers they would have rejected) and since when it is in force.
    Status {
        /// The daemon's config: its `listen` address (and `[tls]`) say where to ask.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Base URL of the daemon, e.g. http://127.0.0.1:8080 (overrides --config).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Print the daemon's JSON document as it is.
        #[arg(long)]
        json: bool,
    },
    /// Decide notification files offline and print one JSON line per invite.
    ///
    /// Each line holds call_id, action, rule, reason, callback_uri, rule_mode (the deciding
    /// rule's mode) and the facts the rules saw. Notifications that are not invites print
    /// nothing. Exits 0 whatever the decisions; 1 when an input or the rules cannot be read.
    Eval {
        /// Rules folder (default: ./rules).
        #[arg(long, value_name = "DIR", default_value = "rules")]
        rules: PathBuf,
        /// commsNotifications JSON files; `-` reads standard input.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the rule tests of a rules folder.
    ///
    /// Tests are `[[test]]` tables in rule files or in `*.test.toml` files beside them. Each
    /// failure is printed with the expected and the actual decision and the facts; exits 0
    /// with a summary line when all pass, 1 otherwise.
    Test {
        /// Rules folder (default: ./rules).
        #[arg(long, value_name = "DIR", default_value = "rules")]
        rules: PathBuf,
    },
    /// Show, rule by rule, why invites are decided as they are.
    ///
    /// For each invite: every rule in order with the first condition that failed (field,
    /// operator, expected and actual value), disabled rules as skipped, up to the rule that
    /// decided, or "no rule matched → allow".
    Explain {
        /// Rules folder (default: ./rules).
        #[arg(long, value_name = "DIR", default_value = "rules")]
        rules: PathBuf,
        /// One JSON object per invite instead of text.
        #[arg(long)]
        json: bool,
        /// Evaluation time for time windows (RFC 3339, e.g. 2026-03-29T09:00:00+02:00);
        /// default now.
        #[arg(long, value_name = "TIME")]
        at: Option<jiff::Timestamp>,
        /// commsNotifications JSON files; `-` reads standard input.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Decide the invites of audit logs again with other rules, and show what would change.
    ///
    /// Reads audit records (JSON lines written by the daemon; `-` = standard input),
    /// re-decides each from its `facts` at its recorded time, skipping `duplicate` records
    /// and warning about lines that are not records. Prints the decisions that would change,
    /// counts per rule, what rules in audit mode would have rejected, and a summary. Exits 0
    /// when nothing changes, 1 when something does, 2 on errors.
    Replay {
        /// The rules to try.
        #[arg(long, value_name = "DIR")]
        rules: PathBuf,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Audit log files, oldest first.
        #[arg(value_name = "AUDIT.jsonl", required = true)]
        files: Vec<PathBuf>,
    },
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogWriter {
    /// Each line written to stderr as it is made: the CLI commands.
    Direct,
    /// Through [`BatchedStderr`]'s writer thread: the daemon, where a write per decision
    /// would cost more than the decision, and where screening must never wait on whoever
    /// reads stderr.
    Batched,
}

/// How long the daemon's last log lines get to reach stderr at exit.
const LOG_DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

pub fn init_logging(
    format: LogFormat,
    default_level: &str,
    writer: LogWriter,
) -> Option<BatchedStderr> {
    // An empty RUST_LOG (as `RUST_LOG= callscreen …` leaves it) counts as unset.
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let filter = from_env
        .and_then(|value| tracing_subscriber::EnvFilter::try_new(value).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_new(default_level).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    // A writer thread that cannot start leaves the daemon logging directly.
    let batched = match writer {
        LogWriter::Direct => None,
        LogWriter::Batched => BatchedStderr::start().ok(),
    };
    let make_writer = match &batched {
        None => BoxMakeWriter::new(std::io::stderr),
        Some(batched) => BoxMakeWriter::new(batched.clone()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(make_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    batched
}

pub fn dispatch(args: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Run {
        config,
        rules,
        listen,
        dry_run,
    } = args.command
    {
        let overrides = Overrides {
            rules,
            listen,
            dry_run,
        };
        let config = Config::load(config.as_deref(), &overrides)?;
        let log_writer = init_logging(args.log_format, &config.log_level, LogWriter::Batched);
        let log_drops = log_writer.as_ref().map(BatchedStderr::dropped);
        let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
        let result = runtime.block_on(daemon::run(config, log_drops));
        // The failure goes through the log writer, not `eprintln!`: with stderr stalled,
        // its writer thread holds the stderr lock, and a direct write would never return.
        if let Err(error) = &result {
            tracing::error!("{error:#}");
        }
        if let Some(writer) = &log_writer {
            writer.drain(LOG_DRAIN_LIMIT);
        }
        return Ok(match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        });
    }
    init_logging(args.log_format, "warn", LogWriter::Direct);
    match args.command {
        Command::Run { .. } => unreachable!("handled above"),
        Command::Check { rules, config } => check(rules, config.as_deref()),
        Command::Eval { rules, files } => eval(&rules, &files),
        Command::Status { config, url, json } => status(config.as_deref(), url, json),
        Command::Test { rules } => test(&rules),
        Command::Explain {
            rules,
            json,
            at,
            files,
        } => explain(&rules, json, at, &files),
        Command::Replay { rules, json, files } => replay(&rules, json, &files),
    }
}

fn status(config: Option<&Path>, url: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let base = match (url, config) {
        (Some(url), _) => url,
        (None, Some(path)) => {
            let config = Config::load_for_check(path, &Overrides::default())?;
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            // A wildcard listen address is reached on loopback.
            let mut addr = config.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("{scheme}://{addr}")
        }
        (None, None) => "http://127.0.0.1:8080".to_owned(),
    };
    let url = format!("{}/status", base.trim_end_matches('/'));
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    let body = runtime.block_on(fetch_status(&url))?;
    if json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let report: serde_json::Value =
        serde_json::from_str(&body).context("the daemon's status is not JSON")?;
    print!("{}", render_status(&report));
    Ok(ExitCode::SUCCESS)
}

async fn fetch_status(url: &str) -> anyhow::Result<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        anyhow::bail!("{url} answered {}", response.status());
    }
    response.text().await.context("cannot read the status")
}

fn render_status(report: &serde_json::Value) -> String {
    let text = |value: &serde_json::Value| value.as_str().unwrap_or("-").to_owned();
    let count = |value: &serde_json::Value| value.as_u64().unwrap_or(0);
    let uptime = std::time::Duration::from_secs(count(&report["uptime_seconds"]));
    let mut out = format!(
        "callscreen {}, up {}, mode {}\nrules {} ({} rules), loaded {}\n",
        text(&report["version"]),
        humantime::format_duration(uptime),
        text(&report["mode"]),
        text(&report["rules_version"]),
        count(&report["rule_count"]),
        text(&report["rules_loaded_at"]),
    );
    match report["last_reload_error"].as_object() {
        Some(error) => out.push_str(&format!(
            "last reload error at {}: {}\n",
            error.get("at").map(text).unwrap_or_default(),
            error.get("message").map(text).unwrap_or_default()
        )),
        None => out.push_str("last reload: ok\n"),
    }
    out.push_str(&format!(
        "{:<32} {:>8} {:>8} {:>8}  IN FORCE SINCE (RULES VERSION)\n",
        "RULE", "HITS", "SHADOW", "CALLERS"
    ));
    for rule in report["rules"].as_array().into_iter().flatten() {
        let mut name = text(&rule["name"]);
        if rule["enabled"] == false {
            name.push_str(" (disabled)");
        }
        out.push_str(&format!(
            "{name:<32} {:>8} {:>8} {:>8}  {} ({})\n",
            count(&rule["hits"]),
            count(&rule["shadow_hits"]),
            count(&rule["shadow_distinct_callers"]),
            text(&rule["in_force_since"]),
            text(&rule["since_rules_version"]),
        ));
    }
    out
}

fn check(rules: Option<PathBuf>, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = match config {
        Some(path) => {
            let overrides = Overrides {
                rules: rules.clone(),
                ..Overrides::default()
            };
            Config::load_for_check(path, &overrides)?.rules
        }
        None => rules.unwrap_or_else(|| PathBuf::from("rules")),
    };
    match rules::load_dir(&dir) {
        Ok(rule_set) => {
            let mut stderr = std::io::stderr().lock();
            for warning in rule_set.warnings() {
                writeln!(stderr, "{warning}")?;
            }
            let (cases, problems) = cases::load(&dir);
            let report = cases::run(&rule_set, &cases);
            if !problems.is_empty() || !report.failures.is_empty() {
                print_test_problems(&mut stderr, &problems, &report)?;
                writeln!(
                    stderr,
                    "error: {} of {} rule tests failed in {}",
                    report.cases - report.passed + problems.len(),
                    report.cases + problems.len(),
                    dir.display()
                )?;
                return Ok(ExitCode::from(1));
            }
            let count = rule_set.len();
            let noun = if count == 1 { "rule" } else { "rules" };
            let tests = match report.cases {
                0 => String::new(),
                1 => ", 1 test passed".to_owned(),
                cases => format!(", {cases} tests passed"),
            };
            println!(
                "ok: {count} {noun} in {} (rules_version {}){tests}",
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
            let noun = if diagnostics.len() == 1 {
                "problem"
            } else {
                "problems"
            };
            writeln!(
                stderr,
                "error: {} {noun} in {}",
                diagnostics.len(),
                dir.display()
            )?;
            Ok(ExitCode::from(1))
        }
    }
}

fn print_test_problems(
    out: &mut impl Write,
    problems: &[rules::Diagnostic],
    report: &cases::TestReport,
) -> std::io::Result<()> {
    for problem in problems {
        writeln!(out, "{problem}")?;
    }
    for failure in &report.failures {
        writeln!(out, "{failure}")?;
    }
    Ok(())
}

/// The rule set of `dir`, or its diagnostics printed to stderr.
fn load_or_report(dir: &Path) -> Option<RuleSet> {
    match rules::load_dir(dir) {
        Ok(rule_set) => Some(rule_set),
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!("error: the rules in {} do not compile", dir.display());
            None
        }
    }
}

fn test(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(rule_set) = load_or_report(dir) else {
        return Ok(ExitCode::from(1));
    };
    let (cases, problems) = cases::load(dir);
    let report = cases::run(&rule_set, &cases);
    let mut stdout = std::io::stdout().lock();
    print_test_problems(&mut stdout, &problems, &report)?;
    let total = report.cases + problems.len();
    if problems.is_empty() && report.failures.is_empty() {
        let noun = if total == 1 { "test" } else { "tests" };
        writeln!(stdout, "ok: {total} {noun} passed in {}", dir.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        stdout,
        "FAILED: {} of {total} tests failed in {}",
        total - report.passed,
        dir.display()
    )?;
    Ok(ExitCode::from(1))
}

fn explain(
    dir: &Path,
    json: bool,
    at: Option<jiff::Timestamp>,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let Some(rule_set) = load_or_report(dir) else {
        return Ok(ExitCode::from(1));
    };
    let now = at.unwrap_or_else(jiff::Timestamp::now);
    let mut stdout = std::io::stdout().lock();
    let mut unreadable = 0;
    let mut first = true;
    for file in files {
        let parsed = read_input(file).and_then(|bytes| Ok(notification::parse(&bytes)?));
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                eprintln!("{}: {error:#}", file.display());
                unreadable += 1;
                continue;
            }
        };
        let source = file.display().to_string();
        for facts in &parsed.invites {
            let explanation = rule_set.explain_at(facts, now);
            if json {
                let value = explain::to_json(&source, facts, &explanation);
                serde_json::to_writer(&mut stdout, &value)?;
                writeln!(stdout)?;
            } else {
                if !first {
                    writeln!(stdout)?;
                }
                explain::write_text(&mut stdout, &source, facts, &explanation)?;
            }
            first = false;
        }
    }
    Ok(if unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn replay(dir: &Path, json: bool, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let Some(rule_set) = load_or_report(dir) else {
        return Ok(ExitCode::from(2));
    };
    let mut report = replay::ReplayReport::default();
    let mut unreadable = 0;
    for file in files {
        let source = file.display().to_string();
        if file.as_os_str() == "-" {
            report.read(&rule_set, &source, std::io::stdin().lock());
            continue;
        }
        match std::fs::File::open(file) {
            Ok(opened) => report.read(&rule_set, &source, std::io::BufReader::new(opened)),
            Err(error) => {
                eprintln!("{source}: cannot read the file: {error}");
                unreadable += 1;
            }
        }
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }

    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write_replay_text(&mut stdout, &rule_set, &report)?;
    }
    // A gate must not read "nothing changes" out of input it could not read: unreadable
    // files or lines, or no record at all, are errors.
    let incomplete = unreadable > 0 || report.bad_lines > 0 || report.replayed == 0;
    if report.replayed == 0 {
        eprintln!("error: no audit record with facts was read");
    }
    Ok(match (incomplete, report.changes.is_empty()) {
        (false, true) => ExitCode::SUCCESS,
        (false, false) => ExitCode::from(1),
        (true, _) => ExitCode::from(2),
    })
}

fn write_replay_text(
    out: &mut impl Write,
    rule_set: &RuleSet,
    report: &replay::ReplayReport,
) -> std::io::Result<()> {
    for change in &report.changes {
        writeln!(
            out,
            "{}  {}  {} → {}",
            change.call_id,
            change.ts,
            replay::describe(change.old_action, change.old_rule.as_deref()),
            replay::describe(change.new_action, change.new_rule.as_deref()),
        )?;
    }
    if !report.per_rule.is_empty() {
        writeln!(out, "\nchanges per rule (invites gained / lost):")?;
        let width = report
            .per_rule
            .keys()
            .map(|name| name.len())
            .max()
            .unwrap_or(0);
        for (rule, counts) in &report.per_rule {
            writeln!(
                out,
                "  {rule:<width$}  +{} / -{}",
                counts.gained, counts.lost
            )?;
        }
    }
    if !report.shadow.is_empty() {
        writeln!(
            out,
            "\naudit-mode rules (would reject under {}):",
            dir_version(rule_set)
        )?;
        for (rule, stats) in report.shadow.iter() {
            let callers = if stats.callers == 1 {
                "caller"
            } else {
                "callers"
            };
            let mut line = format!(
                "  {rule}: {} calls from {}{} distinct {callers}",
                stats.calls,
                if stats.callers_capped {
                    "at least "
                } else {
                    ""
                },
                stats.callers
            );
            if stats.unidentified > 0 {
                line.push_str(&format!(" (+{} unidentified)", stats.unidentified));
            }
            line.push_str(&format!(
                ", since {} (rules_version {}), last {}",
                stats.since, stats.since_version, stats.last
            ));
            writeln!(out, "{line}")?;
        }
    }
    let mut skipped = Vec::new();
    if report.duplicates > 0 {
        skipped.push(format!("{} duplicates", report.duplicates));
    }
    if report.without_facts > 0 {
        skipped.push(format!("{} without facts", report.without_facts));
    }
    if report.bad_lines > 0 {
        skipped.push(format!("{} bad lines", report.bad_lines));
    }
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", skipped.join(", "))
    };
    let noun = if report.changes.len() == 1 {
        "decision"
    } else {
        "decisions"
    };
    writeln!(
        out,
        "\nreplayed {} of {} records{skipped}: {} {noun} would change",
        report.replayed,
        report.records,
        report.changes.len()
    )
}

fn dir_version(rule_set: &RuleSet) -> String {
    format!("rules_version {}", rule_set.version())
}

/// One line of `eval` output.
#[derive(Serialize)]
struct EvalLine<'a> {
    call_id: &'a str,
    action: Action,
    rule: Option<&'a str>,
    reason: Option<Reason>,
    callback_uri: Option<&'a str>,
    /// The deciding rule's own mode (`enforce` or `audit`); eval never sends anything.
    rule_mode: RuleMode,
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
        rule_mode: decision.mode,
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
