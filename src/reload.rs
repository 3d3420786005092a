//! Hot reload: watch the rules folder, gather bursts of file events, recompile aside and
//! swap the new rule set in only when it compiles. A broken edit is logged with every
//! diagnostic and the last good set stays in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::rules::{self, Diagnostic, RuleSet, RuleSetDiff};

/// Editors write a file in several steps (truncate, write, rename); wait until the folder
/// has been quiet this long before compiling.
pub const QUIET_PERIOD: Duration = Duration::from_millis(250);

/// What asked for a reload; logged with the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    FileChange,
    Signal,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::FileChange => "file-change",
            Trigger::Signal => "sighup",
        }
    }
}

/// The result of one reload attempt.
#[derive(Debug)]
pub enum ReloadOutcome {
    Swapped {
        old_version: String,
        new_version: String,
        rules: usize,
        /// Rule names added, removed and changed by this reload.
        diff: RuleSetDiff,
    },
    Unchanged {
        version: String,
    },
    /// The new files do not compile; the running set was kept.
    KeptLastGood {
        version: String,
        diagnostics: Vec<Diagnostic>,
    },
}

/// Watches `dir` and sends a unit on `events` for every change inside it. The returned
/// watcher must be kept alive for as long as events are wanted.
pub fn watch(dir: &Path, events: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) if event.kind.is_access() => {}
            // A full channel already holds a pending reload, which covers this change too.
            Ok(_) => {
                let _ = events.try_send(());
            }
            Err(error) => {
                tracing::warn!(%error, "rules watcher error; reloading in case of a missed change");
                let _ = events.try_send(());
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Waits until no further event arrives for [`QUIET_PERIOD`].
pub async fn settle(events: &mut mpsc::Receiver<()>) {
    while let Ok(Some(())) = tokio::time::timeout(QUIET_PERIOD, events.recv()).await {}
}

/// Compiles `dir` off the async threads and swaps the result in when it compiles.
pub async fn reload(
    dir: &Path,
    current: &Arc<ArcSwap<RuleSet>>,
    trigger: Trigger,
) -> ReloadOutcome {
    let dir_owned: PathBuf = dir.to_owned();
    let compiled = tokio::task::spawn_blocking(move || rules::load_dir(&dir_owned))
        .await
        .unwrap_or_else(|panic| {
            Err(vec![Diagnostic {
                path: dir.to_owned(),
                line: 0,
                col: 0,
                message: format!("rule compiler failed: {panic}"),
            }])
        });
    let old_version = current.load().version().to_owned();
    let outcome = match compiled {
        Ok(new_set) if new_set.version() == old_version => ReloadOutcome::Unchanged {
            version: old_version,
        },
        Ok(new_set) => {
            // Unchanged rate conditions keep counting where the old set left off.
            let previous = current.load_full();
            new_set.inherit_state(&previous);
            let diff = new_set.diff(&previous);
            for warning in new_set.warnings() {
                tracing::warn!(trigger = trigger.as_str(), "{warning}");
            }

            let new_version = new_set.version().to_owned();
            let rules = new_set.len();
            current.store(Arc::new(new_set));
            ReloadOutcome::Swapped {
                old_version,
                new_version,
                rules,
                diff,
            }
        }
        Err(diagnostics) => ReloadOutcome::KeptLastGood {
            version: old_version,
            diagnostics,
        },
    };
    log_outcome(&outcome, trigger);
    outcome
}

fn log_outcome(outcome: &ReloadOutcome, trigger: Trigger) {
    let trigger = trigger.as_str();
    match outcome {
        ReloadOutcome::Swapped {
            old_version,
            new_version,
            rules,
            diff,
        } => {
            tracing::info!(
                trigger,
                old_version,
                new_version,
                rules,
                added = ?diff.added,
                removed = ?diff.removed,
                changed = ?diff.changed,
                "rules reloaded"
            );
        }
        ReloadOutcome::Unchanged { version } => {
            tracing::debug!(trigger, version, "rules unchanged");
        }
        ReloadOutcome::KeptLastGood {
            version,
            diagnostics,
        } => {
            for diagnostic in diagnostics {
                tracing::error!(trigger, "{diagnostic}");
            }
            tracing::error!(
                trigger,
                problems = diagnostics.len(),
                kept_version = version,
                "rules reload failed; the last good rules stay in force"
            );
        }
    }
}
