//! Rule tests: `[[test]]` tables in rule files or in `*.test.toml` files beside them. A
//! case names an invite (a notification file, or the facts written inline) and the decision
//! expected for it; [`run`] decides each case with a compiled rule set and reports the
//! cases that came out differently.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::facts::{Facts, Field, FieldType, normalize_phone};
use crate::notification;
use crate::rules::diag::{LineIndex, did_you_mean};
use crate::rules::{Action, Decision, Diagnostic, Reason, RuleSet, describe, entries};

const TEST_KEYS: &[&str] = &[
    "name",
    "notification",
    "call_id",
    "facts",
    "at",
    "repeat",
    "action",
    "rule",
    "reason",
];
/// Upper bound on `repeat`, which exists to drive rate conditions over their limit.
const MAX_REPEAT: u32 = 10_000;

/// What a case expects. `None` fields are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub action: Action,
    /// `Some(None)`: no rule may match (`rule = false`).
    pub rule: Option<Option<String>>,
    pub reason: Option<Reason>,
}

/// One `[[test]]` table, its invites read.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    /// `file:line:col` of the `[[test]]` header.
    pub location: String,
    pub invites: Vec<Facts>,
    /// The evaluation time; `None` is the time the test runs.
    pub at: Option<Timestamp>,
    /// How many times each invite is evaluated in a row; the last decision is checked.
    pub repeat: u32,
    pub expect: Expectation,
}

/// A case whose decision was not the expected one.
#[derive(Debug, Clone)]
pub struct TestFailure {
    pub location: String,
    pub name: String,
    pub facts: Facts,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let facts = serde_json::to_string(&self.facts).unwrap_or_default();
        writeln!(f, "{}: test {:?} failed", self.location, self.name)?;
        writeln!(f, "  expected: {}", self.expected)?;
        writeln!(f, "  actual:   {}", self.actual)?;
        write!(f, "  facts:    {facts}")
    }
}

/// The outcome of running every case of a folder.
#[derive(Debug, Default)]
pub struct TestReport {
    pub cases: usize,
    pub passed: usize,
    pub failures: Vec<TestFailure>,
}

/// Reads every test case of the rules folder `dir`: `[[test]]` tables of its `*.toml` files
/// and its `*.test.toml` files, in file-name order. Problems with a case (unknown keys, a
/// missing notification, bad facts) are diagnostics; such cases are left out. Rule files
/// with TOML syntax errors are skipped here: the rule compiler reports those.
pub fn load(dir: &Path) -> (Vec<TestCase>, Vec<Diagnostic>) {
    let mut cases = Vec::new();
    let mut diagnostics = Vec::new();
    let mut names: Vec<_> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .filter(|name| is_toml(name))
            .collect(),
        Err(_) => return (cases, diagnostics),
    };
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let test_file = name.to_string_lossy().ends_with(".test.toml");
        // A rule file without the word `test` (or an escape that could spell it) has no
        // cases; parsing every file of a large folder again would double its load time.
        if !test_file && !text.contains("test") && !text.contains("\\u") && !text.contains("\\U") {
            continue;
        }
        let (found, problems) = parse(&path, &text, test_file);
        cases.extend(found);
        diagnostics.extend(problems);
    }
    (cases, diagnostics)
}

fn is_toml(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    !name.starts_with('.') && name.ends_with(".toml")
}

/// The cases of one file. In a `.test.toml` file only `[[test]]` tables may appear, and
/// syntax errors are reported; in a rule file everything but `test` belongs to the compiler.
pub fn parse(path: &Path, text: &str, test_file: bool) -> (Vec<TestCase>, Vec<Diagnostic>) {
    let mut file = TestFile {
        path,
        index: LineIndex::new(text),
        diagnostics: Vec::new(),
    };
    let (document, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        if test_file {
            for error in errors {
                let message = error.message().split_whitespace().collect::<Vec<_>>();
                file.error(error.span().unwrap_or(0..0), message.join(" "));
            }
        }
        return (Vec::new(), file.diagnostics);
    }
    let mut cases = Vec::new();
    for (key, value) in entries(document.get_ref()) {
        match key.get_ref().as_ref() {
            "test" => match value.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::Table(table) => {
                                cases.extend(file.case(item.span(), table));
                            }
                            other => file.error(
                                item.span(),
                                format!("each test must be a table, found {}", describe(other)),
                            ),
                        }
                    }
                }
                _ => file.error(
                    key.span(),
                    "\"test\" must be an array of tables: write [[test]]".into(),
                ),
            },
            other if test_file => {
                let hint = did_you_mean(other, ["test"]);
                let message = format!(
                    "unknown top-level key {other:?} in a test file{hint} (only [[test]] tables \
                     belong here)"
                );
                file.error(key.span(), message);
            }
            _ => {}
        }
    }
    file.diagnostics
        .sort_by_key(|diagnostic| (diagnostic.line, diagnostic.col));
    (cases, file.diagnostics)
}

/// Runs every case against `rules`, each from fresh rate counts.
pub fn run(rules: &RuleSet, cases: &[TestCase]) -> TestReport {
    let mut report = TestReport {
        cases: cases.len(),
        ..TestReport::default()
    };
    for case in cases {
        let now = case.at.unwrap_or_else(Timestamp::now);
        let mut passed = true;
        for facts in &case.invites {
            rules.reset_state();
            let mut decision = Decision::default_allow();
            for _ in 0..case.repeat {
                decision = rules.evaluate_at(facts, now);
            }
            if !meets(&decision, &case.expect) {
                passed = false;
                report.failures.push(TestFailure {
                    location: case.location.clone(),
                    name: case.name.clone(),
                    facts: facts.clone(),
                    expected: expected_text(&case.expect),
                    actual: actual_text(&decision),
                });
            }
        }
        if passed {
            report.passed += 1;
        }
    }
    rules.reset_state();
    report
}

fn meets(decision: &Decision, expect: &Expectation) -> bool {
    let reason = (decision.action == Action::Reject).then_some(decision.reason);
    decision.action == expect.action
        && expect
            .rule
            .as_ref()
            .is_none_or(|rule| rule.as_deref() == decision.rule.as_deref())
        && expect
            .reason
            .is_none_or(|expected| reason == Some(expected))
}

fn reason_word(reason: Reason) -> &'static str {
    match reason {
        Reason::None => "none",
        Reason::Busy => "busy",
        Reason::Forbidden => "forbidden",
    }
}

fn expected_text(expect: &Expectation) -> String {
    let mut text = expect.action.as_str().to_owned();
    match &expect.rule {
        Some(Some(rule)) => text.push_str(&format!(" by rule {rule:?}")),
        Some(None) => text.push_str(" (no rule matched)"),
        None => {}
    }
    if let Some(reason) = expect.reason {
        text.push_str(&format!(", reason {}", reason_word(reason)));
    }
    text
}

fn actual_text(decision: &Decision) -> String {
    let mut text = decision.action.as_str().to_owned();
    match &decision.rule {
        Some(rule) => text.push_str(&format!(" by rule {rule:?}")),
        None => text.push_str(" (no rule matched)"),
    }
    if decision.action == Action::Reject {
        text.push_str(&format!(", reason {}", reason_word(decision.reason)));
    }
    text
}

// === reading a case ===

struct TestFile<'a> {
    path: &'a Path,
    index: LineIndex<'a>,
    diagnostics: Vec<Diagnostic>,
}

type Value<'a, 'i> = &'a Spanned<DeValue<'i>>;

impl TestFile<'_> {
    fn error(&mut self, span: Range<usize>, message: String) {
        let (line, col) = self.index.span_start(&span);
        self.diagnostics.push(Diagnostic {
            path: self.path.to_path_buf(),
            line,
            col,
            message,
        });
    }

    fn case(&mut self, header: Range<usize>, table: &DeTable<'_>) -> Option<TestCase> {
        let errors_before = self.diagnostics.len();
        let (line, col) = self.index.span_start(&header);
        let location = format!("{}:{line}:{col}", self.path.display());
        let mut name = format!("at line {line}");
        let mut invites = None;
        let mut call_id = None;
        let mut at = None;
        let mut repeat = 1;
        let mut action = None;
        let mut rule = None;
        let mut reason = None;
        for (key, value) in entries(table) {
            match key.get_ref().as_ref() {
                "name" => name = self.string(value, "name")?.to_owned(),
                "notification" => {
                    if table.contains_key("facts") {
                        let message =
                            "a test takes either \"notification\" or \"facts\", not both".into();
                        self.error(key.span(), message);
                    }
                    invites = self.notification(value);
                }
                "facts" => invites = self.facts(value).map(|facts| vec![facts]),
                "call_id" => call_id = self.string(value, "call_id").map(str::to_owned),
                "at" => at = self.at(value),
                "repeat" => repeat = self.repeat(value).unwrap_or(1),
                "action" => {
                    let actions = [("reject", 0), ("allow", 1), ("redirect", 2), ("ignore", 3)];
                    action = self.word(value, "action", &actions);
                }
                "rule" => rule = self.rule(value),
                "reason" => {
                    let reasons = [("none", 0), ("busy", 1), ("forbidden", 2)];
                    reason = self.word(value, "reason", &reasons);
                }
                other => {
                    let hint = did_you_mean(other, TEST_KEYS.iter().copied());
                    self.error(key.span(), format!("unknown test key {other:?}{hint}"));
                }
            }
        }
        if !table.contains_key("notification") && !table.contains_key("facts") {
            let message = "test needs \"notification\" (a notification file) or a \
                           [test.facts] table"
                .to_owned();
            self.error(header.clone(), message);
        }
        if !table.contains_key("action") {
            self.error(
                header,
                "test needs \"action\" (reject, allow, redirect, ignore)".into(),
            );
        }
        let action = match action? {
            0 => Action::Reject,
            1 => Action::Allow,
            2 => Action::Redirect,
            _ => Action::Ignore,
        };
        let reason = reason.map(|reason| match reason {
            0 => Reason::None,
            1 => Reason::Busy,
            _ => Reason::Forbidden,
        });
        if action != Action::Reject
            && let Some(span) = table.get("reason").map(|value| value.span())
        {
            self.error(span, "only a reject decision has a reason".into());
        }
        let mut invites = invites?;
        if let Some(call_id) = call_id {
            invites.retain(|facts| facts.call_id == call_id);
            if invites.is_empty() {
                let span = table.get("call_id").map_or(0..0, |value| value.span());
                self.error(
                    span,
                    format!("no invite with call id {call_id:?} in the notification"),
                );
            }
        }
        if self.diagnostics.len() > errors_before {
            return None;
        }
        Some(TestCase {
            name,
            location,
            invites,
            at,
            repeat,
            expect: Expectation {
                action,
                rule,
                reason,
            },
        })
    }

    fn string<'v>(&mut self, value: Value<'v, '_>, key: &str) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(text) => Some(text),
            other => {
                let message = format!("{key:?} must be a string, found {}", describe(other));
                self.error(value.span(), message);
                None
            }
        }
    }

    fn word(&mut self, value: Value<'_, '_>, key: &str, words: &[(&str, u8)]) -> Option<u8> {
        let text = self.string(value, key)?;
        if let Some((_, found)) = words
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(text))
        {
            return Some(*found);
        }
        let hint = did_you_mean(&text.to_lowercase(), words.iter().map(|(word, _)| *word));
        self.error(value.span(), format!("unknown {key} {text:?}{hint}"));
        None
    }

    /// `rule = "name"`, or `rule = false` for "no rule matched".
    fn rule(&mut self, value: Value<'_, '_>) -> Option<Option<String>> {
        match value.get_ref() {
            DeValue::String(name) => Some(Some(name.to_string())),
            DeValue::Boolean(false) => Some(None),
            other => {
                let message = format!(
                    "\"rule\" takes a rule name, or false for \"no rule matched\", found {}",
                    describe(other)
                );
                self.error(value.span(), message);
                None
            }
        }
    }

    fn at(&mut self, value: Value<'_, '_>) -> Option<Timestamp> {
        let text = match value.get_ref() {
            DeValue::String(text) => text.to_string(),
            DeValue::Datetime(datetime) => datetime.to_string(),
            other => {
                let message = format!("\"at\" must be a time, found {}", describe(other));
                self.error(value.span(), message);
                return None;
            }
        };
        match text.parse::<Timestamp>() {
            Ok(at) => Some(at),
            Err(_) => {
                let message = format!(
                    "invalid time {text:?} for \"at\" (write an RFC 3339 time with an offset, \
                     e.g. 2026-03-29T01:30:00Z or 2026-03-29T03:30:00+02:00)"
                );
                self.error(value.span(), message);
                None
            }
        }
    }

    fn repeat(&mut self, value: Value<'_, '_>) -> Option<u32> {
        let number = match value.get_ref() {
            DeValue::Integer(number) => {
                let digits = number.as_str().replace('_', "");
                i64::from_str_radix(&digits, number.radix()).ok()
            }
            _ => None,
        };
        match number {
            Some(number) if (1..=i64::from(MAX_REPEAT)).contains(&number) => Some(number as u32),
            _ => {
                let message = format!("\"repeat\" must be a whole number from 1 to {MAX_REPEAT}");
                self.error(value.span(), message);
                None
            }
        }
    }

    /// A notification file, relative to the test file's folder; every invite in it.
    fn notification(&mut self, value: Value<'_, '_>) -> Option<Vec<Facts>> {
        let relative = self.string(value, "notification")?;
        let base = self.path.parent().unwrap_or(Path::new(""));
        let path: PathBuf = base.join(relative);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                let message = format!(
                    "cannot read notification {}: {}",
                    path.display(),
                    super::io_message(&error)
                );
                self.error(value.span(), message);
                return None;
            }
        };
        match notification::parse(&bytes) {
            Ok(parsed) if parsed.invites.is_empty() => {
                let message = format!("notification {} holds no invite", path.display());
                self.error(value.span(), message);
                None
            }
            Ok(parsed) => Some(parsed.invites),
            Err(error) => {
                let message = format!("cannot parse notification {}: {error}", path.display());
                self.error(value.span(), message);
                None
            }
        }
    }

    /// `[test.facts]`: rule-language field names and values, plus `call_id`.
    fn facts(&mut self, value: Value<'_, '_>) -> Option<Facts> {
        let DeValue::Table(table) = value.get_ref() else {
            let message = format!(
                "\"facts\" must be a table ([test.facts] with caller.kind = \"phone\", …), \
                 found {}",
                describe(value.get_ref())
            );
            self.error(value.span(), message);
            return None;
        };
        let errors_before = self.diagnostics.len();
        let mut facts = Facts {
            call_id: "inline".to_owned(),
            ..Facts::default()
        };
        self.fact_entries(&mut facts, String::new(), table);
        (self.diagnostics.len() == errors_before).then_some(facts)
    }

    fn fact_entries(&mut self, facts: &mut Facts, prefix: String, table: &DeTable<'_>) {
        for (key, value) in entries(table) {
            let path = format!("{prefix}{}", key.get_ref());
            if path == "call_id" {
                if let Some(id) = self.string(value, "call_id") {
                    facts.call_id = id.to_owned();
                }
                continue;
            }
            match (Field::from_name(&path), value.get_ref()) {
                (Some(field), _) => self.fact(facts, field, value),
                (None, DeValue::Table(inner)) if path.split('.').count() < 3 => {
                    self.fact_entries(facts, format!("{path}."), inner);
                }
                (None, _) => {
                    let names = Field::ALL.iter().map(|field| field.name());
                    let hint = did_you_mean(&path, names.chain(["call_id"]));
                    self.error(key.span(), format!("unknown field {path:?}{hint}"));
                }
            }
        }
    }

    fn fact(&mut self, facts: &mut Facts, field: Field, value: Value<'_, '_>) {
        let name = field.name();
        match (field.field_type(), value.get_ref()) {
            (FieldType::Text, DeValue::String(text)) => {
                facts.set_text(field, Some(text.trim().to_owned()));
            }
            // Facts hold numbers in E.164, as the notification parser leaves them.
            (FieldType::Phone, DeValue::String(text)) => {
                let number = normalize_phone(text).unwrap_or_else(|| text.trim().to_owned());
                facts.set_text(field, Some(number));
            }
            (FieldType::Bool, DeValue::Boolean(flag)) => {
                facts.set_flag(field, *flag);
            }
            (FieldType::Set, DeValue::Array(items)) => {
                let mut members = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(text) => members.push(text.to_string()),
                        other => {
                            let message =
                                format!("expected a string in {name:?}, found {}", describe(other));
                            self.error(item.span(), message);
                        }
                    }
                }
                facts.set_members(field, members);
            }
            (kind, other) => {
                let wanted = match kind {
                    FieldType::Text | FieldType::Phone => "a string",
                    FieldType::Bool => "true or false",
                    FieldType::Set => "a list of strings",
                };
                let message = format!("{name:?} takes {wanted}, found {}", describe(other));
                self.error(value.span(), message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Source, compile};

    const RULES: &str = "[[rule]]\nname = \"phones\"\naction = \"reject\"\nreason = \"busy\"\n\
                         [rule.when]\ncaller.kind = \"phone\"\n";

    fn rules() -> RuleSet {
        let source = Source {
            path: PathBuf::from("rules.toml"),
            text: RULES.to_owned(),
        };
        compile(&[source]).unwrap()
    }

    fn cases(text: &str) -> (Vec<TestCase>, Vec<String>) {
        let (cases, diagnostics) = parse(Path::new("t.test.toml"), text, true);
        (cases, diagnostics.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn inline_facts_use_the_rule_language_names() {
        let (found, errors) = cases(
            "[[test]]\nname = \"a caller\"\naction = \"reject\"\nrule = \"phones\"\n\
             reason = \"busy\"\n[test.facts]\ncaller.kind = \"phone\"\n\
             caller.phone = \"+1 555 0100\"\nmodalities = [\"Audio\"]\ngroup = false\n",
        );
        assert_eq!(errors, Vec::<String>::new());
        let facts = &found[0].invites[0];
        assert_eq!(facts.caller.phone.as_deref(), Some("+15550100"));
        assert_eq!(facts.modalities, ["audio"]);
        let report = run(&rules(), &found);
        assert_eq!((report.cases, report.passed), (1, 1));
    }

    #[test]
    fn failures_show_expected_and_actual() {
        let (found, _) = cases(
            "[[test]]\nname = \"user\"\naction = \"reject\"\n\
             [test.facts]\ncaller.kind = \"user\"\n\n\
             [[test]]\naction = \"allow\"\nrule = false\n[test.facts]\ncaller.kind = \"user\"\n",
        );
        let report = run(&rules(), &found);
        assert_eq!((report.cases, report.passed), (2, 1));
        let failure = report.failures[0].to_string();
        assert!(
            failure.starts_with("t.test.toml:1:1: test \"user\" failed\n"),
            "{failure}"
        );
        assert!(failure.contains("  expected: reject\n"), "{failure}");
        assert!(
            failure.contains("  actual:   allow (no rule matched)\n"),
            "{failure}"
        );
        assert!(failure.contains("\"kind\":\"user\""), "{failure}");
    }

    #[test]
    fn case_errors_have_positions_and_suggestions() {
        let (found, errors) = cases(
            "[[test]]\nactoin = \"reject\"\n[test.facts]\ncaller.knd = \"x\"\ngroup = \"yes\"\n\n\
             [[test]]\naction = \"maybe\"\nnotification = \"missing.json\"\nat = \"tomorrow\"\n\n\
             [tests]\n",
        );
        assert!(found.is_empty());
        assert_eq!(
            errors,
            [
                "t.test.toml:1:1: test needs \"action\" (reject, allow, redirect, ignore)",
                "t.test.toml:2:1: unknown test key \"actoin\" (did you mean \"action\"?)",
                "t.test.toml:4:8: unknown field \"caller.knd\" (did you mean \"caller.kind\"?)",
                "t.test.toml:5:9: \"group\" takes true or false, found string \"yes\"",
                "t.test.toml:8:10: unknown action \"maybe\"",
                "t.test.toml:9:16: cannot read notification missing.json: no such file or \
                 directory",
                "t.test.toml:10:6: invalid time \"tomorrow\" for \"at\" (write an RFC 3339 \
                 time with an offset, e.g. 2026-03-29T01:30:00Z or 2026-03-29T03:30:00+02:00)",
                "t.test.toml:12:2: unknown top-level key \"tests\" in a test file (did you mean \
                 \"test\"?) (only [[test]] tables belong here)",
            ]
        );
    }

    #[test]
    fn repeat_drives_rate_conditions_and_each_case_starts_afresh() {
        let source = Source {
            path: PathBuf::from("rules.toml"),
            text: "[[rule]]\nname = \"flood\"\naction = \"reject\"\n[rule.when.rate]\n\
                   key = \"caller.id\"\nover = 2\nwithin = \"1m\"\n"
                .to_owned(),
        };
        let set = compile(&[source]).unwrap();
        let (found, errors) = cases(
            "[[test]]\nrepeat = 3\naction = \"reject\"\nrule = \"flood\"\n\
             at = 2026-06-01T12:00:00Z\n[test.facts]\ncaller.id = \"x\"\n\n\
             [[test]]\nrepeat = 2\naction = \"allow\"\n[test.facts]\ncaller.id = \"x\"\n",
        );
        assert_eq!(errors, Vec::<String>::new());
        let report = run(&set, &found);
        assert_eq!(report.passed, 2, "{:?}", report.failures);
    }
}
