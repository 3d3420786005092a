//! `callscreen run`: start-up, the control loop (reload and shutdown signals, file
//! events), and an orderly exit that leaves no accepted invite without its audit record.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::audit::{AuditLog, Redactor};
use crate::config::{AuditTarget, Config, InboundAuth, Mode};
use crate::gateway::Upstream;
use crate::graph::GraphClient;
use crate::inbound::JwtVerifier;
use crate::log_writer::DroppedLines;
use crate::metrics::Metrics;
use crate::reload::Observers;
use crate::reload::{self, Debouncer, RulesWatcher, Trigger};
use crate::rules;
use crate::screen::{Enforcement, Screener, ScreenerParts};
use crate::server::{PENDING_SCREENINGS, Server};
use crate::status::Status;

/// Extra time, beyond the answer deadline, that shutdown waits for screenings to finish.
const DRAIN_SLACK: Duration = Duration::from_secs(2);
/// How long the audit writer gets at exit to write what is queued (at most 4,096 records:
/// well under a second to a file, longer to a slow reader of stdout).
const AUDIT_FLUSH_LIMIT: Duration = Duration::from_secs(10);
/// How often the rules path is checked for having been replaced by another folder.
const FOLDER_CHECK: Duration = Duration::from_secs(2);

/// Runs the daemon until SIGTERM or SIGINT.
/// Runs the daemon until SIGTERM or SIGINT. `log_drops` counts the log lines the log
/// writer had to drop, for `/metrics`; `None` when logs are written directly.
pub async fn run(config: Config, log_drops: Option<DroppedLines>) -> anyhow::Result<()> {
    let initial = match rules::load_dir(&config.rules) {
        Ok(rule_set) => rule_set,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                tracing::error!("{diagnostic}");
            }
            bail!(
                "the rules in {dir} do not compile ({} problems); \
                 see `callscreen check --rules {dir}`",
                diagnostics.len(),
                dir = config.rules.display(),
            );
        }
    };
    for warning in initial.warnings() {
        tracing::warn!("{warning}");
    }
    if initial.is_empty() {
        tracing::warn!(dir = %config.rules.display(), "no rules: every call is allowed");
    }
    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(Status::new(&initial));
    metrics.rules_in_force(initial.version(), initial.len());
    let rules = Arc::new(ArcSwap::from_pointee(initial));

    let redactor = config.redact_key.clone().map(Redactor::new);
    let (audit, audit_task) =
        AuditLog::start(config.audit.clone(), redactor).with_context(|| match &config.audit {
            AuditTarget::File(path) => format!("cannot open the audit log {}", path.display()),
            AuditTarget::Stdout => "cannot write the audit log to stdout".to_owned(),
        })?;

    let enforcement = match &config.mode {
        Mode::DryRun => Enforcement::DryRun,
        Mode::Enforce(credentials) => {
            let client = GraphClient::new(
                config.graph_base_url.clone(),
                credentials.clone(),
                metrics.clone(),
            )
            .context("cannot build the Graph client")?;
            let client = Arc::new(client);
            tokio::spawn(warm_token(client.clone()));
            Enforcement::Enforce(client)
        }
    };

    let screener = Arc::new(Screener::new(ScreenerParts {
        rules: rules.clone(),
        enforcement,
        audit: audit.clone(),
        default_callback_uri: config.default_callback_uri.clone(),
        answer_deadline: config.answer_deadline,
        metrics: metrics.clone(),
        status: status.clone(),
    }));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    {
        let current = rules.load();
        tracing::info!(
            listen = %local_addr,
            tls = config.tls.is_some(),
            path = %config.notification_path,
            mode = config.mode.name(),
            rules_dir = %config.rules.display(),
            rules = current.len(),
            rules_version = current.version(),
            "callscreen listening"
        );
    }

    let auth = match &config.inbound {
        InboundAuth::Off => {
            tracing::warn!(
                "inbound.auth is off: every POST to {} is trusted; only run so behind a proxy \
                 that authenticates Graph",
                config.notification_path
            );
            None
        }
        InboundAuth::Jwt(auth_config) => {
            let http = key_fetch_client()?;
            // Keys are fetched in the background: a slow key server must not hold up start-up
            // (the daemon answers 401 and reports not ready until they arrive).
            let verifier = Arc::new(JwtVerifier::new(auth_config.as_ref().clone(), http));
            verifier.clone().spawn_refresh();
            Some(verifier)
        }
    };
    // The watcher must live as long as the daemon, or certificate renewals go unnoticed.
    let (tls, _tls_watcher) = match &config.tls {
        None => (None, None),
        Some(files) => {
            let (server_config, handle) = crate::tls::load_server_config(files.clone())
                .context("cannot load the TLS certificate")?;
            let watcher = match crate::tls::watch(files, handle) {
                Ok(watcher) => Some(watcher),
                Err(error) => {
                    tracing::warn!(%error, "cannot watch the TLS files; renewals need a restart");
                    None
                }
            };
            (
                Some(tokio_rustls::TlsAcceptor::from(server_config)),
                watcher,
            )
        }
    };

    let upstream = match &config.upstream {
        None => None,
        Some(settings) => {
            let upstream = Upstream::new(settings.url.clone(), settings.timeout)
                .context("cannot build the HTTP client for the bot")?;
            let upstream = Arc::new(upstream);
            upstream.clone().spawn_probe();
            tracing::info!(upstream = %settings.url, "gateway mode: kept calls go to the bot");
            Some(upstream)
        }
    };
    let server = Arc::new(Server {
        screener,
        notification_path: config.notification_path.clone(),
        max_body: config.max_body,
        tracker: TaskTracker::new(),
        pending: Arc::new(Semaphore::new(PENDING_SCREENINGS)),
        auth,
        tls,
        read_timeout: config.read_timeout,
        upstream,
        log_drops,
    });
    let (stop_sender, stop_receiver) = oneshot::channel::<()>();
    let drain = config.answer_deadline + DRAIN_SLACK;
    let server_task = tokio::spawn(server.run(
        listener,
        async {
            let _ = stop_receiver.await;
        },
        drain,
    ));

    let (file_events, mut file_changes) = mpsc::channel(1);
    let mut watcher = RulesWatcher::new(&config.rules, file_events);
    let mut debouncer = Debouncer::default();
    // A watch follows the folder it was set on; replacing the folder is noticed by polling.
    let mut folder_check = tokio::time::interval(FOLDER_CHECK);
    folder_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    // systemd (Type=notify): ready once the rules are loaded and the listener is bound.
    notify_systemd(&[NotifyState::Ready]);
    // With WatchdogSec= set, ping at half the interval; a hung control loop stops pinging.
    let watchdog_period = sd_notify::watchdog_enabled().map(|timeout| timeout / 2);
    let mut watchdog = tokio::time::interval(watchdog_period.unwrap_or(Duration::from_secs(3600)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let rules_dir = config.rules.clone();
    let reload = |trigger| {
        let (rules_dir, rules, metrics, status) = (&rules_dir, &rules, &metrics, &status);
        async move {
            notify_reloading();
            let observers = Observers { metrics, status };
            reload::reload(rules_dir, rules, trigger, observers).await;
            notify_systemd(&[NotifyState::Ready]);
        }
    };
    // Every branch returns quickly, so signals are never held up by a busy rules folder.
    loop {
        let due = debouncer.due();
        tokio::select! {
            _ = terminate.recv() => {
                tracing::info!(signal = "SIGTERM", "stopping");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!(signal = "SIGINT", "stopping");
                break;
            }
            _ = hangup.recv() => {
                // SIGHUP also follows a logrotate rename: reopen the audit file.
                audit.reopen();
                watcher.rewatch();
                debouncer.clear();
                reload(Trigger::Signal).await;
            }
            Some(()) = file_changes.recv() => debouncer.event(tokio::time::Instant::now()),
            () = sleep_until_due(due), if due.is_some() => {
                debouncer.clear();
                reload(Trigger::FileChange).await;
            }
            _ = folder_check.tick() => {
                if watcher.folder_replaced() {
                    tracing::info!(dir = %config.rules.display(), "rules folder replaced");
                    watcher.rewatch();
                    debouncer.clear();
                    reload(Trigger::FileChange).await;
                }
            }
            _ = watchdog.tick(), if watchdog_period.is_some() => {
                notify_systemd(&[NotifyState::Watchdog]);
            }
        }
    }

    notify_systemd(&[NotifyState::Stopping]);
    let _ = stop_sender.send(());
    // A second SIGTERM or SIGINT while draining means "now": exit without waiting.
    tokio::select! {
        finished = server_task => finished.context("server task failed")?,
        _ = terminate.recv() => bail!("second SIGTERM while draining; exiting at once"),
        _ = interrupt.recv() => bail!("second SIGINT while draining; exiting at once"),
    }
    // The writer ends when the last sender is gone; screenings that outlived the drain
    // still hold one, so the wait is bounded.
    drop(audit);
    if tokio::time::timeout(AUDIT_FLUSH_LIMIT, audit_task)
        .await
        .is_err()
    {
        bail!("the audit writer did not finish in time: queued records were not written");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Tells systemd about a state change; a no-op when not started by systemd.
fn notify_systemd(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

fn notify_reloading() {
    // systemd pairs RELOADING=1 with the monotonic time at which the reload started.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify_systemd(&[NotifyState::Reloading, now]),
        Err(_) => notify_systemd(&[NotifyState::Reloading]),
    }
}

/// Obtains the first Graph token, retrying with backoff until it succeeds, so the first
/// reject does not spend its answer window on a token round-trip. `/readyz` reports 503
/// until then.
async fn warm_token(client: Arc<GraphClient>) {
    let mut wait = Duration::from_secs(1);
    loop {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        match client.ensure_token(deadline).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, retry_in_s = wait.as_secs(), "no Graph token yet");
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// The HTTP client that fetches the inbound token keys, with short timeouts so a slow key
/// server cannot hold start-up.
fn key_fetch_client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("callscreen/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client for inbound keys")
}
