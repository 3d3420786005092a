//! `[rule.when]` tables to [`Condition`] trees.
//!
//! TOML turns a dotted key like `meeting.organizer.id` into nested tables, so field names
//! are rebuilt by walking tables until the path names a [`Field`]. Rule values are
//! prepared here (case-folded, phone numbers normalised, regexes built) so the evaluator
//! only compares.

use std::ops::Range;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::compile::{FileCx, describe, entries};
use super::diag::did_you_mean;
use super::lists::Lists;
use super::matcher::{Condition, LazyRegex, SetTest, TextTest, fold};
use super::rate::RateCounter;
use crate::facts::{Field, FieldType, normalize_phone};

/// Compiled program size above which a regex is refused; rules are meant to be small, and
/// a rule set may hold many thousands of them.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Cache size for a regex's lazy DFA; past it the regex falls back to slower engines.
const REGEX_DFA_SIZE_LIMIT: usize = 512 * 1024;

const TEXT_OPERATORS: &[&str] = &["not", "regex", "prefix", "suffix", "exists", "in_list"];
/// Keys of a when-table that are not fields.
const GROUP_KEYS: &[&str] = &["any_of", "not", "time", "rate"];

/// What conditions of one rule may refer to or add to, beyond the rule's own table.
pub(crate) struct Scope<'c, 's> {
    pub(crate) lists: &'c Lists<'s>,
    /// The rule set's rate counters; a rate condition adds one.
    pub(crate) rates: &'c mut Vec<Arc<RateCounter>>,
    /// Whether the rule is enabled: disabled rules do not count invites.
    pub(crate) enabled: bool,
    /// Rate conditions of this rule so far.
    pub(crate) rate_ordinal: usize,
}
const SET_OPERATORS: &[&str] = &["any", "all", "none", "only", "exists", "not"];

/// Compiles a `when` table; `None` when it has errors (they are recorded in `file`).
pub(crate) fn compile_when(
    file: &mut FileCx<'_>,
    rule: &str,
    table: &DeTable<'_>,
    scope: &mut Scope<'_, '_>,
) -> Option<Condition> {
    let errors_before = file.error_count();
    let condition = When { file, rule, scope }.group(table);
    (file.error_count() == errors_before).then_some(condition)
}

struct When<'f, 's, 'c, 'l> {
    file: &'f mut FileCx<'s>,
    /// The rule's name, for messages that are hard to place from a position alone.
    rule: &'f str,
    scope: &'f mut Scope<'c, 'l>,
}

/// A value with its span, as the parser hands it out.
type Value<'a, 'i> = &'a Spanned<DeValue<'i>>;

impl When<'_, '_, '_, '_> {
    fn error(&mut self, span: Range<usize>, message: String) {
        self.file.error(span, message);
    }

    /// A when-table: every entry must hold. Compiled even past errors, to report them all;
    /// the caller throws the result away if any were found.
    fn group(&mut self, table: &DeTable<'_>) -> Condition {
        let mut conditions = Vec::new();
        for (key, value) in entries(table) {
            let condition = match key.get_ref().as_ref() {
                "any_of" => self.any_of(key.span(), value),
                "not" => self.not_group(key.span(), value),
                "time" => super::time::compile(self.file, key.span(), value)
                    .map(|window| Condition::Time(Box::new(window))),
                "rate" => self.rate(key.span(), value),
                path => self.field_path(path.to_owned(), key.span(), value),
            };
            conditions.extend(condition);
        }
        // Large sets hold one of these per rule: no spare capacity.
        conditions.shrink_to_fit();
        Condition::All(conditions)
    }

    fn any_of(&mut self, key: Range<usize>, value: Value<'_, '_>) -> Option<Condition> {
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "\"any_of\" must be an array of tables ([[rule.when.any_of]]), found {}",
                describe(value.get_ref())
            );
            self.error(key, message);
            return None;
        };
        if items.is_empty() {
            self.error(value.span(), "empty \"any_of\" never matches".into());
            return None;
        }
        let mut alternatives = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(table) => alternatives.push(self.group(table)),
                other => {
                    let message = format!(
                        "each \"any_of\" entry must be a table of conditions, found {}",
                        describe(other)
                    );
                    self.error(item.span(), message);
                }
            }
        }
        Some(Condition::Any(alternatives))
    }

    fn not_group(&mut self, key: Range<usize>, value: Value<'_, '_>) -> Option<Condition> {
        match value.get_ref() {
            DeValue::Table(table) if table.is_empty() => {
                self.error(key, "empty \"not\" never matches".into());
                None
            }
            DeValue::Table(table) => Some(Condition::Not(Box::new(self.group(table)))),
            other => {
                let message = format!(
                    "\"not\" must be a table of conditions ([rule.when.not]), found {}",
                    describe(other)
                );
                self.error(key, message);
                None
            }
        }
    }

    fn rate(&mut self, key: Range<usize>, value: Value<'_, '_>) -> Option<Condition> {
        let ordinal = self.scope.rate_ordinal;
        self.scope.rate_ordinal += 1;
        let slot = self.scope.rates.len();
        let mut counter = super::rate::compile(self.file, self.rule, ordinal, slot, key, value)?;
        counter.active = self.scope.enabled;
        let counter = Arc::new(counter);
        self.scope.rates.push(counter.clone());
        Some(Condition::Rate(counter))
    }

    /// `{ in_list = "name" }`: the list in the field's form, built once per form.
    fn in_list(&mut self, field: Field, value: Value<'_, '_>) -> Option<TextTest> {
        let DeValue::String(name) = value.get_ref() else {
            let message = format!(
                "\"in_list\" for {:?} takes the name of a list, found {}",
                field.name(),
                describe(value.get_ref())
            );
            self.error(value.span(), message);
            return None;
        };
        let lists = self.scope.lists;
        let Some(list) = lists.get(name) else {
            let hint = if lists.is_empty() {
                format!(
                    " (no lists are defined: add a [lists] table to a rule file or a \
                     {name}.list file to the rules folder)"
                )
            } else {
                did_you_mean(name, lists.names())
            };
            self.error(value.span(), format!("unknown list {name:?}{hint}"));
            return None;
        };
        list.used.set(true);
        if list.is_empty() {
            let message = format!(
                "list {name:?} is empty, so this condition never holds (rule {:?})",
                self.rule
            );
            self.file.warning(value.span(), message);
        }
        let set = match field.field_type() {
            FieldType::Phone => list.phone_set(lists, field.name())?,
            _ => list.text_set(),
        };
        Some(TextTest::InList(set))
    }

    /// Follows nested tables until `path` names a field. The deepest field name has three
    /// parts, so longer paths stop there instead of recursing through whatever was written.
    fn field_path(
        &mut self,
        path: String,
        key: Range<usize>,
        value: Value<'_, '_>,
    ) -> Option<Condition> {
        if let Some(field) = Field::from_name(&path) {
            return self.condition(field, value);
        }
        match value.get_ref() {
            DeValue::Table(table) if !table.is_empty() && path.split('.').count() < 3 => {
                let mut conditions = Vec::new();
                for (child, value) in entries(table) {
                    let child_path = format!("{path}.{}", child.get_ref());
                    conditions.extend(self.field_path(child_path, child.span(), value));
                }
                match conditions.len() {
                    1 => conditions.pop(),
                    _ => {
                        conditions.shrink_to_fit();
                        Some(Condition::All(conditions))
                    }
                }
            }
            _ => {
                let names = Field::ALL.iter().map(|field| field.name());
                let hint = did_you_mean(&path, names.chain(GROUP_KEYS.iter().copied()));
                self.error(key, format!("unknown field {path:?}{hint}"));
                None
            }
        }
    }

    fn condition(&mut self, field: Field, value: Value<'_, '_>) -> Option<Condition> {
        match field.field_type() {
            FieldType::Text => Some(Condition::Text(field, self.text(field, value)?)),
            FieldType::Phone => Some(Condition::Phone(field, self.text(field, value)?)),
            FieldType::Set => Some(Condition::Set(field, self.set(field, value)?)),
            FieldType::Bool => match value.get_ref() {
                DeValue::Boolean(expected) => Some(Condition::Flag(field, *expected)),
                other => {
                    let message = format!(
                        "{:?} takes true or false, found {}",
                        field.name(),
                        describe(other)
                    );
                    self.error(value.span(), message);
                    None
                }
            },
        }
    }

    // === text and phone fields ===

    fn text(&mut self, field: Field, value: Value<'_, '_>) -> Option<TextTest> {
        match value.get_ref() {
            DeValue::String(text) => Some(TextTest::Equals(self.word(field, text, value)?)),
            DeValue::Array(_) => Some(TextTest::AnyOf(self.words(field, "list", value)?.into())),
            DeValue::Table(operators) => self.text_operators(field, value.span(), operators),
            other => {
                let message = format!(
                    "{:?} takes a string, a list of strings or a table of operators, found {}",
                    field.name(),
                    describe(other)
                );
                self.error(value.span(), message);
                None
            }
        }
    }

    fn text_operators(
        &mut self,
        field: Field,
        span: Range<usize>,
        operators: &DeTable<'_>,
    ) -> Option<TextTest> {
        if operators.is_empty() {
            self.error(span, format!("empty operator table for {:?}", field.name()));
            return None;
        }
        let mut tests = Vec::new();
        let mut broken = false;
        for (operator, value) in entries(operators) {
            let test = match operator.get_ref().as_ref() {
                "not" => self
                    .text(field, value)
                    .map(|test| TextTest::Not(Box::new(test))),
                "regex" => self.regex(field, value),
                "prefix" => self
                    .words(field, "prefix", value)
                    .map(|words| TextTest::Prefix(words.into())),
                "suffix" => self
                    .words(field, "suffix", value)
                    .map(|words| TextTest::Suffix(words.into())),
                "exists" => self.exists(field, value).map(TextTest::Exists),
                "in_list" => self.in_list(field, value),
                other => {
                    let hint = if SET_OPERATORS.contains(&other) {
                        " (set operators apply to \"modalities\"; for any of several values \
                         write a list: [\"a\", \"b\"])"
                            .to_owned()
                    } else {
                        did_you_mean(other, TEXT_OPERATORS.iter().copied())
                    };
                    let message =
                        format!("unknown operator {other:?} for {:?}{hint}", field.name());
                    self.error(operator.span(), message);
                    None
                }
            };
            match test {
                Some(test) => tests.push(test),
                None => broken = true,
            }
        }
        if broken {
            return None;
        }
        match tests.len() {
            1 => tests.pop(),
            _ => Some(TextTest::All(tests.into())),
        }
    }

    /// One rule value for a text field, in the form facts are compared with.
    fn word(&mut self, field: Field, text: &str, value: Value<'_, '_>) -> Option<Box<str>> {
        if text.is_empty() {
            let message = format!(
                "empty value for {:?} never matches (use {{ exists = false }} for a missing value)",
                field.name()
            );
            self.error(value.span(), message);
            return None;
        }
        if field.field_type() != FieldType::Phone {
            return Some(fold(text).into_boxed_str());
        }
        match normalize_phone(text) {
            Some(phone) => Some(phone.into_boxed_str()),
            None => {
                let message = format!("invalid phone number {text:?} for {:?}", field.name());
                self.error(value.span(), message);
                None
            }
        }
    }

    /// A string or a non-empty list of strings: values of `["a", "b"]`, `prefix`, `suffix`.
    /// Suffixes of phone numbers are kept as written: normalising would turn a trailing
    /// `0044` into `+44`.
    fn words(&mut self, field: Field, what: &str, value: Value<'_, '_>) -> Option<Vec<Box<str>>> {
        let phone_suffix = what == "suffix" && field.field_type() == FieldType::Phone;
        let items: Vec<Value<'_, '_>> = match value.get_ref() {
            DeValue::String(_) if what != "list" => vec![value],
            DeValue::Array(items) if items.is_empty() => {
                let message = format!("empty {what} for {:?} never matches", field.name());
                self.error(value.span(), message);
                return None;
            }
            DeValue::Array(items) => items.iter().collect(),
            other => {
                let message = format!(
                    "{what:?} for {:?} takes a string or a list of strings, found {}",
                    field.name(),
                    describe(other)
                );
                self.error(value.span(), message);
                return None;
            }
        };

        let mut words = Vec::with_capacity(items.len());
        let mut broken = false;
        for item in items {
            let word = match item.get_ref() {
                DeValue::String(text) if text.is_empty() && what != "list" => {
                    let message = format!(
                        "empty {what} for {:?} matches every value (use {{ exists = true }})",
                        field.name()
                    );
                    self.error(item.span(), message);
                    None
                }
                DeValue::String(text) if phone_suffix => Some(fold(text).into_boxed_str()),
                DeValue::String(text) => self.word(field, text, item),
                other => {
                    let message = format!(
                        "expected a string in the {what} for {:?}, found {}",
                        field.name(),
                        describe(other)
                    );
                    self.error(item.span(), message);
                    None
                }
            };
            match word {
                Some(word) => words.push(word),
                None => broken = true,
            }
        }
        (!broken).then_some(words)
    }

    fn regex(&mut self, field: Field, value: Value<'_, '_>) -> Option<TextTest> {
        let DeValue::String(pattern) = value.get_ref() else {
            let message = format!(
                "\"regex\" for {:?} must be a string, found {}",
                field.name(),
                describe(value.get_ref())
            );
            self.error(value.span(), message);
            return None;
        };
        // Built here to report every problem now; the evaluator builds it again when it
        // first needs it.
        let built = build_regex(pattern);
        let rule = self.rule;
        match built {
            Ok(_) => Some(TextTest::Regex(Box::new(LazyRegex::new(pattern)))),
            Err(regex::Error::CompiledTooBig(limit)) => {
                let message = format!(
                    "regex {pattern:?} in rule {rule:?} is too large \
                     (compiled size over {limit} bytes)"
                );
                self.error(value.span(), message);
                None
            }
            Err(err) => {
                let message = format!(
                    "invalid regex {pattern:?} in rule {rule:?}: {}",
                    regex_message(&err)
                );
                self.error(value.span(), message);
                None
            }
        }
    }

    fn exists(&mut self, field: Field, value: Value<'_, '_>) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(expected) => Some(*expected),
            other => {
                let message = format!(
                    "\"exists\" for {:?} takes true or false, found {}",
                    field.name(),
                    describe(other)
                );
                self.error(value.span(), message);
                None
            }
        }
    }

    // === set fields ===

    fn set(&mut self, field: Field, value: Value<'_, '_>) -> Option<SetTest> {
        let operators = match value.get_ref() {
            DeValue::Table(operators) => operators,
            DeValue::String(_) | DeValue::Array(_) => {
                let message = format!(
                    "{:?} is a set: write {{ any = {} }} to match any of these values",
                    field.name(),
                    listed(value.get_ref())
                );
                self.error(value.span(), message);
                return None;
            }
            other => {
                let message = format!(
                    "{:?} takes a table of set operators (any, all, none, only, exists, not), \
                     found {}",
                    field.name(),
                    describe(other)
                );
                self.error(value.span(), message);
                return None;
            }
        };
        if operators.is_empty() {
            self.error(
                value.span(),
                format!("empty operator table for {:?}", field.name()),
            );
            return None;
        }

        let mut tests = Vec::new();
        let mut broken = false;
        for (operator, value) in entries(operators) {
            let test = match operator.get_ref().as_ref() {
                "any" => self.members(field, "any", value).map(SetTest::Any),
                "all" => self.members(field, "all", value).map(SetTest::All),
                "none" => self.members(field, "none", value).map(SetTest::None),
                "only" => self.members(field, "only", value).map(SetTest::Only),
                "exists" => self.exists(field, value).map(SetTest::Exists),
                "not" => self
                    .set(field, value)
                    .map(|test| SetTest::Not(Box::new(test))),
                other => {
                    let hint = if TEXT_OPERATORS.contains(&other) {
                        format!(" ({:?} is a set; use any, all, none or only)", field.name())
                    } else {
                        did_you_mean(other, SET_OPERATORS.iter().copied())
                    };
                    let message =
                        format!("unknown operator {other:?} for {:?}{hint}", field.name());
                    self.error(operator.span(), message);
                    None
                }
            };
            match test {
                Some(test) => tests.push(test),
                None => broken = true,
            }
        }
        if broken {
            return None;
        }
        match tests.len() {
            1 => tests.pop(),
            _ => Some(SetTest::Each(tests.into())),
        }
    }

    /// The list of an `any`/`all`/`none`/`only` operator; a single string is a list of one.
    fn members(
        &mut self,
        field: Field,
        operator: &str,
        value: Value<'_, '_>,
    ) -> Option<Box<[Box<str>]>> {
        let items: Vec<Value<'_, '_>> = match value.get_ref() {
            DeValue::String(_) => vec![value],
            DeValue::Array(items) if items.is_empty() => {
                let effect = match operator {
                    "all" => "is meaningless",
                    "none" => "excludes nothing",
                    _ => "never matches",
                };
                let message = format!("empty {operator:?} list for {:?} {effect}", field.name());
                self.error(value.span(), message);
                return None;
            }
            DeValue::Array(items) => items.iter().collect(),
            other => {
                let message = format!(
                    "{operator:?} for {:?} takes a list of strings, found {}",
                    field.name(),
                    describe(other)
                );
                self.error(value.span(), message);
                return None;
            }
        };

        let mut members = Vec::with_capacity(items.len());
        let mut broken = false;
        for item in items {
            match item.get_ref() {
                DeValue::String(text) if !text.is_empty() => {
                    members.push(fold(text).into_boxed_str());
                }
                other => {
                    let message = format!(
                        "expected a non-empty string in {operator:?} for {:?}, found {}",
                        field.name(),
                        describe(other)
                    );
                    self.error(item.span(), message);
                    broken = true;
                }
            }
        }
        (!broken).then(|| members.into_boxed_slice())
    }
}

/// A rule's regex as the evaluator runs it: case-insensitive, with bounded sizes.
pub(crate) fn build_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
}

/// A string or list of strings written back as a TOML array, for the set-field hint.
fn listed(value: &DeValue<'_>) -> String {
    let quoted: Vec<String> = match value {
        DeValue::String(text) => vec![format!("{text:?}")],
        DeValue::Array(items) => items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(text) => format!("{text:?}"),
                other => other.type_str().to_owned(),
            })
            .collect(),
        _ => Vec::new(),
    };
    format!("[{}]", quoted.join(", "))
}

/// The regex crate's multi-line error (pattern, caret, message) reduced to its message.
fn regex_message(err: &regex::Error) -> String {
    let text = err.to_string();
    let message = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("error:"))
        .map(str::trim)
        .map(str::to_owned);
    message.unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}
