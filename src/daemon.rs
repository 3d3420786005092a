//! `callscreen run`: start-up, the control loop (reload and shutdown signals, file
//! events), and an orderly exit that leaves no accepted invite without its audit record.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::audit::{AuditLog, Redactor};
use crate::config::{Config, InboundAuth, Mode};
use crate::graph::GraphClient;
use crate::inbound::JwtVerifier;
use crate::reload::{self, Trigger};
use crate::rules;
use crate::screen::{Enforcement, Screener};
use crate::server::Server;

/// Extra time, beyond the answer deadline, that shutdown waits for screenings to finish.
const DRAIN_SLACK: Duration = Duration::from_secs(2);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let initial = match rules::load_dir(&config.rules) {
        Ok(rule_set) => rule_set,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                tracing::error!("{diagnostic}");
            }
            bail!(
                "the rules in {} do not compile ({} problems); run `callscreen check`",
                config.rules.display(),
                diagnostics.len()
            );
        }
    };
    let rules = Arc::new(ArcSwap::from_pointee(initial));

    let redactor = config.redact_key.clone().map(Redactor::new);
    let (audit, audit_task) = AuditLog::start(config.audit.clone(), redactor)
        .await
        .with_context(|| format!("cannot open the audit log {:?}", config.audit))?;

    let enforcement = match &config.mode {
        Mode::DryRun => Enforcement::DryRun,
        Mode::Enforce(credentials) => {
            let client = GraphClient::new(config.graph_base_url.clone(), credentials.clone())
                .context("cannot build the Graph client")?;
            let client = Arc::new(client);
            // Warm the token cache so the first reject does not spend its window on it.
            let warm = client.clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                if let Err(error) = warm.ensure_token(deadline).await {
                    tracing::warn!(%error, "no Graph token yet; the first reject will retry");
                }
            });
            Enforcement::Enforce(client)
        }
    };

    let screener = Arc::new(Screener::new(
        rules.clone(),
        enforcement,
        audit.clone(),
        config.default_callback_uri.clone(),
        config.answer_deadline,
    ));
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
            let verifier = Arc::new(JwtVerifier::start(auth_config.as_ref().clone(), http).await);
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

    let server = Arc::new(Server {
        screener,
        notification_path: config.notification_path.clone(),
        max_body: config.max_body,
        tracker: TaskTracker::new(),
        auth,
        tls,
        read_timeout: config.read_timeout,
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
    let _watcher = match reload::watch(&config.rules, file_events) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(%error, "cannot watch the rules folder; reload with SIGHUP");
            None
        }
    };
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    loop {
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
                reload::reload(&config.rules, &rules, Trigger::Signal).await;
            }
            Some(()) = file_changes.recv() => {
                reload::settle(&mut file_changes).await;
                reload::reload(&config.rules, &rules, Trigger::FileChange).await;
            }
        }
    }

    let _ = stop_sender.send(());
    server_task.await.context("server task failed")?;
    // The writer ends when the last sender is gone; screenings that outlived the drain
    // still hold one, so the wait is bounded.
    drop(audit);
    if tokio::time::timeout(DRAIN_SLACK, audit_task).await.is_err() {
        tracing::warn!("audit writer did not finish in time");
    }
    tracing::info!("stopped");
    Ok(())
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
