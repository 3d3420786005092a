//! The compiled rule set and its evaluator: [`RuleSet::evaluate`] walks the rules in order
//! and returns the first match's [`Decision`]. Pure, no I/O, and no allocation for ASCII
//! facts; everything that can be prepared (case folding, regexes, phone forms) was prepared
//! by the compiler.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use super::Decision;
use crate::facts::{Facts, Field, normalize_phone};

/// A compiled, immutable set of rules. Cheap to share behind an `Arc`.
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) version: String,
}

/// One rule as the evaluator sees it: a condition tree and the decision it yields.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: Arc<str>,
    pub(crate) enabled: bool,
    pub(crate) condition: Condition,
    /// Built once so a match only bumps reference counts.
    pub(crate) decision: Decision,
}

/// A condition tree. `All(vec![])` is the empty `when` table: it holds for every invite.
#[derive(Debug)]
pub(crate) enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Text(Field, TextTest),
    /// Like `Text`, but the fact is brought to E.164 form first if it is not already.
    Phone(Field, TextTest),
    Set(Field, SetTest),
    Flag(Field, bool),
}

/// A test on one text value. Every string in here is already case-folded with [`fold`].
#[derive(Debug)]
pub(crate) enum TextTest {
    Equals(Box<str>),
    AnyOf(Vec<Box<str>>),
    Prefix(Vec<Box<str>>),
    Suffix(Vec<Box<str>>),
    /// Case-insensitive and unanchored: it matches when it is found anywhere in the value.
    Regex(Regex),
    Exists(bool),
    Not(Box<TextTest>),
    All(Vec<TextTest>),
}

/// A test on a set of words (`modalities`). Strings are case-folded with [`fold`].
#[derive(Debug)]
pub(crate) enum SetTest {
    /// At least one member is listed.
    Any(Vec<Box<str>>),
    /// Every listed value is a member.
    All(Vec<Box<str>>),
    /// No member is listed.
    None(Vec<Box<str>>),
    /// Every member is listed.
    Only(Vec<Box<str>>),
    Exists(bool),
    Not(Box<SetTest>),
    Each(Vec<SetTest>),
}

// === impl RuleSet ===

impl RuleSet {
    /// A rule set with no rules: every invite is allowed.
    pub fn empty() -> RuleSet {
        RuleSet {
            rules: Vec::new(),
            version: super::compile::version_of(&[]),
        }
    }

    /// The decision for one invite: the first enabled rule whose condition holds, or
    /// [`Decision::default_allow`] when none does.
    pub fn evaluate(&self, facts: &Facts) -> Decision {
        self.rules
            .iter()
            .find(|rule| rule.enabled && rule.condition.holds(facts))
            .map_or_else(Decision::default_allow, |rule| rule.decision.clone())
    }

    /// A short hash of the rule files this set was compiled from (names and contents), so
    /// two daemons with identical folders report the same version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The number of rules, disabled ones included.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rule names in evaluation order, disabled ones included.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| &*rule.name)
    }

    /// The names of the rules that take part in evaluation (`enabled = true`).
    pub fn enabled_rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|rule| rule.enabled)
            .map(|rule| &*rule.name)
    }
}

impl fmt::Debug for RuleSet {
    // Sets can hold many thousands of rules; the names and version identify one well enough.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("version", &self.version)
            .field("rules", &self.rules.len())
            .field(
                "enabled",
                &self.rules.iter().filter(|rule| rule.enabled).count(),
            )
            .finish()
    }
}

// === impl Condition ===

impl Condition {
    pub(crate) fn holds(&self, facts: &Facts) -> bool {
        match self {
            Condition::All(all) => all.iter().all(|condition| condition.holds(facts)),
            Condition::Any(any) => any.iter().any(|condition| condition.holds(facts)),
            Condition::Not(inner) => !inner.holds(facts),
            Condition::Text(field, test) => test.holds(present(facts.text(*field))),
            Condition::Phone(field, test) => {
                let fact = present(facts.text(*field)).map(e164);
                test.holds(fact.as_deref())
            }
            Condition::Set(field, test) => {
                let members = facts.set(*field).unwrap_or_default();
                test.holds(members)
            }
            Condition::Flag(field, expected) => facts.flag(*field) == Some(*expected),
        }
    }
}

/// An empty text value counts as missing: Graph sends `""` for fields it has nothing for,
/// and `{ exists = true }` should not hold for those.
fn present(fact: Option<&str>) -> Option<&str> {
    fact.filter(|value| !value.is_empty())
}

/// The fact in the form phone rule values were compiled to. Facts are normally E.164
/// already, so this only allocates for a fact the parser left unnormalised; a value that
/// is no phone number at all is compared as it is.
fn e164(fact: &str) -> Cow<'_, str> {
    let digits = fact.strip_prefix('+').unwrap_or(fact);
    let normal = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (fact.starts_with('+') || !fact.starts_with("00"));
    if normal {
        return Cow::Borrowed(fact);
    }
    normalize_phone(fact).map_or(Cow::Borrowed(fact), Cow::Owned)
}

// === impl TextTest ===

impl TextTest {
    /// `fact` is `None` when the invite lacks the value; then only `exists = false` and
    /// negations hold.
    pub(crate) fn holds(&self, fact: Option<&str>) -> bool {
        match self {
            TextTest::Exists(expected) => fact.is_some() == *expected,
            TextTest::Not(inner) => !inner.holds(fact),
            TextTest::All(all) => all.iter().all(|test| test.holds(fact)),
            TextTest::Equals(value) => fact.is_some_and(|fact| eq_folded(fact, value)),
            TextTest::AnyOf(values) => {
                fact.is_some_and(|fact| values.iter().any(|value| eq_folded(fact, value)))
            }
            TextTest::Prefix(values) => {
                fact.is_some_and(|fact| values.iter().any(|value| starts_folded(fact, value)))
            }
            TextTest::Suffix(values) => {
                fact.is_some_and(|fact| values.iter().any(|value| ends_folded(fact, value)))
            }
            TextTest::Regex(regex) => fact.is_some_and(|fact| regex.is_match(fact)),
        }
    }
}

// === impl SetTest ===

impl SetTest {
    /// An empty `members` is a missing fact: only `exists = false` and negations hold.
    pub(crate) fn holds(&self, members: &[String]) -> bool {
        let contains =
            |values: &[Box<str>], member: &str| values.iter().any(|value| eq_folded(member, value));
        let has = |value: &str| members.iter().any(|member| eq_folded(member, value));
        match self {
            SetTest::Exists(expected) => members.is_empty() != *expected,
            SetTest::Not(inner) => !inner.holds(members),
            SetTest::Each(all) => all.iter().all(|test| test.holds(members)),
            _ if members.is_empty() => false,
            SetTest::Any(values) => members.iter().any(|member| contains(values, member)),
            SetTest::All(values) => values.iter().all(|value| has(value)),
            SetTest::None(values) => !members.iter().any(|member| contains(values, member)),
            SetTest::Only(values) => members.iter().all(|member| contains(values, member)),
        }
    }
}

// === case folding ===
//
// Rule values are folded once at compile time; facts are folded character by character
// while comparing, so no fact is ever copied. Final sigma is mapped to plain sigma on both
// sides because per-character lowercasing cannot see word ends.

fn fold_char(c: char) -> impl DoubleEndedIterator<Item = char> {
    c.to_lowercase().map(|c| if c == 'ς' { 'σ' } else { c })
}

fn fold_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(fold_char)
}

/// The case-folded form rule values are stored in.
pub(crate) fn fold(text: &str) -> String {
    fold_chars(text).collect()
}

/// Whether `fact` folds to `folded`.
fn eq_folded(fact: &str, folded: &str) -> bool {
    if fact.is_ascii() {
        return fact.len() == folded.len() && ascii_folds_to(fact.as_bytes(), folded.as_bytes());
    }
    fold_chars(fact).eq(folded.chars())
}

fn starts_folded(fact: &str, folded: &str) -> bool {
    if fact.is_ascii() {
        return fact.len() >= folded.len()
            && ascii_folds_to(&fact.as_bytes()[..folded.len()], folded.as_bytes());
    }
    let mut chars = fold_chars(fact);
    folded.chars().all(|c| chars.next() == Some(c))
}

fn ends_folded(fact: &str, folded: &str) -> bool {
    if fact.is_ascii() {
        return fact.len() >= folded.len()
            && ascii_folds_to(
                &fact.as_bytes()[fact.len() - folded.len()..],
                folded.as_bytes(),
            );
    }
    let mut chars = fact.chars().rev().flat_map(|c| fold_char(c).rev());
    folded.chars().rev().all(|c| chars.next() == Some(c))
}

/// `fact` is ASCII, so its folded form is its ASCII lowercase; a non-ASCII byte in
/// `folded` simply never matches.
fn ascii_folds_to(fact: &[u8], folded: &[u8]) -> bool {
    fact.len() == folded.len()
        && fact
            .iter()
            .zip(folded)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
}

#[cfg(test)]
mod tests;
