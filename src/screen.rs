//! Screening one invite: evaluate the current rules, carry out the decision (or only
//! record it), and write the audit record. This is the part of the pipeline after parsing.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::audit::{AuditCaller, AuditLog, AuditRecord, Outcome, now_rfc3339};
use crate::facts::Facts;
use crate::graph::{GraphClient, GraphError, RedirectBody, RejectBody};
use crate::metrics::{DecisionLabels, Metrics};
use crate::rules::{Action, Decision, RuleMode, RuleSet};
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

    /// Decides an invite now, without any I/O: evaluates the current rules and remembers
    /// the call, so a repeated notification is recognised and, in front of a bot, later
    /// notifications about a call taken away are not forwarded.
    pub fn decide(&self, facts: Facts) -> Screening {
        // One rule set decides the whole invite, even if a reload lands meanwhile.
        let rules = self.rules.load_full();
        let decision = rules.evaluate(&facts);
        let mode = match (decision.mode, &self.enforcement) {
            (RuleMode::Audit, _) => "audit",
            (RuleMode::Enforce, Enforcement::DryRun) => "dry-run",
            (RuleMode::Enforce, Enforcement::Enforce(_)) => "enforce",
        };
        let enforced = mode == "enforce" && decision.action != Action::Allow;
        let fate = if enforced { Fate::Withheld } else { Fate::Kept };
        let earlier = self
            .recent
            .lock()
            .expect("recent-calls lock is never poisoned")
            .remember(&facts.call_id, fate, std::time::Instant::now());
        Screening {
            facts,
            decision,
            rules,
            mode,
            earlier,
        }
    }

    /// Whether notifications about `call_id` go to the bot behind callscreen: not when an
    /// enforced rule rejected, redirected or ignored the call.
    pub fn is_withheld(&self, call_id: &str) -> bool {
        let recent = self
            .recent
            .lock()
            .expect("recent-calls lock is never poisoned");
        recent.fate(call_id, std::time::Instant::now()) == Some(Fate::Withheld)
    }

    /// Carries out a decision (the Graph request in enforce mode), logs it and writes its
    /// audit record. `forwarded` is the bot's answer when the invite was passed on to it.
    pub async fn finish(
        &self,
        screening: Screening,
        received: Instant,
        forwarded: Option<Forwarded>,
    ) -> Outcome {
        let graph_result = match &self.enforcement {
            Enforcement::Enforce(graph) if screening.calls_graph() => {
                Some(self.call_graph(graph, &screening, received).await)
            }
            _ => None,
        };
        let (outcome, record) = self.conclude(screening, received, forwarded, graph_result);
        self.audit.record(record).await;
        outcome
    }

    /// [`Screener::finish`] for a decision that calls nothing (see
    /// [`Screening::calls_graph`]), without waiting: the record is queued at once, or
    /// handed back when the audit queue is full so the caller can wait for room elsewhere.
    pub fn finish_at_once(
        &self,
        screening: Screening,
        received: Instant,
    ) -> Result<(), Box<AuditRecord>> {
        debug_assert!(!screening.calls_graph());
        let (_, record) = self.conclude(screening, received, None, None);
        self.audit.try_record(record)
    }

    /// Sends the reject or redirect of `screening` to Graph.
    async fn call_graph(
        &self,
        graph: &GraphClient,
        screening: &Screening,
        received: Instant,
    ) -> Result<u16, GraphError> {
        let decision = &screening.decision;
        let call_id = &screening.facts.call_id;
        let callback_uri = self.callback_uri(decision);
        let deadline = received + self.answer_deadline;
        if decision.action == Action::Redirect {
            let redirect = decision
                .redirect
                .as_deref()
                .expect("redirect rules have targets");
            let masking = graph.accepts_masking();
            if !masking && (redirect.mask_caller.is_some() || redirect.mask_callee.is_some()) {
                tracing::warn!(
                    rule = decision.rule.as_deref().unwrap_or("-"),
                    "mask_caller/mask_callee left out: only Graph's beta endpoint takes them"
                );
            }
            let body = RedirectBody::new(redirect, callback_uri, masking);
            graph.redirect(call_id, &body, deadline).await
        } else {
            let body = RejectBody {
                reason: decision.reason,
                callback_uri,
            };
            graph.reject(call_id, &body, deadline).await
        }
    }

    /// The callback URI a reject or redirect carries: the rule's, else the default.
    fn callback_uri(&self, decision: &Decision) -> Option<String> {
        match decision.action {
            Action::Reject | Action::Redirect => decision
                .callback_uri
                .as_deref()
                .map(str::to_owned)
                .or_else(|| self.default_callback_uri.clone()),
            Action::Allow | Action::Ignore => None,
        }
    }

    /// Everything after the Graph request, none of it waiting: the outcome, metrics,
    /// status, the decision's log line and its audit record.
    fn conclude(
        &self,
        screening: Screening,
        received: Instant,
        forwarded: Option<Forwarded>,
        graph_result: Option<Result<u16, GraphError>>,
    ) -> (Outcome, AuditRecord) {
        let Screening {
            facts,
            decision,
            rules,
            mode,
            earlier,
        } = screening;
        let callback_uri = self.callback_uri(&decision);

        let mut graph_status = None;
        // Any kept invite forwarded to the bot (would_reject in dry-run too) records the
        // bot's answer.
        let upstream_status = match &forwarded {
            Some(Forwarded::Answered(status)) => Some(*status),
            _ => None,
        };
        let mut error = match &forwarded {
            Some(Forwarded::Failed(reason)) => Some(reason.clone()),
            _ => None,
        };
        let enforced = matches!(self.enforcement, Enforcement::Enforce(_)) && mode == "enforce";
        let outcome = match (earlier, decision.action, graph_result) {
            (Some(_), _, _) => Outcome::Duplicate,
            (None, Action::Allow, _) => match forwarded {
                None => Outcome::Allowed,
                Some(Forwarded::Answered(_)) => Outcome::Forwarded,
                Some(Forwarded::Failed(_)) => Outcome::Failed,
            },
            (None, Action::Reject, Some(result)) => {
                settle(result, Outcome::Rejected, &mut graph_status, &mut error)
            }
            (None, Action::Redirect, Some(result)) => {
                settle(result, Outcome::Redirected, &mut graph_status, &mut error)
            }
            (None, Action::Ignore, _) if enforced => Outcome::Ignored,
            (None, Action::Ignore, _) => Outcome::WouldIgnore,
            (None, Action::Reject, None) => Outcome::WouldReject,
            (None, Action::Redirect, None) => Outcome::WouldRedirect,
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
        if outcome != Outcome::Duplicate {
            self.status.record_hit(&decision, &facts);
            if let Some(shadow) = &decision.shadow {
                self.status.record_hit(shadow, &facts);
                self.metrics
                    .shadow_hit(shadow.rule.as_deref().unwrap_or("-"));
            }
        }
        tracing::info!(
            call_id = %loggable(&facts.call_id),
            caller_kind = %loggable(&facts.caller.kind),
            action = decision.action.as_str(),
            rule = decision.rule.as_deref().unwrap_or("-"),
            mode,
            outcome = outcome.as_str(),
            graph_status = graph_status.unwrap_or(0),
            upstream_status = upstream_status.unwrap_or(0),
            latency_ms,
            rules_version = rules.version(),
            "decision"
        );
        let reason = (decision.action == Action::Reject).then_some(decision.reason);
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
            upstream_status,
            shadow_rule: decision
                .shadow
                .as_ref()
                .and_then(|shadow| shadow.rule.as_deref().map(str::to_owned)),
            shadow_action: decision.shadow.as_ref().map(|shadow| shadow.action),
            region: facts.caller.region.clone(),
            modalities: facts.modalities.clone(),
            rules_version: rules.version().to_owned(),
            latency_ms,
            error,
            tenant: facts.tenant.clone(),
            call_chain_id: facts.call_chain_id.clone(),
            facts,
        };
        (outcome, record)
    }
}

/// Turns a Graph result into an outcome, noting Graph's status and any error.
fn settle(
    result: Result<u16, GraphError>,
    success: Outcome,
    graph_status: &mut Option<u16>,
    error: &mut Option<String>,
) -> Outcome {
    match result {
        Ok(status) => {
            *graph_status = Some(status);
            success
        }
        Err(failure) => {
            *graph_status = failure.status();
            *error = Some(failure.to_string());
            match failure {
                GraphError::Expired { .. } => Outcome::Expired,
                _ => Outcome::Failed,
            }
        }
    }
}

/// An invite decided but not yet carried out (see [`Screener::decide`]).
pub struct Screening {
    pub facts: Facts,
    pub decision: Decision,
    rules: Arc<RuleSet>,
    mode: &'static str,
    /// The call's fate when it was screened before: this invite is a repeat.
    earlier: Option<Fate>,
}

impl Screening {
    /// Whether the invite's notification goes on to the bot behind callscreen: everything
    /// but what an enforced rule took away (and repeats of such calls).
    pub fn is_kept(&self) -> bool {
        let taken = self.mode == "enforce" && self.decision.action != Action::Allow;
        match self.earlier {
            Some(fate) => fate == Fate::Kept,
            None => !taken,
        }
    }

    /// Whether carrying this decision out calls Graph: a first reject or redirect by an
    /// enforced rule.
    pub fn calls_graph(&self) -> bool {
        self.earlier.is_none()
            && self.mode == "enforce"
            && matches!(self.decision.action, Action::Reject | Action::Redirect)
    }
}

/// What the bot behind callscreen answered to a forwarded invite.
#[derive(Debug, Clone)]
pub enum Forwarded {
    Answered(u16),
    Failed(String),
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

/// What happened to a call, as far as the bot behind callscreen is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Allowed, or only recorded: its notifications go to the bot.
    Kept,
    /// Rejected, redirected or ignored by an enforced rule: the bot never hears of it.
    Withheld,
}

/// Call ids already screened, bounded in size and age.
///
/// Calls are remembered by a keyed 64-bit hash of their id, not the id itself: a full
/// memory holds 100,000 calls, and their ids would take about three times the space. The
/// key is random per process, so ids cannot be crafted to collide; two real calls among
/// 100,000 share a hash with a chance of about one in four billion.
struct RecentCalls {
    hasher: std::hash::RandomState,
    seen: HashMap<u64, (std::time::Instant, Fate)>,
    order: VecDeque<(u64, std::time::Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl RecentCalls {
    fn new(capacity: usize, ttl: Duration) -> RecentCalls {
        RecentCalls {
            hasher: std::hash::RandomState::new(),
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            ttl,
        }
    }

    fn key(&self, call_id: &str) -> u64 {
        self.hasher.hash_one(call_id)
    }

    /// Remembers `call_id` with `fate` unless it is already known; returns the fate it
    /// had when it was seen before.
    fn remember(&mut self, call_id: &str, fate: Fate, now: std::time::Instant) -> Option<Fate> {
        self.forget_old(now);
        let key = self.key(call_id);
        if let Some((_, earlier)) = self.seen.get(&key) {
            return Some(*earlier);
        }
        self.seen.insert(key, (now, fate));
        self.order.push_back((key, now));
        None
    }

    fn fate(&self, call_id: &str, now: std::time::Instant) -> Option<Fate> {
        let (at, fate) = self.seen.get(&self.key(call_id))?;
        (now.duration_since(*at) < self.ttl).then_some(*fate)
    }

    fn forget_old(&mut self, now: std::time::Instant) {
        while let Some((oldest, at)) = self.order.front() {
            if now.duration_since(*at) < self.ttl && self.order.len() < self.capacity {
                break;
            }
            if self
                .seen
                .get(oldest)
                .is_some_and(|(seen_at, _)| seen_at == at)
            {
                self.seen.remove(oldest);
            }
            self.order.pop_front();
        }
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
        assert_eq!(recent.remember("a", Fate::Withheld, start), None);
        let later = start + Duration::from_secs(59);
        assert_eq!(
            recent.remember("a", Fate::Kept, later),
            Some(Fate::Withheld)
        );
        assert_eq!(recent.fate("a", later), Some(Fate::Withheld));
        assert_eq!(recent.fate("a", start + Duration::from_secs(61)), None);
        assert_eq!(
            recent.remember("a", Fate::Kept, start + Duration::from_secs(61)),
            None
        );
    }

    #[test]
    fn memory_is_bounded_by_capacity() {
        let mut recent = RecentCalls::new(3, Duration::from_secs(600));
        let now = std::time::Instant::now();
        for id in ["a", "b", "c", "d", "e"] {
            assert_eq!(recent.remember(id, Fate::Kept, now), None);
        }
        assert!(recent.len() <= 3, "{}", recent.len());
        // The oldest were forgotten, the newest are still known.
        assert_eq!(recent.remember("e", Fate::Kept, now), Some(Fate::Kept));
        assert_eq!(recent.remember("a", Fate::Kept, now), None);
    }
}
