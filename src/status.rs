//! What `GET /status` and `callscreen status` report: uptime, mode, the rules in force and
//! since when, the last reload error, and per rule its hits. Audit-mode rules also keep
//! shadow evidence ([`ShadowStats`]): how many calls from how many distinct callers they
//! would have rejected.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

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
    rules: HashMap<String, RuleStat>,
    shadow: ShadowStats,
}

#[derive(Clone, Serialize)]
struct ReloadError {
    at: String,
    message: String,
}

struct RuleStat {
    since: jiff::Timestamp,
    since_version: String,
    hits: u64,
    last_hit: Option<jiff::Timestamp>,
}

impl RuleStat {
    fn new(now: jiff::Timestamp, version: &str) -> RuleStat {
        RuleStat {
            since: now,
            since_version: version.to_owned(),
            hits: 0,
            last_hit: None,
        }
    }
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
    /// Calls this audit-mode rule would have rejected.
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
        let stats = rules
            .rule_names()
            .map(|name| (name.to_owned(), RuleStat::new(now, rules.version())))
            .collect();
        Status {
            started: std::time::Instant::now(),
            started_at: now,
            inner: Mutex::new(Inner {
                rules_version: rules.version().to_owned(),
                rules_loaded_at: now,
                last_reload_error: None,
                rules: stats,
                shadow: ShadowStats::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("status lock is never poisoned")
    }

    /// Counts a decision made by a rule: a reject by a rule in audit mode as shadow
    /// evidence, anything else as a hit.
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
        let version = &inner.rules_version;
        let stat = inner
            .rules
            .entry(rule.to_owned())
            .or_insert_with(|| RuleStat::new(now, version));
        stat.last_hit = Some(now);
        stat.hits += 1;
    }

    /// A new rule set is in force. Rules named in `changed` (new or redefined) start their
    /// counters afresh; rules that kept their definition keep their history.
    pub fn rules_swapped<'a>(&self, rules: &RuleSet, changed: impl IntoIterator<Item = &'a str>) {
        let now = jiff::Timestamp::now();
        let mut inner = self.lock();
        let version = rules.version().to_owned();
        let changed: HashSet<&str> = changed.into_iter().collect();
        let mut next = HashMap::with_capacity(rules.len());
        for name in rules.rule_names() {
            let stat = match inner.rules.remove(name) {
                Some(stat) if !changed.contains(name) => stat,
                _ => {
                    inner.shadow.forget(name);
                    RuleStat::new(now, &version)
                }
            };
            next.insert(name.to_owned(), stat);
        }
        inner.rules = next;
        inner.rules_version = version;
        inner.rules_loaded_at = now;
        inner.last_reload_error = None;
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
                let stat = inner.rules.get(name);
                let shadow = inner.shadow.get(name);
                let last_hit = stat.and_then(|s| s.last_hit).map(|t| t.to_string());
                RuleReport {
                    name: name.to_owned(),
                    enabled: enabled.contains(name),
                    hits: stat.map_or(0, |s| s.hits),
                    shadow_hits: shadow.map_or(0, |s| s.calls),
                    shadow_distinct_callers: shadow.map_or(0, |s| s.callers),
                    last_hit: last_hit.or_else(|| shadow.map(|s| s.last.clone())),
                    in_force_since: stat.map_or(inner.rules_loaded_at, |s| s.since).to_string(),
                    since_rules_version: stat
                        .map_or_else(|| inner.rules_version.clone(), |s| s.since_version.clone()),
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
