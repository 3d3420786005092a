//! Warnings about rules that compile but cannot do anything: conditions that contradict
//! each other (the rule never matches), and rules behind an earlier rule that matches every
//! invite or has the very same conditions (the rule never decides).
//!
//! The contradiction check is deliberately shallow: it follows equality, `exists` and
//! negated equality per field through `when`, `any_of` and one-condition `not` tables. It
//! never warns about a rule that can match.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use super::diag::Warning;
use super::matcher::{Condition, Rule, TextTest};
use crate::facts::Field;

pub(crate) fn rule_warnings(rules: &[Rule]) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut catch_all: Option<&Rule> = None;
    let mut seen: HashMap<u64, &Rule> = HashMap::new();
    for rule in rules {
        let warn = |message: String| {
            let location = &rule.location;
            Warning::new(&location.path, (location.line, location.col), message)
        };
        if let Some(field) = never_holds(&rule.condition, &Constraints::default()) {
            let message = match field {
                Some(field) => format!(
                    "rule {:?} can never match: its conditions on {:?} contradict each other",
                    rule.name(),
                    field.name()
                ),
                None => format!(
                    "rule {:?} can never match: no \"any_of\" alternative can hold together \
                     with the other conditions",
                    rule.name()
                ),
            };
            warnings.push(warn(message));
            continue;
        }
        if !rule.enabled {
            continue;
        }
        let key = condition_key(&rule.condition);
        if let Some(first) = catch_all {
            let message = format!(
                "rule {:?} is never reached: rule {:?} ({}) before it matches every invite",
                rule.name(),
                first.name(),
                first.location
            );
            warnings.push(warn(message));
        } else if let Some(first) = seen.get(&key) {
            let message = format!(
                "rule {:?} never decides: rule {:?} ({}) before it has the same conditions",
                rule.name(),
                first.name(),
                first.location
            );
            warnings.push(warn(message));
        }
        if matches!(&rule.condition, Condition::All(all) if all.is_empty()) {
            catch_all.get_or_insert(rule);
        }
        seen.entry(key).or_insert(rule);
    }
    warnings
}

/// Identifies a condition tree by its compiled form (values already folded, so case and
/// phone formatting do not matter).
fn condition_key(condition: &Condition) -> u64 {
    let mut hasher = DefaultHasher::new();
    format!("{condition:?}").hash(&mut hasher);
    hasher.finish()
}

/// What the conditions seen so far demand of each field.
#[derive(Clone, Default)]
struct Constraints {
    fields: HashMap<Field, FieldNeeds>,
}

#[derive(Clone, Default)]
struct FieldNeeds {
    present: bool,
    absent: bool,
    /// The value must be one of these (intersection of every equality seen).
    allowed: Option<BTreeSet<Box<str>>>,
    denied: BTreeSet<Box<str>>,
    flag: [bool; 2],
}

impl FieldNeeds {
    fn contradictory(&self) -> bool {
        let no_value_left = self
            .allowed
            .as_ref()
            .is_some_and(|allowed| allowed.iter().all(|value| self.denied.contains(value)));
        (self.present && self.absent) || no_value_left || (self.flag[0] && self.flag[1])
    }
}

/// `Some(reason)` when `condition` cannot hold given `outer`: `Some(Some(field))` for a
/// contradiction on one field, `Some(None)` for `any_of` alternatives that all fail.
fn never_holds(condition: &Condition, outer: &Constraints) -> Option<Option<Field>> {
    let children: &[Condition] = match condition {
        Condition::All(all) => all,
        Condition::Any(alternatives) => {
            let reasons: Vec<_> = alternatives
                .iter()
                .map(|alternative| never_holds(alternative, outer))
                .collect();
            return match reasons.as_slice() {
                [] => None,
                [only] => *only,
                _ if reasons.iter().all(Option::is_some) => Some(None),
                _ => None,
            };
        }
        other => std::slice::from_ref(other),
    };
    let mut constraints = outer.clone();
    for child in children {
        if let Some(field) = constrain(child, &mut constraints, false) {
            return Some(Some(field));
        }
    }
    for child in children {
        if let Condition::Any(_) = child {
            never_holds(child, &constraints)?;
            return Some(None);
        }
    }
    None
}

/// Adds what a leaf demands (or, `negated`, what its negation demands) to `constraints`;
/// returns the field whose demands became contradictory.
fn constrain(condition: &Condition, constraints: &mut Constraints, negated: bool) -> Option<Field> {
    match condition {
        Condition::Text(field, test) | Condition::Phone(field, test) => {
            let needs = constraints.fields.entry(*field).or_default();
            text_needs(test, needs, negated);
            needs.contradictory().then_some(*field)
        }
        Condition::Flag(field, expected) => {
            let needs = constraints.fields.entry(*field).or_default();
            needs.flag[usize::from(*expected != negated)] = true;
            needs.contradictory().then_some(*field)
        }
        // A `not` table of one condition is that condition negated.
        Condition::Not(inner) => match &**inner {
            Condition::All(all) if all.len() == 1 => constrain(&all[0], constraints, !negated),
            _ => None,
        },
        Condition::All(all) if !negated => all
            .iter()
            .find_map(|child| constrain(child, constraints, false)),
        _ => None,
    }
}

fn text_needs(test: &TextTest, needs: &mut FieldNeeds, negated: bool) {
    match (test, negated) {
        (TextTest::Equals(value), false) => allow(needs, std::slice::from_ref(value)),
        (TextTest::AnyOf(values), false) => allow(needs, values),
        (TextTest::Equals(value), true) => {
            needs.denied.insert(value.clone());
        }
        (TextTest::AnyOf(values), true) => needs.denied.extend(values.iter().cloned()),
        (TextTest::Exists(expected), _) => {
            if *expected != negated {
                needs.present = true;
            } else {
                needs.absent = true;
            }
        }
        (TextTest::Prefix(_) | TextTest::Suffix(_) | TextTest::Regex(_), false) => {
            needs.present = true;
        }
        (TextTest::InList(_), false) => needs.present = true,
        (TextTest::Not(inner), _) => text_needs(inner, needs, !negated),
        (TextTest::All(all), false) => {
            for test in all {
                text_needs(test, needs, false);
            }
        }
        _ => {}
    }
}

fn allow(needs: &mut FieldNeeds, values: &[Box<str>]) {
    needs.present = true;
    let values: BTreeSet<Box<str>> = values.iter().cloned().collect();
    needs.allowed = Some(match needs.allowed.take() {
        Some(allowed) => allowed.intersection(&values).cloned().collect(),
        None => values,
    });
}
