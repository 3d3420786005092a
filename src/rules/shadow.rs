//! Evidence for rules in audit mode: how many invites each would have taken (rejected,
//! redirected or ignored), from how many distinct callers, and since when. `replay` fills
//! one from an audit log; the daemon keeps one for its status page.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use jiff::Timestamp;
use serde::Serialize;

use super::matcher::with_folded;
use super::{Action, Decision, RuleMode};
use crate::facts::Facts;

/// Distinct callers remembered per rule; past it `callers` is a lower bound.
const MAX_CALLERS: usize = 1_000_000;

/// Per audit-mode rule, the invites it would have rejected.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowStats {
    rules: BTreeMap<String, ShadowRule>,
}

/// One audit-mode rule's evidence.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowRule {
    /// Invites the rule would have rejected.
    pub calls: u64,
    /// Distinct callers among them, by phone number, else caller id.
    pub callers: u64,
    /// True once more callers were seen than are remembered: `callers` is then a minimum.
    pub callers_capped: bool,
    /// Calls whose caller had neither a number nor an id (anonymous).
    pub unidentified: u64,
    /// The first and last such invite (RFC 3339), and the rules version in force at the
    /// first.
    pub since: String,
    pub since_version: String,
    pub last: String,
    #[serde(skip)]
    seen: HashSet<u64>,
}

impl ShadowStats {
    pub fn new() -> ShadowStats {
        ShadowStats::default()
    }

    /// Counts `decision` when it is a reject by a rule in audit mode; returns whether it
    /// counted. `at` and `rules_version` say when and under which rules it was decided.
    pub fn record(
        &mut self,
        decision: &Decision,
        facts: &Facts,
        at: Timestamp,
        rules_version: &str,
    ) -> bool {
        let Some(rule) = decision.rule.as_deref() else {
            return false;
        };
        // Any action an audit-mode rule would have taken (reject, redirect, ignore) counts.
        if decision.action == Action::Allow || decision.mode != RuleMode::Audit {
            return false;
        }
        let at = at.to_string();
        let stats = self.rules.entry(rule.to_owned()).or_default();
        if stats.calls == 0 {
            stats.since = at.clone();
            stats.since_version = rules_version.to_owned();
        }
        stats.calls += 1;
        stats.last = at;
        let caller = facts
            .caller
            .phone
            .as_deref()
            .or(facts.caller.id.as_deref())
            .filter(|caller| !caller.is_empty());
        match caller {
            None => stats.unidentified += 1,
            Some(caller) => {
                let mut hasher = DefaultHasher::new();
                with_folded(caller, |caller| caller.hash(&mut hasher));
                let key = hasher.finish();
                if stats.seen.contains(&key) {
                } else if stats.seen.len() < MAX_CALLERS {
                    stats.seen.insert(key);
                    stats.callers += 1;
                } else {
                    stats.callers_capped = true;
                }
            }
        }
        true
    }

    pub fn get(&self, rule: &str) -> Option<&ShadowRule> {
        self.rules.get(rule)
    }

    /// Rules with evidence, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ShadowRule)> {
        self.rules
            .iter()
            .map(|(name, stats)| (name.as_str(), stats))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Drops a rule's evidence (it was redefined: the old evidence says nothing about it).
    pub fn forget(&mut self, rule: &str) {
        self.rules.remove(rule);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rules::Reason;

    fn decision(rule: &str, mode: RuleMode) -> Decision {
        Decision {
            action: Action::Reject,
            rule: Some(Arc::from(rule)),
            reason: Reason::None,
            callback_uri: None,
            mode,
            redirect: None,
            shadow: None,
        }
    }

    fn caller(phone: Option<&str>, id: Option<&str>) -> Facts {
        let mut facts = Facts::default();
        facts.caller.phone = phone.map(str::to_owned);
        facts.caller.id = id.map(str::to_owned);
        facts
    }

    #[test]
    fn counts_calls_distinct_callers_and_the_first_sighting() {
        let mut stats = ShadowStats::new();
        let audit = decision("bots", RuleMode::Audit);
        let t0: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert!(stats.record(&audit, &caller(Some("+15550100"), None), t0, "aaa"));
        assert!(stats.record(&audit, &caller(None, Some("ID-1")), t1, "bbb"));
        assert!(stats.record(&audit, &caller(None, Some("id-1")), t1, "bbb"));
        assert!(stats.record(&audit, &caller(None, None), t1, "bbb"));
        assert!(!stats.record(
            &decision("x", RuleMode::Enforce),
            &caller(None, None),
            t1,
            "b"
        ));
        assert!(!stats.record(&Decision::default_allow(), &caller(None, None), t1, "b"));

        let bots = stats.get("bots").unwrap();
        assert_eq!((bots.calls, bots.callers, bots.unidentified), (4, 2, 1));
        assert_eq!(bots.since, "2026-12-01T10:00:00Z");
        assert_eq!(bots.since_version, "aaa");
        assert_eq!(bots.last, "2026-12-02T10:00:00Z");
        assert_eq!(stats.iter().count(), 1);
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["rules"]["bots"]["callers"], 2);
    }
}
