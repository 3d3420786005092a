//! Why a rule set decided what it did: every rule in order with the first condition that
//! failed, up to the rule that decided. Mirrors `Condition::holds` step by step; a test
//! keeps the two in agreement.

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use super::matcher::{Condition, Cx, RuleLocation, SetTest, TextTest, e164, present};
use super::{Decision, RuleSet};

/// The first condition of a rule that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// A field name (`caller.kind`), or `time`, `rate`, `any_of`, `not`.
    pub field: String,
    pub operator: String,
    pub expected: String,
    /// The invite's value; `None` when it lacks the fact.
    pub actual: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.field, self.operator, self.expected)?;
        match &self.actual {
            Some(actual) => write!(f, ", actual {actual}"),
            None => write!(f, ", actual missing"),
        }
    }
}

/// What happened to one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepOutcome {
    /// Disabled rules are listed but never tried.
    Skipped,
    Failed {
        condition: Failure,
    },
    Matched,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleStep {
    pub rule: String,
    pub location: RuleLocation,
    pub outcome: StepOutcome,
}

/// Every rule tried for one invite, and the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    /// The rules in evaluation order, up to and including the one that decided.
    pub steps: Vec<RuleStep>,
}

impl RuleSet {
    /// Evaluates like [`RuleSet::evaluate_at`] (rate conditions count this invite too) and
    /// records why each rule before the deciding one did not match.
    pub fn explain_at(&self, facts: &super::super::facts::Facts, now: Timestamp) -> Explanation {
        let mut counts = vec![0; self.rates.len()];
        let hits = self.count_rates(facts, now, |slot, count| counts[slot] = count);
        let cx = Cx {
            facts,
            now,
            rates: &hits,
        };
        let mut steps = Vec::new();
        // An audit-mode rule that matches is noted and the walk goes on: only enforced
        // rules decide (see `RuleSet::evaluate_at`).
        let mut shadow: Option<&Decision> = None;
        for rule in &self.rules {
            let outcome = if !rule.enabled {
                StepOutcome::Skipped
            } else {
                match failure(&rule.condition, &cx, &counts) {
                    Some(condition) => StepOutcome::Failed { condition },
                    None => StepOutcome::Matched,
                }
            };
            let matched = outcome == StepOutcome::Matched;
            steps.push(RuleStep {
                rule: rule.name().to_string(),
                location: rule.location.clone(),
                outcome,
            });
            if matched && !rule.decides() {
                shadow.get_or_insert(&rule.decision);
            } else if matched {
                let decision = Decision {
                    shadow: shadow.map(|audit| std::sync::Arc::new(audit.clone())),
                    ..rule.decision.clone()
                };
                return Explanation { decision, steps };
            }
        }
        Explanation {
            decision: shadow.cloned().unwrap_or_else(Decision::default_allow),
            steps,
        }
    }
}

/// The first failing leaf of `condition`, or `None` when it holds.
fn failure(condition: &Condition, cx: &Cx<'_>, counts: &[u32]) -> Option<Failure> {
    let facts = cx.facts;
    match condition {
        Condition::All(all) => all.iter().find_map(|child| failure(child, cx, counts)),
        Condition::Any(alternatives) => {
            let failures: Vec<Failure> = alternatives
                .iter()
                .map(|alternative| failure(alternative, cx, counts))
                .collect::<Option<_>>()?;
            let actual: Vec<String> = failures
                .iter()
                .enumerate()
                .map(|(at, failure)| format!("#{}: {failure}", at + 1))
                .collect();
            Some(Failure {
                field: "any_of".into(),
                operator: "holds for".into(),
                expected: format!("one of {} alternatives", alternatives.len()),
                actual: Some(format!("none did ({})", actual.join("; "))),
            })
        }
        Condition::Not(inner) => inner.holds(cx).then(|| Failure {
            field: "not".into(),
            operator: "holds for".into(),
            expected: "none of its conditions together".into(),
            actual: Some("all of them held".into()),
        }),
        Condition::Text(field, test) => {
            let fact = present(facts.text(*field));
            text_failure(field.name(), test, fact)
        }
        Condition::Phone(field, test) => {
            let fact = present(facts.text(*field)).map(e164);
            text_failure(field.name(), test, fact.as_deref())
        }
        Condition::Set(field, test) => {
            let members = facts.set(*field).unwrap_or_default();
            set_failure(field.name(), test, members)
        }
        Condition::Flag(field, expected) => {
            let actual = facts.flag(*field);
            (actual != Some(*expected)).then(|| Failure {
                field: field.name().into(),
                operator: "=".into(),
                expected: expected.to_string(),
                actual: actual.map(|actual| actual.to_string()),
            })
        }
        Condition::Time(window) => (!window.holds(cx.now)).then(|| Failure {
            field: "time".into(),
            operator: "in".into(),
            expected: window.text().to_owned(),
            actual: Some(window.local_time(cx.now)),
        }),
        Condition::Rate(counter) => (!cx.rates.get(counter.slot)).then(|| {
            let key = present(facts.text(counter.field));
            Failure {
                field: "rate".into(),
                operator: "over".into(),
                expected: counter.text(),
                actual: key.map(|key| {
                    let count = counts[counter.slot];
                    let noun = if count == 1 { "invite" } else { "invites" };
                    format!("{count} {noun} from {key:?} in the window")
                }),
            }
        }),
    }
}

fn text_failure(field: &str, test: &TextTest, fact: Option<&str>) -> Option<Failure> {
    if test.holds(fact) {
        return None;
    }
    if let TextTest::All(tests) = test {
        return tests
            .iter()
            .find_map(|test| text_failure(field, test, fact));
    }
    let (operator, expected) = describe_text(test);
    Some(Failure {
        field: field.into(),
        operator,
        expected,
        actual: fact.map(|fact| format!("{fact:?}")),
    })
}

fn describe_text(test: &TextTest) -> (String, String) {
    match test {
        TextTest::Equals(value) => ("=".into(), format!("{value:?}")),
        TextTest::AnyOf(values) => ("in".into(), quoted(values)),
        TextTest::Prefix(values) => ("prefix".into(), quoted(values)),
        TextTest::Suffix(values) => ("suffix".into(), quoted(values)),
        TextTest::Regex(regex) => ("regex".into(), format!("{:?}", regex.as_str())),
        TextTest::Exists(expected) => ("exists".into(), expected.to_string()),
        TextTest::InList(list) => (
            "in_list".into(),
            format!("{:?} ({} values)", list.name, list.len()),
        ),
        TextTest::Not(inner) => {
            let (operator, expected) = describe_text(inner);
            (format!("not {operator}"), expected)
        }
        TextTest::All(tests) => {
            let parts: Vec<String> = tests
                .iter()
                .map(|test| {
                    let (operator, expected) = describe_text(test);
                    format!("{operator} {expected}")
                })
                .collect();
            ("all of".into(), parts.join(", "))
        }
    }
}

fn set_failure(field: &str, test: &SetTest, members: &[String]) -> Option<Failure> {
    if test.holds(members) {
        return None;
    }
    if let SetTest::Each(tests) = test {
        return tests
            .iter()
            .find_map(|test| set_failure(field, test, members));
    }
    let (operator, expected) = describe_set(test);
    let actual = (!members.is_empty()).then(|| {
        let members: Vec<String> = members.iter().map(|member| format!("{member:?}")).collect();
        format!("[{}]", members.join(", "))
    });
    Some(Failure {
        field: field.into(),
        operator,
        expected,
        actual,
    })
}

fn describe_set(test: &SetTest) -> (String, String) {
    match test {
        SetTest::Any(values) => ("any".into(), quoted(values)),
        SetTest::All(values) => ("all".into(), quoted(values)),
        SetTest::None(values) => ("none".into(), quoted(values)),
        SetTest::Only(values) => ("only".into(), quoted(values)),
        SetTest::Exists(expected) => ("exists".into(), expected.to_string()),
        SetTest::Not(inner) => {
            let (operator, expected) = describe_set(inner);
            (format!("not {operator}"), expected)
        }
        SetTest::Each(tests) => {
            let parts: Vec<String> = tests
                .iter()
                .map(|test| {
                    let (operator, expected) = describe_set(test);
                    format!("{operator} {expected}")
                })
                .collect();
            ("all of".into(), parts.join(", "))
        }
    }
}

fn quoted(values: &[Box<str>]) -> String {
    match values {
        [one] => format!("{one:?}"),
        _ => {
            let values: Vec<String> = values.iter().map(|value| format!("{value:?}")).collect();
            format!("[{}]", values.join(", "))
        }
    }
}
