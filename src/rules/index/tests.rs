//! The index must never change a decision: generated rule sets and invites, decided with
//! the index and by trying every rule in order, must agree. Seeded, so a failure repeats.

use std::fmt::Write as _;
use std::path::PathBuf;

use jiff::Timestamp;

use super::*;
use crate::facts::Facts;
use crate::rules::matcher::Cx;
use crate::rules::{RuleSet, Source, compile};

/// A small deterministic generator (xorshift64*), so the test needs no seed handling.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values rules and invites share, so that many conditions hold: mixed case, non-ASCII
/// (final sigma, sharp s, umlauts, a capital I with dot that lowercases to two characters),
/// near-misses and substrings of one another.
const WORDS: &[&str] = &[
    "alpha",
    "Alpha",
    "ALPHABET",
    "beta",
    "Beta-Max",
    "gamma",
    "gammaray",
    "delta",
    "ärger",
    "Ärger",
    "σίσυφος",
    "ΣΊΣΥΦΟΣ",
    "straße",
    "İzmir",
    "kelvin",
    "abc",
    "abc-def",
    "bc",
    "en-us",
    "fr-fr",
    "user@contoso.com",
    "guest@fabrikam.com",
];
const PREFIXES: &[&str] = &[
    "a", "al", "alp", "ALPHA", "ga", "gamma", "ä", "Σί", "abc", "en-",
];
const SUFFIXES: &[&str] = &[
    "a",
    "ta",
    "ma",
    "ray",
    "ος",
    "ΟΣ",
    "@contoso.com",
    ".com",
    "def",
    "i\u{307}zmir",
];
const REGEXES: &[&str] = &[
    "^alp",
    "eta$",
    "ab|bc",
    "^(en|fr)-",
    "[0-9]{3}",
    "kelvin",
    "KELVIN",
    "str(a|ä)",
    "σίσ",
    ".*",
    "gam+a",
    "del?ta",
    "contoso\\.com$",
    "^(alpha|beta|gamma)bet",
    "x*",
];
const PHONES: &[&str] = &[
    "+1 555 0100",
    "+15550100",
    "0044 20 7946 0000",
    "+442079460000",
    "+1 (900) 555-0123",
    "5550100",
    "+4930123456",
];
const PHONE_PREFIXES: &[&str] = &["+1", "+1 900", "+44", "+4930", "555"];
const PHONE_SUFFIXES: &[&str] = &["0100", "0000", "123", "456"];
const KINDS: &[&str] = &["user", "guest", "phone", "anonymous", "application"];
const MODALITIES: &[&str] = &["audio", "video", "data"];

fn text_fields() -> Vec<Field> {
    Field::ALL
        .iter()
        .copied()
        .filter(|field| matches!(field.field_type(), FieldType::Text | FieldType::Phone))
        .collect()
}

/// A TOML basic string; the values here hold no quotes, backslashes or control characters.
fn toml_string(value: impl std::fmt::Display) -> String {
    format!("\"{value}\"")
}

fn quoted(rng: &mut Rng, values: &[&str], count: usize) -> String {
    let items: Vec<String> = (0..count).map(|_| toml_string(rng.pick(values))).collect();
    format!("[{}]", items.join(", "))
}

/// One condition on a text or phone field, as TOML: `name = value`.
fn text_condition(rng: &mut Rng, field: Field) -> String {
    let phone = field.field_type() == FieldType::Phone;
    let (words, prefixes, suffixes) = if phone {
        (PHONES, PHONE_PREFIXES, PHONE_SUFFIXES)
    } else if field == Field::CallerKind {
        (KINDS, PREFIXES, SUFFIXES)
    } else {
        (WORDS, PREFIXES, SUFFIXES)
    };
    let list = if phone { "phones" } else { "words" };
    let big = if phone { "many-phones" } else { "many-words" };
    let value = match rng.below(14) {
        0..=2 => toml_string(rng.pick(words)),
        3 | 4 => {
            let count = 1 + rng.below(3);
            quoted(rng, words, count)
        }
        5 => format!("{{ prefix = {} }}", toml_string(rng.pick(prefixes))),
        6 => {
            let count = 1 + rng.below(3);
            format!("{{ prefix = {} }}", quoted(rng, prefixes, count))
        }
        7 => {
            let count = 1 + rng.below(2);
            format!("{{ suffix = {} }}", quoted(rng, suffixes, count))
        }
        8 => format!("{{ regex = '{}' }}", rng.pick(REGEXES)),
        9 => format!("{{ in_list = {list:?} }}"),
        10 => format!("{{ in_list = {big:?} }}"),
        11 => format!("{{ exists = {} }}", rng.chance(70)),
        12 => format!("{{ not = {} }}", toml_string(rng.pick(words))),
        _ => format!(
            "{{ prefix = {}, not = {} }}",
            toml_string(rng.pick(prefixes)),
            toml_string(rng.pick(words))
        ),
    };
    format!("{:?} = {value}", field.name())
}

/// A table of conditions on distinct fields, as inline TOML (for `any_of` and `not`).
fn inline_conditions(rng: &mut Rng, fields: &[Field], count: usize) -> String {
    let mut used = Vec::new();
    let mut parts = Vec::new();
    for _ in 0..count {
        let field = *rng.pick(fields);
        if used.contains(&field) {
            continue;
        }
        used.push(field);
        parts.push(text_condition(rng, field));
    }
    format!("{{ {} }}", parts.join(", "))
}

fn rule_set_text(rng: &mut Rng, rules: usize) -> String {
    // A few fields carry most conditions, so rules overlap the way real ones do.
    let all = text_fields();
    let fields: Vec<Field> = (0..4).map(|_| *rng.pick(&all)).collect();
    let mut text = String::new();
    let many_words: Vec<String> = (0..300)
        .map(|at| match WORDS.get(at) {
            Some(word) => toml_string(word),
            None => format!("\"filler-{at}\""),
        })
        .collect();
    let many_phones: Vec<String> = (0..300)
        .map(|at| match PHONES.get(at) {
            Some(phone) => toml_string(phone),
            None => format!("\"+3120{at:05}\""),
        })
        .collect();
    let _ = writeln!(
        text,
        "[lists]\nwords = {}\nphones = {}\nmany-words = [{}]\nmany-phones = [{}]\n",
        quoted(rng, WORDS, 4),
        quoted(rng, PHONES, 3),
        many_words.join(", "),
        many_phones.join(", "),
    );
    for at in 0..rules {
        let action = if rng.chance(70) { "reject" } else { "allow" };
        let _ = writeln!(text, "[[rule]]\nname = \"r{at}\"\naction = \"{action}\"");
        if rng.chance(10) {
            let _ = writeln!(text, "enabled = false");
        }
        let _ = writeln!(text, "[rule.when]");
        let mut used = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let choice = rng.below(26);
            if used.contains(&choice.min(12)) {
                continue;
            }
            used.push(choice.min(12));
            let line = match choice {
                13 => format!("modalities = {{ any = {} }}", quoted(rng, MODALITIES, 1)),
                14 => format!("group = {}", rng.chance(50)),
                15 => {
                    let count = 1 + rng.below(3);
                    let alternatives: Vec<String> = (0..count)
                        .map(|_| {
                            let conditions = 1 + rng.below(2);
                            inline_conditions(rng, &fields, conditions)
                        })
                        .collect();
                    format!("any_of = [{}]", alternatives.join(", "))
                }
                16 => format!("not = {}", inline_conditions(rng, &fields, 1)),
                17 => "time = { zone = \"Europe/Berlin\", hours = [\"09:00-17:00\"] }".into(),
                18 => "rate = { key = \"caller.id\", over = 2, within = \"1m\" }".into(),
                _ => {
                    let field = *rng.pick(&fields);
                    if used.contains(&(100 + field as usize)) {
                        continue;
                    }
                    used.push(100 + field as usize);
                    text_condition(rng, field)
                }
            };
            let _ = writeln!(text, "{line}");
        }
        let _ = writeln!(text);
    }
    text
}

/// A value as an invite might carry it: a known one, re-cased, with a Kelvin sign for a
/// `k`, empty, or unknown.
fn fact_value(rng: &mut Rng, field: Field) -> Option<String> {
    let pool = match field.field_type() {
        FieldType::Phone => PHONES,
        _ if field == Field::CallerKind => KINDS,
        _ => WORDS,
    };
    let value = rng.pick(pool).to_string();
    match rng.below(12) {
        0..=2 => None,
        3 => Some(String::new()),
        4 => Some(value.to_uppercase()),
        5 => Some(value.replace('k', "\u{212a}")),
        6 => Some(format!("{value}x")),
        7 => Some(format!("no-{value}")),
        _ => Some(value),
    }
}

fn facts(rng: &mut Rng) -> Facts {
    let mut facts = Facts::default();
    for field in text_fields() {
        facts.set_text(field, fact_value(rng, field));
    }
    let count = rng.below(3);
    let modalities = (0..count)
        .map(|_| rng.pick(MODALITIES).to_string())
        .collect();
    facts.set_members(Field::Modalities, modalities);
    facts.group = rng.chance(30);
    facts
}

fn compiled(text: &str) -> RuleSet {
    let source = Source {
        path: PathBuf::from("generated.toml"),
        text: text.to_owned(),
    };
    match compile(&[source]) {
        Ok(set) => set,
        Err(diagnostics) => panic!("generated rules do not compile: {diagnostics:#?}\n{text}"),
    }
}

#[test]
fn the_index_decides_exactly_as_a_scan_in_rule_order() {
    let times: Vec<Timestamp> = ["2026-03-02T10:00:00Z", "2026-03-02T20:00:00Z"]
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
    let mut rng = Rng(0x5eed_0fca_11ed);
    let mut matched = 0;
    let mut decided = 0;
    let (mut filed, mut enabled, mut by_filed) = (0, 0, 0);
    for round in 0..150 {
        let rules = 3 + rng.below(30);
        let text = rule_set_text(&mut rng, rules);
        let set = compiled(&text);
        // Twin sets keep their own rate counts, so both evaluators see the same counts.
        let (indexed_twin, linear_twin) = (compiled(&text), compiled(&text));
        filed += set.rules.iter().filter(|rule| rule.enabled).count() - set.index.residual.len();
        enabled += set.rules.iter().filter(|rule| rule.enabled).count();
        for case in 0..120 {
            let facts = facts(&mut rng);
            let now = times[case % times.len()];

            let hits = set.count_rates(&facts, now, |_, _| {});
            let cx = Cx {
                facts: &facts,
                now,
                rates: &hits,
            };
            let indexed = set.index.first_match(&set.rules, &cx);
            let linear = set.first_match_linear(&cx);
            assert_eq!(
                indexed, linear,
                "round {round}, case {case}: {facts:#?}\n{text}"
            );
            by_filed +=
                usize::from(indexed.is_some_and(|at| !set.index.residual.contains(&(at as u32))));

            let indexed = indexed_twin.evaluate_at(&facts, now);
            let linear = linear_twin.evaluate_linear_at(&facts, now);
            assert_eq!(indexed, linear, "round {round}, case {case}");
            matched += usize::from(indexed.rule.is_some());
            decided += 1;
        }
    }
    // The generated sets must exercise both outcomes, and decisions by filed rules.
    assert!(
        matched > decided / 10 && matched < decided * 9 / 10,
        "{matched}/{decided}"
    );
    assert!(
        by_filed > decided / 5,
        "{by_filed} of {decided} decided by filed rules"
    );
    // And most rules must be filed, or the index is not what is being compared.
    assert!(filed > enabled / 2, "{filed} of {enabled} rules filed");
}

#[test]
fn rules_are_filed_under_what_they_require() {
    let text = r#"
[lists]
short = ["a", "b"]

[[rule]]
name = "by-id"
action = "reject"
when = { caller.id = "x", modalities = { any = ["video"] } }

[[rule]]
name = "by-literal"
action = "reject"
when = { caller.name = { regex = "spam[0-9]+bot" } }

[[rule]]
name = "short-literal"
action = "reject"
when = { caller.name = { regex = "^a" } }

[[rule]]
name = "either"
action = "reject"
when = { any_of = [{ tenant = "t" }, { caller.phone = { prefix = "+1900" } }] }

[[rule]]
name = "not-only"
action = "reject"
when = { caller.id = { not = "x" } }

[[rule]]
name = "listed"
action = "reject"
when = { caller.id = { in_list = "short" } }

[[rule]]
name = "off"
action = "reject"
enabled = false
when = { caller.id = "x" }
"#;
    let set = compiled(text);
    // The regex without a usable literal and the negation are tried for every invite;
    // the disabled rule never is.
    assert_eq!(&*set.index.residual, &[2, 4]);
    let literals = set
        .index
        .fields
        .iter()
        .find_map(|index| index.literals.as_ref());
    assert!(literals.is_some_and(|literals| set.index.postings.get(literals.all) == [1]));
}
