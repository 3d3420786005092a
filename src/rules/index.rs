//! Which rules an invite can match at all, found without trying them one by one.
//!
//! At compile time every enabled rule is filed under the values one of its top-level
//! conditions requires: an equality, a list of values or a named list (`caller.id =
//! "x"`), a prefix or suffix, or the literal text every match of a regex must contain.
//! Rules with no such condition stay in a residual list that every invite tries. An invite
//! then looks up its own values (one pass over each text fact) and tries only the rules
//! filed under them, plus the residual ones; the earliest rule that holds decides, exactly
//! as a scan in rule order would. Keys are hashes and every candidate's whole condition is
//! still checked, so a collision costs a wasted check, never a wrong decision.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::lists::ValueSet;
use super::matcher::{Condition, Cx, LazyRegex, Rule, TextTest, e164, fold_char, present};
use crate::facts::{Field, FieldType};

/// Named lists up to this size are filed under each of their values; longer ones are
/// looked up as a whole, once per invite and list.
const LIST_FILING_LIMIT: usize = 256;
/// A regex is filed under its literals only when each has at least this many bytes;
/// shorter ones occur in too many values to narrow anything down.
const MIN_LITERAL_LEN: usize = 3;
/// A regex with more alternative literals than this stays residual.
const MAX_LITERALS: usize = 64;

/// Where one key's rules lie in [`Index::postings`]: positions, ascending.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// Every key's rule positions in one array: a large set has a key per rule, and one
/// allocation each would cost more than the positions themselves.
#[derive(Debug, Default)]
struct Postings(Vec<u32>);

impl Postings {
    /// Appends `rules` (ascending) without repeats.
    fn push(&mut self, rules: impl IntoIterator<Item = u32>) -> Span {
        let start = self.0.len();
        for rule in rules {
            if self.0.len() == start || self.0.last() != Some(&rule) {
                self.0.push(rule);
            }
        }
        Span {
            start: start as u32,
            len: (self.0.len() - start) as u32,
        }
    }

    fn get(&self, span: Span) -> &[u32] {
        &self.0[span.start as usize..][..span.len as usize]
    }
}

/// Keys are already well-mixed hashes; hashing them again would only cost time.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// The index of one compiled rule set.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Enabled rules filed under no key: every invite tries them.
    residual: Box<[u32]>,
    /// Enabled rules in audit mode, in order. They never decide when an enforced rule
    /// matches; they are tried after the index, up to the deciding rule, for evidence.
    shadow: Box<[u32]>,
    /// Equality, prefix and suffix keys of every field.
    keys: KeyMap<Span>,
    postings: Postings,
    /// The fields that have keys, lists or literals, in field order.
    fields: Box<[FieldIndex]>,
}

#[derive(Debug)]
struct FieldIndex {
    field: Field,
    /// Byte lengths of the prefixes filed for this field, ascending.
    prefix_lens: Box<[u32]>,
    suffix_lens: Box<[u32]>,
    /// Named lists too long to file value by value.
    lists: Box<[(Arc<ValueSet>, Span)]>,
    literals: Option<Literals>,
}

/// Regex rules on one field, filed under literals that every match contains.
#[derive(Debug)]
struct Literals {
    /// Matches the literals, ASCII case ignored.
    automaton: AhoCorasick,
    /// The rules of each literal, by pattern id.
    rules: Box<[Span]>,
    /// Every rule filed here: a fact that is not ASCII tries them all, since Unicode case
    /// folding can match an ASCII literal with a non-ASCII letter.
    all: Span,
}

/// What kind of key a hash stands for; mixed into it so that a prefix never collides
/// with an equal value on purpose.
#[derive(Clone, Copy)]
enum Kind {
    Exact = 1,
    Prefix = 2,
    Suffix = 3,
    List = 4,
    Literal = 5,
}

/// One way a rule can be found: under `key` of `field`.
#[derive(Clone)]
enum Filing {
    /// A hashed value; `len` is the byte length of a prefix or suffix.
    Hashed {
        field: Field,
        kind: Kind,
        len: u32,
        key: u64,
    },
    List {
        field: Field,
        set: Arc<ValueSet>,
    },
    Literal {
        field: Field,
        literal: Box<[u8]>,
    },
}

impl Filing {
    /// Identifies the filing's key, for counting how many rules share it.
    fn id(&self) -> u64 {
        match self {
            Filing::Hashed { key, .. } => *key,
            Filing::List { field, set } => {
                let address = Arc::as_ptr(set) as usize as u64;
                mix(address, *field, Kind::List)
            }
            Filing::Literal { field, literal } => {
                let mut hash = Fnv::new();
                hash.bytes(literal);
                mix(hash.0, *field, Kind::Literal)
            }
        }
    }

    /// What looking the key up and trying its rules costs, beyond the rules themselves.
    fn overhead(&self) -> u32 {
        match self {
            Filing::Hashed {
                kind: Kind::Exact, ..
            } => 0,
            Filing::Hashed { .. } | Filing::List { .. } => 1,
            Filing::Literal { .. } => 2,
        }
    }
}

// === building ===

impl Index {
    /// Files every enabled rule of `rules`.
    pub(crate) fn build(rules: &[Rule]) -> Index {
        // Count how many rules could share each key, then file each rule where it has
        // the fewest neighbours: those are the rules an invite with that value must try.
        // Each rule's keys once, sorted: the count of a key is the length of its run.
        // Sized exactly first: at 100,000 rules, growing it by doubling would hold two
        // copies of several megabytes at the moment memory use peaks.
        let mut filings = Vec::new();
        let mut ids = Vec::new();
        let mut distinct_ids = |rule: &Rule, ids: &mut Vec<u64>| {
            filings.clear();
            every_filing(&rule.condition, &mut filings);
            ids.clear();
            ids.extend(filings.iter().map(Filing::id));
            ids.sort_unstable();
            ids.dedup();
        };
        let deciding = || rules.iter().filter(|rule| rule.decides());
        let mut total = 0;
        for rule in deciding() {
            distinct_ids(rule, &mut ids);
            total += ids.len();
        }
        let mut shared: Vec<u64> = Vec::with_capacity(total);
        for rule in deciding() {
            distinct_ids(rule, &mut ids);
            shared.extend_from_slice(&ids);
        }
        shared.sort_unstable();
        let sharing = |id: u64| {
            let start = shared.partition_point(|other| *other < id);
            let end = shared.partition_point(|other| *other <= id);
            (end - start) as u32
        };

        let mut residual = Vec::new();
        // Most rules are filed under one key.
        let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(rules.len());
        let mut fields: HashMap<Field, FieldBuild> = HashMap::new();
        let mut shadow = Vec::new();
        for (at, rule) in rules.iter().enumerate() {
            if rule.enabled && !rule.decides() {
                shadow.push(at as u32);
            }
            if !rule.decides() {
                continue;
            }
            let at = at as u32;
            let cost = |filing: &Filing| sharing(filing.id());
            let Some((_, filings)) = choose(&rule.condition, &cost) else {
                residual.push(at);
                continue;
            };
            for filing in filings {
                match filing {
                    Filing::Hashed {
                        field,
                        kind,
                        len,
                        key,
                    } => {
                        keyed.push((key, at));
                        let build = fields.entry(field).or_default();
                        match kind {
                            Kind::Prefix => build.prefix_lens.push(len),
                            Kind::Suffix => build.suffix_lens.push(len),
                            _ => {}
                        }
                    }
                    Filing::List { field, set } => {
                        let build = fields.entry(field).or_default();
                        let address = Arc::as_ptr(&set) as usize;
                        build
                            .lists
                            .entry(address)
                            .or_insert_with(|| (set, Vec::new()))
                            .1
                            .push(at);
                    }
                    Filing::Literal { field, literal } => {
                        let build = fields.entry(field).or_default();
                        build.literals.entry(literal).or_default().push(at);
                        build.literal_rules.push(at);
                    }
                }
            }
        }

        drop(shared);
        keyed.sort_unstable();
        let mut postings = Postings(Vec::with_capacity(keyed.len()));
        let groups = keyed.chunk_by(|a, b| a.0 == b.0);
        let mut keys = KeyMap::with_capacity_and_hasher(groups.clone().count(), Default::default());
        for group in groups {
            let span = postings.push(group.iter().map(|(_, rule)| *rule));
            keys.insert(group[0].0, span);
        }
        drop(keyed);

        let mut fields: Vec<FieldIndex> = fields
            .into_iter()
            .map(|(field, build)| build.finish(field, &mut postings))
            .collect();
        fields.sort_by_key(|index| index.field);
        postings.0.shrink_to_fit();
        Index {
            residual: residual.into_boxed_slice(),
            shadow: shadow.into_boxed_slice(),
            keys,
            postings,
            fields: fields.into_boxed_slice(),
        }
    }
}

/// One field's filings while the index is built.
#[derive(Default)]
struct FieldBuild {
    prefix_lens: Vec<u32>,
    suffix_lens: Vec<u32>,
    /// By the list's address: conditions on one list share its set.
    lists: HashMap<usize, (Arc<ValueSet>, Vec<u32>)>,
    literals: HashMap<Box<[u8]>, Vec<u32>>,
    literal_rules: Vec<u32>,
}

impl FieldBuild {
    fn finish(mut self, field: Field, postings: &mut Postings) -> FieldIndex {
        for lens in [&mut self.prefix_lens, &mut self.suffix_lens] {
            lens.sort_unstable();
            lens.dedup();
        }
        let mut lists: Vec<(Arc<ValueSet>, Vec<u32>)> = self.lists.into_values().collect();
        lists.sort_by_key(|(_, rules)| rules[0]);
        let literals = (!self.literals.is_empty()).then(|| {
            let (patterns, rules): (Vec<Box<[u8]>>, Vec<Vec<u32>>) =
                self.literals.into_iter().unzip();
            let automaton = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .expect("a few thousand short literals fit any automaton");
            self.literal_rules.sort_unstable();
            Literals {
                automaton,
                rules: rules
                    .into_iter()
                    .map(|rules| postings.push(rules))
                    .collect(),
                all: postings.push(self.literal_rules),
            }
        });
        FieldIndex {
            field,
            prefix_lens: self.prefix_lens.into_boxed_slice(),
            suffix_lens: self.suffix_lens.into_boxed_slice(),
            lists: lists
                .into_iter()
                .map(|(set, rules)| (set, postings.push(rules)))
                .collect(),
            literals,
        }
    }
}

/// Every key `condition` could be filed under, for counting.
fn every_filing(condition: &Condition, out: &mut Vec<Filing>) {
    match condition {
        Condition::All(all) => all.iter().for_each(|child| every_filing(child, out)),
        Condition::Any(any) => any.iter().for_each(|child| every_filing(child, out)),
        Condition::Text(field, test) | Condition::Phone(field, test) => {
            every_text_filing(*field, test, out);
        }
        _ => {}
    }
}

fn every_text_filing(field: Field, test: &TextTest, out: &mut Vec<Filing>) {
    match test {
        TextTest::All(all) => all
            .iter()
            .for_each(|test| every_text_filing(field, test, out)),
        test => out.extend(text_filings(field, test).unwrap_or_default()),
    }
}

/// The cheapest set of keys that finds `condition` whenever it holds: any one conjunct's
/// keys, or for `any_of` the keys of every alternative. `None` when there is none.
fn choose(condition: &Condition, cost: &impl Fn(&Filing) -> u32) -> Option<(u64, Vec<Filing>)> {
    match condition {
        Condition::All(all) => all
            .iter()
            .filter_map(|child| choose(child, cost))
            .min_by_key(|(total, _)| *total),
        Condition::Any(any) => {
            let mut total = 0;
            let mut filings = Vec::new();
            for alternative in any {
                let (cost, more) = choose(alternative, cost)?;
                total += cost;
                filings.extend(more);
            }
            Some((total, filings))
        }
        Condition::Text(field, test) | Condition::Phone(field, test) => {
            choose_text(*field, test, cost)
        }
        _ => None,
    }
}

fn choose_text(
    field: Field,
    test: &TextTest,
    cost: &impl Fn(&Filing) -> u32,
) -> Option<(u64, Vec<Filing>)> {
    if let TextTest::All(all) = test {
        return all
            .iter()
            .filter_map(|test| choose_text(field, test, cost))
            .min_by_key(|(total, _)| *total);
    }
    let filings = text_filings(field, test)?;
    let total = filings
        .iter()
        .map(|filing| u64::from(cost(filing)) + u64::from(filing.overhead()))
        .sum();
    Some((total, filings))
}

/// The keys under which a fact satisfying `test` is certain to be looked up.
fn text_filings(field: Field, test: &TextTest) -> Option<Vec<Filing>> {
    let hashed = |kind: Kind, value: &str| {
        let mut hash = Fnv::new();
        match kind {
            Kind::Suffix => value.bytes().rev().for_each(|byte| hash.byte(byte)),
            _ => hash.bytes(value.as_bytes()),
        }
        Filing::Hashed {
            field,
            kind,
            len: value.len() as u32,
            key: mix(hash.0, field, kind),
        }
    };
    let filings = match test {
        TextTest::Equals(value) => vec![hashed(Kind::Exact, value)],
        TextTest::AnyOf(values) => values
            .iter()
            .map(|value| hashed(Kind::Exact, value))
            .collect(),
        TextTest::Prefix(values) => values
            .iter()
            .map(|value| hashed(Kind::Prefix, value))
            .collect(),
        TextTest::Suffix(values) => values
            .iter()
            .map(|value| hashed(Kind::Suffix, value))
            .collect(),
        TextTest::InList(set) if set.len() <= LIST_FILING_LIMIT => set
            .values()
            .map(|value| hashed(Kind::Exact, value))
            .collect(),
        TextTest::InList(set) => vec![Filing::List {
            field,
            set: set.clone(),
        }],
        TextTest::Regex(regex) => regex_literals(regex)?
            .into_iter()
            .map(|literal| Filing::Literal { field, literal })
            .collect(),
        TextTest::Exists(_) | TextTest::Not(_) | TextTest::All(_) => return None,
    };
    // An empty list of keys would file the rule nowhere, and so lose it.
    (!filings.is_empty()).then_some(filings)
}

/// Literals of which every match of `regex` contains one, ASCII-lowercased: its prefixes
/// or its suffixes, whichever are longer. `None` when they are too short or too many.
fn regex_literals(regex: &LazyRegex) -> Option<Vec<Box<[u8]>>> {
    // The same syntax the regex was built with (see `when.rs`): case-insensitive.
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(regex.as_str())
        .ok()?;
    let mut best: Option<Vec<Box<[u8]>>> = None;
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let seq = Extractor::new().kind(kind).extract(&hir);
        let Some(literals) = seq.literals() else {
            continue;
        };
        let mut words: Vec<Box<[u8]>> = literals
            .iter()
            .map(|literal| literal.as_bytes().to_ascii_lowercase().into_boxed_slice())
            .collect();
        words.sort_unstable();
        words.dedup();
        let shortest = words.iter().map(|word| word.len()).min().unwrap_or(0);
        if shortest < MIN_LITERAL_LEN || words.len() > MAX_LITERALS {
            continue;
        }
        let better = best
            .as_ref()
            .is_none_or(|best| shortest > best.iter().map(|word| word.len()).min().unwrap_or(0));
        if better {
            best = Some(words);
        }
    }
    best
}

// === lookup ===

impl Index {
    /// The position of the first enabled rule whose condition holds for `cx`, trying only
    /// the rules filed under the invite's values and the residual ones.
    pub(crate) fn first_match(&self, rules: &[Rule], cx: &Cx<'_>) -> Option<usize> {
        let mut search = Search {
            rules,
            cx,
            best: u32::MAX,
        };
        search.try_rules(&self.residual);
        for index in &self.fields {
            let Some(fact) = present(cx.facts.text(index.field)) else {
                continue;
            };
            let fact = match index.field.field_type() {
                FieldType::Phone => e164(fact),
                _ => std::borrow::Cow::Borrowed(fact),
            };
            self.look_up(index, &fact, &mut search);
        }
        (search.best != u32::MAX).then_some(search.best as usize)
    }

    /// The first enabled audit-mode rule before `decided` (the deciding rule's position;
    /// `None`: no rule decided) that holds for `cx`.
    pub(crate) fn first_shadow(
        &self,
        rules: &[Rule],
        cx: &Cx<'_>,
        decided: Option<usize>,
    ) -> Option<usize> {
        let before = decided.unwrap_or(usize::MAX);
        self.shadow
            .iter()
            .map(|at| *at as usize)
            .take_while(|at| *at < before)
            .find(|at| rules[*at].condition.holds(cx))
    }

    fn look_up(&self, index: &FieldIndex, fact: &str, search: &mut Search<'_, '_>) {
        let field = index.field;

        // One pass over the folded fact yields its hash and that of each filed prefix.
        let mut hash = Fnv::new();
        let mut length = 0u32;
        let mut prefixes = index.prefix_lens.iter().peekable();
        let mut step = |bytes: &[u8], hash: &mut Fnv| {
            hash.bytes(bytes);
            length += bytes.len() as u32;
            while let Some(&&next) = prefixes.peek() {
                if next > length {
                    break;
                }
                if next == length {
                    search.try_key(self, mix(hash.0, field, Kind::Prefix));
                }
                prefixes.next();
            }
        };
        if fact.is_ascii() {
            for byte in fact.bytes() {
                step(&[byte.to_ascii_lowercase()], &mut hash);
            }
        } else {
            let mut buffer = [0u8; 4];
            for c in fact.chars().flat_map(fold_char) {
                step(c.encode_utf8(&mut buffer).as_bytes(), &mut hash);
            }
        }
        search.try_key(self, mix(hash.0, field, Kind::Exact));

        if !index.suffix_lens.is_empty() {
            let mut hash = Fnv::new();
            let mut length = 0u32;
            let mut suffixes = index.suffix_lens.iter().peekable();
            let mut step = |bytes: &[u8], hash: &mut Fnv| {
                bytes.iter().rev().for_each(|byte| hash.byte(*byte));
                length += bytes.len() as u32;
                while let Some(&&next) = suffixes.peek() {
                    if next > length {
                        break;
                    }
                    if next == length {
                        search.try_key(self, mix(hash.0, field, Kind::Suffix));
                    }
                    suffixes.next();
                }
            };
            if fact.is_ascii() {
                for byte in fact.bytes().rev() {
                    step(&[byte.to_ascii_lowercase()], &mut hash);
                }
            } else {
                let mut buffer = [0u8; 4];
                for c in fact.chars().rev().flat_map(|c| fold_char(c).rev()) {
                    step(c.encode_utf8(&mut buffer).as_bytes(), &mut hash);
                }
            }
        }

        for (set, span) in &index.lists {
            if set.contains(fact) {
                search.try_rules(self.postings.get(*span));
            }
        }

        if let Some(literals) = &index.literals {
            if fact.is_ascii() {
                for found in literals.automaton.find_overlapping_iter(fact) {
                    let span = literals.rules[found.pattern().as_usize()];
                    search.try_rules(self.postings.get(span));
                }
            } else {
                search.try_rules(self.postings.get(literals.all));
            }
        }
    }
}

/// The earliest matching rule found so far.
struct Search<'r, 'c> {
    rules: &'r [Rule],
    cx: &'r Cx<'c>,
    /// `u32::MAX` while none holds.
    best: u32,
}

impl Search<'_, '_> {
    fn try_key(&mut self, index: &Index, key: u64) {
        if let Some(span) = index.keys.get(&key) {
            self.try_rules(index.postings.get(*span));
        }
    }

    /// Tries `rules` (ascending) up to the first that holds; rules after the best match so
    /// far cannot decide, so they are skipped.
    fn try_rules(&mut self, rules: &[u32]) {
        for &at in rules {
            if at >= self.best {
                return;
            }
            if self.rules[at as usize].condition.holds(self.cx) {
                self.best = at;
                return;
            }
        }
    }
}

// === hashing ===

/// FNV-1a over bytes: cheap to extend one byte at a time, which is what lets one pass over
/// a fact hash every prefix.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn byte(&mut self, byte: u8) {
        self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|byte| self.byte(*byte));
    }
}

/// A key for a hashed value of `field`: the field and kind mixed in, then finalised so
/// every bit of the key depends on every bit of the input.
fn mix(hash: u64, field: Field, kind: Kind) -> u64 {
    let mut key = hash ^ ((field as u64) << 56) ^ ((kind as u64) << 48);
    key ^= key >> 33;
    key = key.wrapping_mul(0xff51_afd7_ed55_8ccd);
    key ^= key >> 33;
    key = key.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    key ^ (key >> 33)
}

#[cfg(test)]
mod tests;
