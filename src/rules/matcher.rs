//! The compiled rule set and its evaluator: [`RuleSet::evaluate_at`] returns the first
//! matching rule's [`Decision`], trying only the rules the set's index (`index.rs`) finds
//! for the invite. No I/O, and no allocation for ASCII facts; everything that can be
//! prepared (case folding, regexes, phone forms, list sets, time zones, the index) was
//! prepared by the compiler. The only state is the rate counters.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use regex::Regex;

use super::Decision;
use super::diag::Warning;
use super::index::Index;
use super::lists::ValueSet;
use super::rate::{RateCounter, RateHits};
use super::time::TimeWindow;
use crate::facts::{Facts, Field, normalize_phone};

/// A compiled set of rules. Cheap to share behind an `Arc`; evaluation takes `&self` (rate
/// counters sit behind their own locks).
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) version: String,
    /// Every rate condition of the set, in slot order.
    pub(crate) rates: Vec<Arc<RateCounter>>,
    pub(crate) warnings: Vec<Warning>,
    /// Which rules an invite can match, by the values their conditions require.
    pub(crate) index: Index,
}

/// Where a rule is defined: its file and the 1-based position of its `[[rule]]` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLocation {
    pub path: Arc<Path>,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for RuleLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// One rule as the evaluator sees it: a condition tree and the decision it yields.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) enabled: bool,
    pub(crate) condition: Condition,
    /// Built once so a match only bumps reference counts. Holds the rule's name.
    pub(crate) decision: Decision,
    pub(crate) location: RuleLocation,
    /// Identifies the rule's definition and the contents of the lists it uses; `diff`
    /// compares these.
    pub(crate) fingerprint: u64,
}

impl Rule {
    /// Whether the rule can decide an invite: enabled and enforced. Audit-mode rules only
    /// gather evidence, so a later enforced rule still decides the calls they match.
    pub(crate) fn decides(&self) -> bool {
        self.enabled && self.decision.mode == super::RuleMode::Enforce
    }

    /// The rule's name, as its decision carries it.
    pub(crate) fn name(&self) -> &Arc<str> {
        self.decision
            .rule
            .as_ref()
            .expect("the compiler names every rule's decision")
    }
}

/// What changed between two rule sets, by rule name, each in evaluation order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleSetDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl RuleSetDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What one evaluation sees besides the rules: the invite, the time, and which rate
/// conditions hold (counted once, before any rule is tried).
pub(crate) struct Cx<'a> {
    pub(crate) facts: &'a Facts,
    pub(crate) now: Timestamp,
    pub(crate) rates: &'a RateHits,
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
    Time(Box<TimeWindow>),
    Rate(Arc<RateCounter>),
}

/// A test on one text value. Every string in here is already case-folded with [`fold`].
#[derive(Debug)]
///
/// Lists are boxed slices rather than vectors: a large set holds hundreds of thousands of
/// tests, and the size of the largest variant is the size of each.
pub(crate) enum TextTest {
    Equals(Box<str>),
    AnyOf(Box<[Box<str>]>),
    Prefix(Box<[Box<str>]>),
    Suffix(Box<[Box<str>]>),
    /// Case-insensitive and unanchored: it matches when it is found anywhere in the value.
    /// Boxed: conditions are many and regexes few, so they should not set every test's size.
    Regex(Box<LazyRegex>),
    Exists(bool),
    /// The value is in a named list (already in the field's form).
    InList(Arc<ValueSet>),
    Not(Box<TextTest>),
    All(Box<[TextTest]>),
}

/// A test on a set of words (`modalities`). Strings are case-folded with [`fold`]. Lists
/// are boxed slices, as in [`TextTest`].
#[derive(Debug)]
pub(crate) enum SetTest {
    /// At least one member is listed.
    Any(Box<[Box<str>]>),
    /// Every listed value is a member.
    All(Box<[Box<str>]>),
    /// No member is listed.
    None(Box<[Box<str>]>),
    /// Every member is listed.
    Only(Box<[Box<str>]>),
    Exists(bool),
    Not(Box<SetTest>),
    Each(Box<[SetTest]>),
}

// === impl RuleSet ===

impl RuleSet {
    /// A rule set with no rules: every invite is allowed.
    pub fn empty() -> RuleSet {
        RuleSet {
            rules: Vec::new(),
            version: super::compile::version_of(&[]),
            rates: Vec::new(),
            warnings: Vec::new(),
            index: Index::default(),
        }
    }

    /// The decision for one invite now; see [`RuleSet::evaluate_at`].
    pub fn evaluate(&self, facts: &Facts) -> Decision {
        self.evaluate_at(facts, Timestamp::now())
    }

    /// The decision for one invite at `now`: the first enabled rule whose condition holds,
    /// or [`Decision::default_allow`] when none does. `now` is what time windows are
    /// checked against and what rate conditions count with; the invite is counted by every
    /// rate condition of an enabled rule, whichever rule decides.
    pub fn evaluate_at(&self, facts: &Facts, now: Timestamp) -> Decision {
        let hits = self.count_rates(facts, now, |_, _| {});
        let cx = Cx {
            facts,
            now,
            rates: &hits,
        };
        let decided = self.index.first_match(&self.rules, &cx);
        let shadow = self.index.first_shadow(&self.rules, &cx, decided);
        self.decision(decided, shadow)
    }

    /// The decision of the enforced rule at `decided`, carrying what the audit-mode rule
    /// at `shadow` (before it) would have done. An audit-mode rule never decides over an
    /// enforced rule; when no enforced rule matches, it is the decision itself (recorded as
    /// `would_…`, never carried out).
    fn decision(&self, decided: Option<usize>, shadow: Option<usize>) -> Decision {
        match (decided, shadow) {
            (Some(at), None) => self.rules[at].decision.clone(),
            (Some(at), Some(audit)) => Decision {
                shadow: Some(Arc::new(self.rules[audit].decision.clone())),
                ..self.rules[at].decision.clone()
            },
            (None, Some(audit)) => self.rules[audit].decision.clone(),
            (None, None) => Decision::default_allow(),
        }
    }

    /// [`RuleSet::evaluate_at`] without the index: every rule tried in order. Identical
    /// decisions, slower; kept to check the index against and to measure what it saves.
    #[doc(hidden)]
    pub fn evaluate_linear_at(&self, facts: &Facts, now: Timestamp) -> Decision {
        let hits = self.count_rates(facts, now, |_, _| {});
        let cx = Cx {
            facts,
            now,
            rates: &hits,
        };
        let decided = self.first_match_linear(&cx);
        let before = decided.unwrap_or(usize::MAX);
        let shadow = (0..self.rules.len().min(before)).find(|at| {
            let rule = &self.rules[*at];
            rule.enabled && !rule.decides() && rule.condition.holds(&cx)
        });
        self.decision(decided, shadow)
    }

    /// The position of the first enabled rule that holds, trying each in order.
    pub(crate) fn first_match_linear(&self, cx: &Cx<'_>) -> Option<usize> {
        self.rules
            .iter()
            .position(|rule| rule.decides() && rule.condition.holds(cx))
    }

    /// Counts the invite in every active rate condition; `seen` gets each counter's slot
    /// and count (for `explain`).
    pub(crate) fn count_rates(
        &self,
        facts: &Facts,
        now: Timestamp,
        mut seen: impl FnMut(usize, u32),
    ) -> RateHits {
        let mut hits = RateHits::new(self.rates.len());
        for counter in self.rates.iter().filter(|counter| counter.active) {
            let Some(key) = present(facts.text(counter.field)) else {
                continue;
            };
            let key = match counter.field.field_type() {
                crate::facts::FieldType::Phone => e164(key),
                _ => Cow::Borrowed(key),
            };
            let count = counter.record(&key, now);
            seen(counter.slot, count);
            if count > counter.over {
                hits.set(counter.slot);
            }
        }
        hits
    }

    /// Problems the compiler noticed that do not stop the set from working: rules that
    /// can never match or never decide, unused lists. Empty for most sets.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Takes over the counts of `previous`'s rate conditions that are unchanged here (same
    /// rule name, same definition), so a reload does not reset rate limits. Call it before
    /// the new set starts evaluating; afterwards both sets share those counts.
    pub fn inherit_state(&self, previous: &RuleSet) {
        if self.rates.is_empty() {
            return;
        }
        let old: HashMap<&str, &RateCounter> = previous
            .rates
            .iter()
            .map(|counter| (counter.identity.as_str(), &**counter))
            .collect();
        for counter in &self.rates {
            if let Some(previous) = old.get(counter.identity.as_str()) {
                counter.inherit(previous);
            }
        }
    }

    /// The rules added, removed and changed since `previous`, by name. A rule has changed
    /// when its compiled definition (settings, description, conditions) or the contents
    /// of a list it uses differ; comments and layout do not count.
    pub fn diff(&self, previous: &RuleSet) -> RuleSetDiff {
        let old: HashMap<&str, u64> = previous
            .rules
            .iter()
            .map(|rule| (&**rule.name(), rule.fingerprint))
            .collect();
        let new: HashMap<&str, u64> = self
            .rules
            .iter()
            .map(|rule| (&**rule.name(), rule.fingerprint))
            .collect();
        let mut diff = RuleSetDiff::default();
        for rule in &self.rules {
            match old.get(&**rule.name()) {
                None => diff.added.push(rule.name().to_string()),
                Some(fingerprint) if *fingerprint != rule.fingerprint => {
                    diff.changed.push(rule.name().to_string());
                }
                Some(_) => {}
            }
        }
        for rule in &previous.rules {
            if !new.contains_key(&**rule.name()) {
                diff.removed.push(rule.name().to_string());
            }
        }
        diff
    }

    /// Forgets every rate count.
    pub fn reset_state(&self) {
        for counter in &self.rates {
            counter.reset();
        }
    }

    /// Where rule `name` is defined.
    pub fn location(&self, name: &str) -> Option<&RuleLocation> {
        self.rules
            .iter()
            .find(|rule| &**rule.name() == name)
            .map(|rule| &rule.location)
    }

    /// Whether rule `name` is in audit mode (its rejects are only recorded).
    pub fn is_audit_rule(&self, name: &str) -> bool {
        self.rules
            .iter()
            .any(|rule| &**rule.name() == name && rule.decision.mode == super::RuleMode::Audit)
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
        self.rules.iter().map(|rule| &**rule.name())
    }

    /// Rule names in evaluation order, as the set holds them: for keeping one per rule
    /// without copying each.
    pub fn shared_rule_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.rules.iter().map(|rule| rule.name())
    }

    /// The names of the rules that take part in evaluation (`enabled = true`).
    pub fn enabled_rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|rule| rule.enabled)
            .map(|rule| &**rule.name())
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
    pub(crate) fn holds(&self, cx: &Cx<'_>) -> bool {
        let facts = cx.facts;
        match self {
            Condition::All(all) => all.iter().all(|condition| condition.holds(cx)),
            Condition::Any(any) => any.iter().any(|condition| condition.holds(cx)),
            Condition::Not(inner) => !inner.holds(cx),
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
            Condition::Time(window) => window.holds(cx.now),
            Condition::Rate(counter) => cx.rates.get(counter.slot),
        }
    }
}

/// An empty text value counts as missing: Graph sends `""` for fields it has nothing for,
/// and `{ exists = true }` should not hold for those.
pub(crate) fn present(fact: Option<&str>) -> Option<&str> {
    fact.filter(|value| !value.is_empty())
}

/// The fact in the form phone rule values were compiled to. Facts are normally E.164
/// already, so this only allocates for a fact the parser left unnormalised; a value that
/// is no phone number at all is compared as it is.
pub(crate) fn e164(fact: &str) -> Cow<'_, str> {
    let digits = fact.strip_prefix('+').unwrap_or(fact);
    let normal = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (fact.starts_with('+') || !fact.starts_with("00"));
    if normal {
        return Cow::Borrowed(fact);
    }
    normalize_phone(fact).map_or(Cow::Borrowed(fact), Cow::Owned)
}

/// A regex condition: the pattern, already checked by the compiler, and its matcher, built
/// the first time the condition is tried. A large rule set can hold thousands of regexes,
/// each tens of kilobytes once built, and with the index most are never tried.
pub(crate) struct LazyRegex {
    pattern: Box<str>,
    /// `None` inside only if a build that succeeded at compile time fails now: then the
    /// condition never holds.
    regex: OnceLock<Option<Regex>>,
}

impl LazyRegex {
    /// `pattern` must have been built successfully with [`super::when::build_regex`].
    pub(crate) fn new(pattern: &str) -> LazyRegex {
        LazyRegex {
            pattern: pattern.into(),
            regex: OnceLock::new(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.pattern
    }

    pub(crate) fn is_match(&self, fact: &str) -> bool {
        self.regex
            .get_or_init(|| super::when::build_regex(&self.pattern).ok())
            .as_ref()
            .is_some_and(|regex| regex.is_match(fact))
    }
}

impl fmt::Debug for LazyRegex {
    // As `Regex` shows itself: rule fingerprints and warnings compare this text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Regex").field(&self.as_str()).finish()
    }
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
            TextTest::InList(list) => fact.is_some_and(|fact| list.contains(fact)),
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

pub(crate) fn fold_char(c: char) -> impl DoubleEndedIterator<Item = char> {
    c.to_lowercase().map(|c| if c == 'ς' { 'σ' } else { c })
}

fn fold_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(fold_char)
}

/// The case-folded form rule values are stored in.
pub(crate) fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    fold_chars(text).collect()
}

/// Calls `f` with the folded form of `text`: `text` itself when it has nothing to fold, a
/// copy on the stack for ordinary ASCII, and a heap copy only for long or non-ASCII text.
pub(crate) fn with_folded<R>(text: &str, f: impl FnOnce(&str) -> R) -> R {
    const STACK: usize = 128;
    if text.is_ascii() {
        if !text.bytes().any(|b| b.is_ascii_uppercase()) {
            return f(text);
        }
        if text.len() <= STACK {
            let mut buffer = [0u8; STACK];
            let folded = &mut buffer[..text.len()];
            folded.copy_from_slice(text.as_bytes());
            folded.make_ascii_lowercase();
            return f(std::str::from_utf8(folded).expect("ASCII stays ASCII"));
        }
    }
    f(&fold(text))
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
