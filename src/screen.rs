//! Screening one invite: evaluate the current rules, carry out the decision (or only
//! record it), and write the audit record. This is the part of the pipeline after parsing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::audit::{AuditCaller, AuditLog, AuditRecord, Outcome, now_rfc3339};
use crate::facts::Facts;
use crate::graph::{GraphClient, RejectBody};
use crate::metrics::{DecisionLabels, Metrics};
use crate::rules::{Action, RuleMode, RuleSet};
use crate::status::Status;

/// How long a screened call id is remembered: Graph may redeliver a notification, but an
/// invite is dead after its ring window, so minutes are plenty.
const RECENT_TTL: Duration = Duration::from_secs(600);
/// At most this many call ids are remembered; the oldest go first.
const RECENT_CAPACITY: usize = 100_000;

/// Whether decisions are carried out.
pub enum Enforcement {
    DryRun,
    Enforce(Arc<GraphClient>),
}

pub struct Screener {
    rules: Arc<ArcSwap<RuleSet>>,
    enforcement: Enforcement,
    audit: AuditLog,
    recent: Mutex<RecentCalls>,
    default_callback_uri: Option<String>,
    answer_deadline: Duration,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
}

/// What a [`Screener`] is built from.
pub struct ScreenerParts {
    pub rules: Arc<ArcSwap<RuleSet>>,
    pub enforcement: Enforcement,
    pub audit: AuditLog,
    pub default_callback_uri: Option<String>,
    pub answer_deadline: Duration,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
}

impl Screener {
    pub fn new(parts: ScreenerParts) -> Screener {
        Screener {
            rules: parts.rules,
            enforcement: parts.enforcement,
            audit: parts.audit,
            recent: Mutex::new(RecentCalls::new(RECENT_CAPACITY, RECENT_TTL)),
            default_callback_uri: parts.default_callback_uri,
            answer_deadline: parts.answer_deadline,
            metrics: parts.metrics,
            status: parts.status,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Whether enforce mode holds a Graph token (always true in dry-run).
    pub fn graph_ready(&self) -> bool {
        match &self.enforcement {
            Enforcement::DryRun => true,
            Enforcement::Enforce(graph) => graph.has_token(),
        }
    }

    pub fn mode_name(&self) -> &'static str {
        match self.enforcement {
            Enforcement::DryRun => "dry-run",
            Enforcement::Enforce(_) => "enforce",
        }
    }

    pub fn rules(&self) -> &ArcSwap<RuleSet> {
        &self.rules
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Screens one invite received at `received`; returns once its audit record is queued.
    pub async fn screen(&self, facts: Facts, received: Instant) -> Outcome {
        // One rule set decides the whole invite, even if a reload lands meanwhile.
        let rules = self.rules.load_full();
        let decision = rules.evaluate(&facts);
        let first_sight = self
            .recent
            .lock()
            .expect("recent-calls lock is never poisoned")
            .first_sight(&facts.call_id, std::time::Instant::now());

        let callback_uri = match decision.action {
            Action::Reject => decision
                .callback_uri
                .as_deref()
                .map(str::to_owned)
                .or_else(|| self.default_callback_uri.clone()),
            Action::Allow => None,
        };
        let mode = match (decision.mode, &self.enforcement) {
            (RuleMode::Audit, _) => "audit",
            (RuleMode::Enforce, Enforcement::DryRun) => "dry-run",
            (RuleMode::Enforce, Enforcement::Enforce(_)) => "enforce",
        };

        let mut graph_status = None;
        let mut error = None;
        let outcome = if !first_sight {
            Outcome::Duplicate
        } else {
            match (decision.action, mode, &self.enforcement) {
                (Action::Allow, _, _) => Outcome::Allowed,
                (Action::Reject, "enforce", Enforcement::Enforce(graph)) => {
                    let body = RejectBody {
                        reason: decision.reason,
                        callback_uri: callback_uri.clone(),
                    };
                    let deadline = received + self.answer_deadline;
                    match graph.reject(&facts.call_id, &body, deadline).await {
                        Ok(status) => {
                            graph_status = Some(status);
                            Outcome::Rejected
                        }
                        Err(failure) => {
                            graph_status = failure.status();
                            error = Some(failure.to_string());
                            match failure {
                                crate::graph::GraphError::Expired { .. } => Outcome::Expired,
                                _ => Outcome::Failed,
                            }
                        }
                    }
                }
                (Action::Reject, _, _) => Outcome::WouldReject,
            }
        };

        let latency_ms = (received.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        self.metrics.decided(
            DecisionLabels {
                action: decision.action.as_str(),
                outcome: outcome.as_str(),
                mode,
            },
            decision.rule.as_deref(),
        );
        if let Some(rule) = decision.rule.as_deref()
            && outcome != Outcome::Duplicate
        {
            self.status.record_hit(rule, mode == "audit", &facts);
        }
        tracing::info!(
            call_id = %loggable(&facts.call_id),
            caller_kind = %loggable(&facts.caller.kind),
            action = decision.action.as_str(),
            rule = decision.rule.as_deref().unwrap_or("-"),
            mode,
            outcome = outcome.as_str(),
            graph_status = graph_status.unwrap_or(0),
            latency_ms,
            rules_version = rules.version(),
            "decision"
        );
        let reason = match decision.action {
            Action::Reject => Some(decision.reason),
            Action::Allow => None,
        };
        let record = AuditRecord {
            ts: now_rfc3339(),
            caller: AuditCaller::from_facts(&facts),
            call_id: facts.call_id.clone(),
            action: decision.action,
            rule: decision.rule.as_deref().map(str::to_owned),
            reason,
            callback_uri,
            mode,
            outcome,
            graph_status,
            region: facts.caller.region.clone(),
            modalities: facts.modalities.clone(),
            rules_version: rules.version().to_owned(),
            latency_ms,
            error,
            tenant: facts.tenant.clone(),
            call_chain_id: facts.call_chain_id.clone(),
            facts,
        };
        self.audit.record(record).await;
        outcome
    }
}

/// A value from a notification made safe for a text log line: control characters (line
/// breaks, terminal escapes, NUL) are escaped, so a hostile call id cannot forge log lines.
pub fn loggable(value: &str) -> std::borrow::Cow<'_, str> {
    if value.chars().any(char::is_control) {
        std::borrow::Cow::Owned(value.escape_debug().to_string())
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// Call ids already screened, bounded in size and age.
struct RecentCalls {
    seen: HashMap<String, std::time::Instant>,
    order: VecDeque<(String, std::time::Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl RecentCalls {
    fn new(capacity: usize, ttl: Duration) -> RecentCalls {
        RecentCalls {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            ttl,
        }
    }

    /// True the first time `call_id` is seen within the memory's age and size bounds.
    fn first_sight(&mut self, call_id: &str, now: std::time::Instant) -> bool {
        while let Some((oldest, at)) = self.order.front() {
            if now.duration_since(*at) < self.ttl && self.order.len() < self.capacity {
                break;
            }
            if self.seen.get(oldest) == Some(at) {
                self.seen.remove(oldest);
            }
            self.order.pop_front();
        }
        if self.seen.contains_key(call_id) {
            return false;
        }
        self.seen.insert(call_id.to_owned(), now);
        self.order.push_back((call_id.to_owned(), now));
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_for_logs() {
        assert_eq!(loggable("57dab8b1-894c"), "57dab8b1-894c");
        assert_eq!(loggable("a\nINFO forged"), "a\\nINFO forged");
        assert_eq!(loggable("x\u{1b}[31m\0"), "x\\u{1b}[31m\\0");
        assert!(matches!(loggable("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn a_call_is_seen_once_until_it_ages_out() {
        let mut recent = RecentCalls::new(10, Duration::from_secs(60));
        let start = std::time::Instant::now();
        assert!(recent.first_sight("a", start));
        assert!(!recent.first_sight("a", start + Duration::from_secs(59)));
        assert!(recent.first_sight("a", start + Duration::from_secs(61)));
    }

    #[test]
    fn memory_is_bounded_by_capacity() {
        let mut recent = RecentCalls::new(3, Duration::from_secs(600));
        let now = std::time::Instant::now();
        for id in ["a", "b", "c", "d", "e"] {
            assert!(recent.first_sight(id, now));
        }
        assert!(recent.len() <= 3, "{}", recent.len());
        // The oldest were forgotten, the newest are still known.
        assert!(!recent.first_sight("e", now));
        assert!(recent.first_sight("a", now));
    }
}
