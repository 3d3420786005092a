//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Per-rule counters create their label on a rule's first hit and stop creating new labels
//! after [`RULE_LABEL_LIMIT`] rules (later ones count under `rule="_other"`), so a rule set
//! of 100,000 rules cannot blow up the series count.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// At most this many distinct `rule` label values per per-rule family.
pub const RULE_LABEL_LIMIT: usize = 500;
const OTHER_RULES: &str = "_other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub action: &'static str,
    pub outcome: &'static str,
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

pub struct Metrics {
    registry: Registry,
    notifications: Family<StatusLabels, Counter>,
    invites: Counter,
    decisions: Family<DecisionLabels, Counter>,
    rule_hits: Family<RuleLabels, Counter>,
    rule_shadow_hits: Family<RuleLabels, Counter>,
    graph_request_seconds: Histogram,
    graph_responses: Family<StatusLabels, Counter>,
    token_refreshes: Family<ResultLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    rules_info: Family<VersionLabels, Gauge>,
    rules_loaded: Gauge,
    inbound_auth_failures: Family<ReasonLabels, Counter>,
    audit_records: Counter,
    audit_records_lost: Counter,
    log_lines_dropped: Counter,
    /// Rule names that already own a label; guarded so the limit holds under concurrency.
    labelled_rules: Mutex<HashSet<String>>,
    current_version: Mutex<Option<String>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("callscreen");
        let metrics = Metrics {
            notifications: Family::default(),
            invites: Counter::default(),
            decisions: Family::default(),
            rule_hits: Family::default(),
            rule_shadow_hits: Family::default(),
            graph_request_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            graph_responses: Family::default(),
            token_refreshes: Family::default(),
            reloads: Family::default(),
            rules_info: Family::default(),
            rules_loaded: Gauge::default(),
            inbound_auth_failures: Family::default(),
            audit_records: Counter::default(),
            audit_records_lost: Counter::default(),
            log_lines_dropped: Counter::default(),
            labelled_rules: Mutex::new(HashSet::new()),
            current_version: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register(
            "notifications",
            "Notification POSTs answered, by HTTP status",
            metrics.notifications.clone(),
        );
        registry.register(
            "invites",
            "Incoming-call invites received",
            metrics.invites.clone(),
        );
        registry.register(
            "decisions",
            "Screened invites by action, outcome and mode",
            metrics.decisions.clone(),
        );
        registry.register(
            "rule_hits",
            "Invites decided by each enforced rule (rule=\"_other\" past the label limit)",
            metrics.rule_hits.clone(),
        );
        registry.register(
            "rule_shadow_hits",
            "Invites an audit-mode rule would have rejected",
            metrics.rule_shadow_hits.clone(),
        );
        registry.register(
            "graph_request_duration_seconds",
            "Duration of reject requests to Graph",
            metrics.graph_request_seconds.clone(),
        );
        registry.register(
            "graph_responses",
            "Graph responses to reject requests, by status (\"error\" = no response)",
            metrics.graph_responses.clone(),
        );
        registry.register(
            "token_refreshes",
            "Graph token requests by result",
            metrics.token_refreshes.clone(),
        );
        registry.register(
            "rule_reloads",
            "Rule reloads by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "rules_info",
            "The rules version in force (value is always 1)",
            metrics.rules_info.clone(),
        );
        registry.register(
            "rules",
            "Rules in the set in force",
            metrics.rules_loaded.clone(),
        );
        registry.register(
            "inbound_auth_failures",
            "Notifications refused for failed authentication, by reason",
            metrics.inbound_auth_failures.clone(),
        );
        registry.register(
            "audit_records",
            "Audit records written",
            metrics.audit_records.clone(),
        );
        registry.register(
            "audit_records_lost",
            "Audit records that could not be written (each loss is also logged)",
            metrics.audit_records_lost.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because stderr was not read fast enough (audit records never are)",
            metrics.log_lines_dropped.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The exposition text for `GET /metrics`.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    pub fn notification_answered(&self, status: u16) {
        self.notifications
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc();
    }

    pub fn invite_received(&self) {
        self.invites.inc();
    }

    pub fn decided(&self, labels: DecisionLabels, rule: Option<&str>) {
        let shadow = labels.mode == "audit";
        self.decisions.get_or_create(&labels).inc();
        if let Some(rule) = rule {
            let label = RuleLabels {
                rule: self.rule_label(rule),
            };
            let family = if shadow {
                &self.rule_shadow_hits
            } else {
                &self.rule_hits
            };
            family.get_or_create(&label).inc();
        }
    }

    /// An audit-mode rule matched before the rule that decided (see `Decision::shadow`).
    pub fn shadow_hit(&self, rule: &str) {
        let label = RuleLabels {
            rule: self.rule_label(rule),
        };
        self.rule_shadow_hits.get_or_create(&label).inc();
    }

    fn rule_label(&self, rule: &str) -> String {
        let mut labelled = self
            .labelled_rules
            .lock()
            .expect("metrics lock is never poisoned");
        if labelled.contains(rule) {
            return rule.to_owned();
        }
        if labelled.len() < RULE_LABEL_LIMIT {
            labelled.insert(rule.to_owned());
            return rule.to_owned();
        }
        OTHER_RULES.to_owned()
    }

    pub fn graph_answered(&self, status: Option<u16>, elapsed: Duration) {
        self.graph_request_seconds.observe(elapsed.as_secs_f64());
        let status = status.map_or_else(|| "error".to_owned(), |status| status.to_string());
        self.graph_responses
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    pub fn token_refreshed(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.token_refreshes
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// Records the rules version in force; the previous version's series is removed.
    pub fn rules_in_force(&self, version: &str, rules: usize) {
        let mut current = self
            .current_version
            .lock()
            .expect("metrics lock is never poisoned");
        if let Some(old) = current.take() {
            self.rules_info.remove(&VersionLabels { version: old });
        }
        self.rules_info
            .get_or_create(&VersionLabels {
                version: version.to_owned(),
            })
            .set(1);
        *current = Some(version.to_owned());
        self.rules_loaded.set(rules as i64);
    }

    /// Brings the audit counters up to the writer's own tallies (called at scrape time, so
    /// the writer needs no handle on the metrics).
    pub fn sync_audit(&self, written: u64, lost: u64) {
        self.audit_records
            .inc_by(written.saturating_sub(self.audit_records.get()));
        self.audit_records_lost
            .inc_by(lost.saturating_sub(self.audit_records_lost.get()));
    }

    /// Brings the dropped-log-lines counter up to the log writer's own tally.
    pub fn sync_log_drops(&self, dropped: u64) {
        self.log_lines_dropped
            .inc_by(dropped.saturating_sub(self.log_lines_dropped.get()));
    }

    pub fn auth_failed(&self, reason: &'static str) {
        self.inbound_auth_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.invite_received();
        metrics.decided(
            DecisionLabels {
                action: "reject",
                outcome: "rejected",
                mode: "enforce",
            },
            Some("no-anonymous"),
        );
        metrics.decided(
            DecisionLabels {
                action: "reject",
                outcome: "would_reject",
                mode: "audit",
            },
            Some("shadow"),
        );
        metrics.graph_answered(Some(202), Duration::from_millis(40));
        metrics.rules_in_force("aaaaaaaaaaaa", 3);
        metrics.rules_in_force("bbbbbbbbbbbb", 4);
        let text = metrics.encode();
        for expected in [
            "callscreen_invites_total 1",
            "callscreen_decisions_total{action=\"reject\",outcome=\"rejected\",mode=\"enforce\"} 1",
            "callscreen_rule_hits_total{rule=\"no-anonymous\"} 1",
            "callscreen_rule_shadow_hits_total{rule=\"shadow\"} 1",
            "callscreen_graph_responses_total{status=\"202\"} 1",
            "callscreen_graph_request_duration_seconds_count 1",
            "callscreen_rules_info{version=\"bbbbbbbbbbbb\"} 1",
            "callscreen_rules 4",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
        assert!(!text.contains("aaaaaaaaaaaa"), "old version still exported");
    }

    #[test]
    fn rule_labels_are_capped() {
        let metrics = Metrics::new();
        let labels = || DecisionLabels {
            action: "reject",
            outcome: "rejected",
            mode: "enforce",
        };
        for index in 0..(RULE_LABEL_LIMIT + 50) {
            metrics.decided(labels(), Some(&format!("rule-{index}")));
        }
        let text = metrics.encode();
        let series = text
            .lines()
            .filter(|line| line.starts_with("callscreen_rule_hits_total{"));
        assert_eq!(series.count(), RULE_LABEL_LIMIT + 1);
        assert!(
            text.contains("callscreen_rule_hits_total{rule=\"_other\"} 50"),
            "{text}"
        );
    }
}
