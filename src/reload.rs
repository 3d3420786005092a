//! Hot reload: watch the rules folder, gather bursts of file events, recompile aside and
//! swap the new rule set in only when it compiles. A broken edit is logged with every
//! diagnostic and the last good set stays in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::rules::{self, Diagnostic, RuleSet, RuleSetDiff};
use crate::status::Status;

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

/// A folder that never goes quiet (a script rewriting files in a loop) is still reloaded
/// this often, so decisions never lag its edits by more.
pub const MAX_SETTLE: Duration = Duration::from_secs(1);

/// Watches the rules folder for changes to rule and list files, and notices when the folder
/// itself is replaced (renamed away, or a symlink swapped to another folder), which a
/// watch on the old folder cannot see.
pub struct RulesWatcher {
    dir: PathBuf,
    events: mpsc::Sender<()>,
    watcher: Option<notify::RecommendedWatcher>,
    identity: Option<(u64, u64)>,
}

impl RulesWatcher {
    /// Starts watching `dir`; every relevant change sends a unit on `events` (a full channel
    /// already holds a pending reload, which covers the change too).
    pub fn new(dir: &Path, events: mpsc::Sender<()>) -> RulesWatcher {
        let mut watcher = RulesWatcher {
            dir: dir.to_owned(),
            events,
            watcher: None,
            identity: None,
        };
        watcher.rewatch();
        watcher
    }

    /// Drops the current watch and watches the folder now at the path.
    pub fn rewatch(&mut self) {
        self.watcher = None;
        self.identity = identity(&self.dir);
        let events = self.events.clone();
        let started =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if event.kind.is_access() || !touches_rules(&event) => {}
                Ok(_) => {
                    let _ = events.try_send(());
                }
                Err(error) => {
                    tracing::warn!(%error, "rules watcher error; reloading in case of a miss");
                    let _ = events.try_send(());
                }
            })
            .and_then(|mut watcher| {
                watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
                Ok(watcher)
            });
        match started {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(error) => {
                let dir = self.dir.display();
                tracing::warn!(%error, %dir, "cannot watch the rules folder; SIGHUP reloads");
            }
        }
    }

    /// True when the path now names another folder than the one watched.
    pub fn folder_replaced(&self) -> bool {
        identity(&self.dir) != self.identity
    }
}

/// Device and inode of the folder the path leads to (through symlinks).
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(dir).ok()?;
    Some((metadata.dev(), metadata.ino()))
}

/// Whether an event concerns rule or list files, or the folder itself; editor swap files
/// and other dot-files do not count.
fn touches_rules(event: &notify::Event) -> bool {
    if event.paths.is_empty() {
        return true;
    }
    event.paths.iter().any(|path| {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            return true;
        };
        if name.starts_with('.') {
            return false;
        }
        name.ends_with(".toml") || name.ends_with(".list") || path.extension().is_none()
    })
}

/// Gathers a burst of file events: a reload is due once the folder has been quiet for
/// [`QUIET_PERIOD`], or [`MAX_SETTLE`] after the first event, whichever comes first.
#[derive(Debug, Default)]
pub struct Debouncer {
    first: Option<tokio::time::Instant>,
    last: Option<tokio::time::Instant>,
}

impl Debouncer {
    pub fn event(&mut self, now: tokio::time::Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the pending reload is due; `None` when nothing is pending.
    pub fn due(&self) -> Option<tokio::time::Instant> {
        Some((self.last? + QUIET_PERIOD).min(self.first? + MAX_SETTLE))
    }

    pub fn clear(&mut self) {
        *self = Debouncer::default();
    }
}

/// Who is told about a reload besides the log.
pub struct Observers<'a> {
    pub metrics: &'a Metrics,
    pub status: &'a Status,
}

/// Compiles `dir` off the async threads and swaps the result in when it compiles.
pub async fn reload(
    dir: &Path,
    current: &Arc<ArcSwap<RuleSet>>,
    trigger: Trigger,
    observers: Observers<'_>,
) -> ReloadOutcome {
    let dir_owned: PathBuf = dir.to_owned();
    let old_version = current.load().version().to_owned();
    let current_version = old_version.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        rules::load_dir_if_changed(&dir_owned, &current_version)
    })
    .await
    .unwrap_or_else(|panic| {
        Err(vec![Diagnostic {
            path: dir.to_owned(),
            line: 0,
            col: 0,
            message: format!("rule compiler failed: {panic}"),
        }])
    });
    let outcome = match compiled {
        Ok(None) => {
            observers.status.reload_unchanged();
            ReloadOutcome::Unchanged {
                version: old_version,
            }
        }
        Ok(Some(new_set)) => {
            // Unchanged rate conditions keep counting where the old set left off.
            let previous = current.load_full();
            new_set.inherit_state(&previous);
            let diff = new_set.diff(&previous);
            for warning in new_set.warnings() {
                tracing::warn!(trigger = trigger.as_str(), "{warning}");
            }

            let new_version = new_set.version().to_owned();
            let rules = new_set.len();
            let new_set = Arc::new(new_set);
            // Rules added or redefined start their status history afresh.
            let redefined = diff.added.iter().chain(&diff.changed).map(String::as_str);
            observers.status.rules_swapped(&new_set, redefined);
            observers.metrics.rules_in_force(&new_version, rules);
            current.store(new_set);
            if rules == 0 {
                tracing::warn!("the rules folder holds no rules: every call is allowed");
            }
            ReloadOutcome::Swapped {
                old_version,
                new_version,
                rules,
                diff,
            }
        }
        Err(diagnostics) => {
            let first = diagnostics
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            let more = diagnostics.len().saturating_sub(1);
            let message = match more {
                0 => first,
                1 => format!("{first} (and 1 more problem)"),
                _ => format!("{first} (and {more} more problems)"),
            };
            observers.status.reload_failed(message);
            ReloadOutcome::KeptLastGood {
                version: old_version,
                diagnostics,
            }
        }
    };
    let failed = matches!(outcome, ReloadOutcome::KeptLastGood { .. });
    observers.metrics.reloaded(!failed);
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
            tracing::info!(trigger, version, "rules unchanged");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(paths: &[&str]) -> notify::Event {
        let mut event = notify::Event::new(notify::EventKind::Any);
        for path in paths {
            event = event.add_path(PathBuf::from(path));
        }
        event
    }

    #[test]
    fn only_rule_and_list_files_trigger_a_reload() {
        assert!(touches_rules(&event(&[
            "/etc/callscreen/rules/50-spam.toml"
        ])));
        assert!(touches_rules(&event(&["/etc/callscreen/rules/vip.list"])));
        assert!(touches_rules(&event(&[
            "/r/.50-spam.toml.tmp",
            "/r/50-spam.toml"
        ])));
        assert!(touches_rules(&event(&["/etc/callscreen/rules"])));
        assert!(touches_rules(&event(&[])));
        assert!(!touches_rules(&event(&["/r/.50-spam.toml.swp"])));
        assert!(!touches_rules(&event(&["/r/notes.txt"])));
        assert!(!touches_rules(&event(&["/r/50-spam.toml~"])));
    }

    #[test]
    fn a_burst_is_due_when_quiet_or_after_the_cap() {
        let start = tokio::time::Instant::now();
        let mut debouncer = Debouncer::default();
        assert_eq!(debouncer.due(), None);
        debouncer.event(start);
        assert_eq!(debouncer.due(), Some(start + QUIET_PERIOD));
        // Events every 100 ms keep it waiting, but never past the cap.
        for step in 1..20 {
            debouncer.event(start + Duration::from_millis(100 * step));
        }
        assert_eq!(debouncer.due(), Some(start + MAX_SETTLE));
        debouncer.clear();
        assert_eq!(debouncer.due(), None);
    }

    #[test]
    fn a_replaced_folder_is_noticed() {
        let parent = tempfile::tempdir().unwrap();
        let rules = parent.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        let (sender, _receiver) = mpsc::channel(1);
        let mut watcher = RulesWatcher::new(&rules, sender);
        assert!(!watcher.folder_replaced());
        std::fs::rename(&rules, parent.path().join("rules.old")).unwrap();
        std::fs::create_dir(&rules).unwrap();
        assert!(watcher.folder_replaced());
        watcher.rewatch();
        assert!(!watcher.folder_replaced());
    }
}
