//! What `GET /status` and `callscreen status` report: uptime, mode, the rules in force and
//! since when, the last reload error, and per rule its hits. Audit-mode rules also keep
//! shadow evidence ([`ShadowStats`]): how many calls from how many distinct callers they
//! would have taken.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::facts::Facts;
use crate::rules::{Decision, RuleSet, ShadowStats};

pub struct Status {
    started: std::time::Instant,
    started_at: jiff::Timestamp,
    inner: Mutex<Inner>,
}

struct Inner {
    rules_version: String,
    rules_loaded_at: jiff::Timestamp,
    last_reload_error: Option<ReloadError>,
    /// When each rules version in use came into force. A rule's current definition dates
    /// from one of them; versions no rule dates from any more are dropped at each swap.
    generations: Vec<Generation>,
    /// The generation most rules in force date from; the others are in `exceptions`. A set
    /// can hold 100,000 rules, and after a typical reload all but a few share one.
    common: u32,
    exceptions: HashMap<Arc<str>, u32>,
    /// Counts of the rules in force that were hit.
    hits: HashMap<Arc<str>, Hits>,
    /// What audit-mode rules would have done.
    shadow: ShadowStats,
}

#[derive(Clone, Serialize)]
struct ReloadError {
    at: String,
    message: String,
}

struct Generation {
    at: jiff::Timestamp,
    version: String,
}

#[derive(Default)]
struct Hits {
    hits: u64,
    last_hit: Option<jiff::Timestamp>,
}

/// The JSON document served at `/status`.
#[derive(Serialize)]
pub struct StatusReport {
    pub version: &'static str,
    pub started_at: String,
    pub uptime_seconds: u64,
    pub mode: String,
    pub rules_version: String,
    pub rules_loaded_at: String,
    pub rule_count: usize,
    pub last_reload_error: Option<serde_json::Value>,
    pub rules: Vec<RuleReport>,
}

#[derive(Serialize)]
pub struct RuleReport {
    pub name: String,
    pub enabled: bool,
    pub hits: u64,
    /// Calls this audit-mode rule would have taken.
    pub shadow_hits: u64,
    /// Distinct callers (by number, else id) among the shadow hits; anonymous callers are
    /// not counted.
    pub shadow_distinct_callers: u64,
    pub last_hit: Option<String>,
    /// When this rule's current definition came into force, and in which rules version.
    pub in_force_since: String,
    pub since_rules_version: String,
}

impl Status {
    pub fn new(rules: &RuleSet) -> Status {
        let now = jiff::Timestamp::now();
        Status {
            started: std::time::Instant::now(),
            started_at: now,
            inner: Mutex::new(Inner {
                rules_version: rules.version().to_owned(),
                rules_loaded_at: now,
                last_reload_error: None,
                generations: vec![Generation {
                    at: now,
                    version: rules.version().to_owned(),
                }],
                common: 0,
                exceptions: HashMap::new(),
                hits: HashMap::new(),
                shadow: ShadowStats::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("status lock is never poisoned")
    }

    /// Counts a decision made by a rule: what a rule in audit mode would have done as
    /// shadow evidence, anything else as a hit.
    pub fn record_hit(&self, decision: &Decision, facts: &Facts) {
        let Some(rule) = decision.rule.as_deref() else {
            return;
        };
        let now = jiff::Timestamp::now();
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner
            .shadow
            .record(decision, facts, now, &inner.rules_version)
        {
            return;
        }
        let hits = match inner.hits.get_mut(rule) {
            Some(hits) => hits,
            None => inner.hits.entry(Arc::from(rule)).or_default(),
        };
        hits.last_hit = Some(now);
        hits.hits += 1;
    }

    /// A new rule set is in force. Rules named in `changed` (new or redefined) start their
    /// counters afresh; rules that kept their definition keep their history. Every rule
    /// not named in `changed` must have been in force before.
    pub fn rules_swapped<'a>(&self, rules: &RuleSet, changed: impl IntoIterator<Item = &'a str>) {
        let now = jiff::Timestamp::now();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let version = rules.version().to_owned();
        let changed: HashSet<&str> = changed.into_iter().collect();
        inner.generations.push(Generation {
            at: now,
            version: version.clone(),
        });
        let current = inner.generations.len() as u32 - 1;
        let since = |name: &str| {
            if changed.contains(name) {
                current
            } else {
                inner.exceptions.get(name).copied().unwrap_or(inner.common)
            }
        };

        // The generation most rules now date from becomes the common one.
        let mut counts = vec![0usize; inner.generations.len()];
        for name in rules.rule_names() {
            counts[since(name) as usize] += 1;
        }
        let common = (0..counts.len())
            .max_by_key(|&at| (counts[at], at))
            .unwrap_or(0) as u32;
        let mut exceptions = HashMap::new();
        for name in rules.shared_rule_names() {
            let since = since(name);
            if since != common {
                exceptions.insert(name.clone(), since);
            }
        }
        let mut hits = HashMap::new();
        for name in rules.rule_names() {
            if changed.contains(name) {
                inner.shadow.forget(name);
                continue;
            }
            if let Some((name, counted)) = inner.hits.remove_entry(name) {
                hits.insert(name, counted);
            }
        }

        // Keep only the generations some rule dates from, renumbered in order.
        let mut used = vec![false; inner.generations.len()];
        used[common as usize] = true;
        for since in exceptions.values() {
            used[*since as usize] = true;
        }
        let mut renumbered = vec![0; used.len()];
        let mut kept = 0;
        for (at, used) in used.iter().enumerate() {
            renumbered[at] = kept;
            kept += u32::from(*used);
        }
        for since in exceptions.values_mut() {
            *since = renumbered[*since as usize];
        }
        let mut at = 0;
        inner.generations.retain(|_| {
            at += 1;
            used[at - 1]
        });

        inner.common = renumbered[common as usize];
        inner.exceptions = exceptions;
        inner.hits = hits;
        inner.rules_version = version;
        inner.rules_loaded_at = now;
        inner.last_reload_error = None;
    }

    /// A reload found the files of the set in force: an earlier failure was undone.
    pub fn reload_unchanged(&self) {
        self.lock().last_reload_error = None;
    }

    pub fn reload_failed(&self, message: String) {
        let at = jiff::Timestamp::now().to_string();
        self.lock().last_reload_error = Some(ReloadError { at, message });
    }

    pub fn report(&self, rules: &RuleSet, mode: &str) -> StatusReport {
        let inner = self.lock();
        let enabled: HashSet<&str> = rules.enabled_rule_names().collect();
        let reports = rules
            .rule_names()
            .map(|name| {
                let hits = inner.hits.get(name);
                let shadow = inner.shadow.get(name);
                let since = inner.exceptions.get(name).copied().unwrap_or(inner.common);
                let since = &inner.generations[since as usize];
                let last_hit = hits.and_then(|h| h.last_hit).map(|t| t.to_string());
                RuleReport {
                    name: name.to_owned(),
                    enabled: enabled.contains(name),
                    hits: hits.map_or(0, |h| h.hits),
                    shadow_hits: shadow.map_or(0, |s| s.calls),
                    shadow_distinct_callers: shadow.map_or(0, |s| s.callers),
                    last_hit: last_hit.or_else(|| shadow.map(|s| s.last.clone())),
                    in_force_since: since.at.to_string(),
                    since_rules_version: since.version.clone(),
                }
            })
            .collect();
        StatusReport {
            version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_at.to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            mode: mode.to_owned(),
            rules_version: rules.version().to_owned(),
            rules_loaded_at: inner.rules_loaded_at.to_string(),
            rule_count: rules.len(),
            last_reload_error: inner
                .last_reload_error
                .as_ref()
                .map(|error| serde_json::json!({ "at": error.at, "message": error.message })),
            rules: reports,
        }
    }
}
