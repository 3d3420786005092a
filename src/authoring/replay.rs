//! Replay: decide every invite recorded in audit logs again with another rule set, and
//! report the decisions that would change, per rule, plus the evidence gathered for rules
//! in audit mode. Records are re-decided in the order read, at their recorded time, so
//! time windows and rate conditions see what the daemon saw.

use std::collections::BTreeMap;
use std::io::BufRead;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::facts::Facts;
use crate::rules::{Action, RuleSet, ShadowStats};

/// The fields of an audit record replay needs; everything else is ignored, so records from
/// newer daemons still read.
#[derive(Debug, Deserialize)]
struct Record {
    ts: String,
    call_id: String,
    action: Action,
    rule: Option<String>,
    outcome: Option<String>,
    rules_version: Option<String>,
    facts: Option<Facts>,
}

/// One decision that comes out differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub call_id: String,
    pub ts: String,
    pub old_action: Action,
    pub old_rule: Option<String>,
    pub new_action: Action,
    pub new_rule: Option<String>,
}

/// How the changes touch one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleChanges {
    /// Invites this rule would now decide that it (or no rule) did not before.
    pub gained: u64,
    /// Invites this rule decided that it would no longer.
    pub lost: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ReplayReport {
    /// Records read (lines holding a record), duplicates included.
    pub records: u64,
    pub replayed: u64,
    /// `duplicate` records: Graph's redeliveries, decided once already.
    pub duplicates: u64,
    /// Records without `facts` (written before audit records carried them).
    pub without_facts: u64,
    pub bad_lines: u64,
    pub changes: Vec<Change>,
    /// Per rule name; `(no rule)` for the default allow.
    pub per_rule: BTreeMap<String, RuleChanges>,
    /// For each rule of the new set in audit mode: what it would have rejected.
    pub shadow: ShadowStats,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

const NO_RULE: &str = "(no rule)";

impl ReplayReport {
    /// Re-decides every record read from `input`; `source` names it in warnings.
    pub fn read(&mut self, rules: &RuleSet, source: &str, input: impl BufRead) {
        for (number, line) in input.lines().enumerate() {
            let line = match line {
                Ok(line) => line,
                Err(error) => {
                    let message = format!("{source}:{}: cannot read: {error}", number + 1);
                    self.warnings.push(message);
                    self.bad_lines += 1;
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(&line) {
                Ok(record) => self.record(rules, source, number + 1, record),
                Err(error) => {
                    let message = format!("{source}:{}: not an audit record: {error}", number + 1);
                    self.warnings.push(message);
                    self.bad_lines += 1;
                }
            }
        }
    }

    fn record(&mut self, rules: &RuleSet, source: &str, line: usize, record: Record) {
        self.records += 1;
        if record.outcome.as_deref() == Some("duplicate") {
            self.duplicates += 1;
            return;
        }
        let Some(facts) = record.facts else {
            self.without_facts += 1;
            return;
        };
        let Ok(at) = record.ts.parse::<Timestamp>() else {
            let message = format!("{source}:{line}: invalid time {:?}", record.ts);
            self.warnings.push(message);
            self.bad_lines += 1;
            return;
        };
        self.replayed += 1;
        let decision = rules.evaluate_at(&facts, at);
        let version = record.rules_version.as_deref().unwrap_or("unknown");
        self.shadow.record(&decision, &facts, at, version);
        if let Some(shadow) = &decision.shadow {
            self.shadow.record(shadow, &facts, at, version);
        }

        let new_rule = decision.rule.as_deref().map(str::to_owned);
        if decision.action == record.action && new_rule == record.rule {
            return;
        }
        let old_name = record.rule.clone().unwrap_or_else(|| NO_RULE.to_owned());
        let new_name = new_rule.clone().unwrap_or_else(|| NO_RULE.to_owned());
        if old_name != new_name {
            self.per_rule.entry(old_name).or_default().lost += 1;
            self.per_rule.entry(new_name).or_default().gained += 1;
        }
        self.changes.push(Change {
            call_id: record.call_id,
            ts: record.ts,
            old_action: record.action,
            old_rule: record.rule,
            new_action: decision.action,
            new_rule,
        });
    }
}

/// `reject by "rule"`, or `allow (no rule)`.
pub fn describe(action: Action, rule: Option<&str>) -> String {
    match rule {
        Some(rule) => format!("{} by {rule:?}", action.as_str()),
        None => format!("{} {NO_RULE}", action.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::rules::{Source, compile};

    fn rules(text: &str) -> RuleSet {
        compile(&[Source {
            path: PathBuf::from("r.toml"),
            text: text.to_owned(),
        }])
        .unwrap()
    }

    fn line(call: &str, action: &str, rule: Option<&str>, outcome: &str, kind: &str) -> String {
        let mut facts = Facts {
            call_id: call.into(),
            ..Facts::default()
        };
        facts.caller.kind = kind.into();
        facts.caller.id = Some(format!("id-{call}"));
        serde_json::json!({
            "ts": "2026-12-01T10:00:00Z", "call_id": call, "action": action, "rule": rule,
            "outcome": outcome, "rules_version": "old", "future_field": 1, "facts": facts,
        })
        .to_string()
    }

    #[test]
    fn reports_changed_decisions_per_rule_and_skips_duplicates_and_bad_lines() {
        let set = rules(
            "[[rule]]\nname = \"guests\"\naction = \"reject\"\n[rule.when]\n\
             caller.kind = \"guest\"\n\n[[rule]]\nname = \"bots\"\naction = \"reject\"\n\
             mode = \"audit\"\n[rule.when]\ncaller.kind = \"application\"\n",
        );
        let log = [
            line("a", "allow", None, "allowed", "guest"),
            line("b", "allow", None, "allowed", "user"),
            line("a", "allow", None, "duplicate", "guest"),
            "{not json".to_owned(),
            String::new(),
            line("c", "reject", Some("old-rule"), "would_reject", "user"),
            line("d", "allow", None, "allowed", "application"),
            line("e", "allow", None, "allowed", "application"),
            r#"{"ts":"2026-12-01T10:00:00Z","call_id":"f","action":"allow","rule":null}"#
                .to_owned(),
        ]
        .join("\n");
        let mut report = ReplayReport::default();
        report.read(&set, "audit.jsonl", log.as_bytes());
        assert_eq!(report.records, 7);
        assert_eq!(report.replayed, 5);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.without_facts, 1);
        assert_eq!(report.bad_lines, 1);
        assert!(report.warnings[0].starts_with("audit.jsonl:4: not an audit record"));
        let changed: Vec<_> = report
            .changes
            .iter()
            .map(|change| (change.call_id.as_str(), change.new_rule.as_deref()))
            .collect();
        assert_eq!(
            changed,
            [
                ("a", Some("guests")),
                ("c", None),
                ("d", Some("bots")),
                ("e", Some("bots"))
            ]
        );
        assert_eq!(
            report.per_rule["guests"],
            RuleChanges { gained: 1, lost: 0 }
        );
        assert_eq!(
            report.per_rule["(no rule)"],
            RuleChanges { gained: 1, lost: 3 }
        );
        assert_eq!(
            report.per_rule["old-rule"],
            RuleChanges { gained: 0, lost: 1 }
        );
        let bots = report.shadow.get("bots").unwrap();
        assert_eq!((bots.calls, bots.callers), (2, 2));
        assert_eq!(bots.since, "2026-12-01T10:00:00Z");
        assert_eq!(bots.since_version, "old");
    }
}
