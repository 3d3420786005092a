//! Rule files to a [`RuleSet`]: parse each file with spans kept, check every key and value,
//! and either return the compiled set or every problem found, as `file:line:col: message`.
//!
//! Conditions (`[rule.when]`) are compiled in `when.rs`, lists in `lists.rs`; this file
//! handles files, folders, the rule table itself and the rule set's version.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{LineIndex, Warning, did_you_mean};
use super::index::Index;
use super::lists::Lists;
use super::matcher::{Condition, Rule, RuleLocation, RuleSet};
use super::rate::RateCounter;
use super::redirect::{REDIRECT_KEYS, RedirectDraft};
use super::when::Scope;
use super::{Action, Decision, Diagnostic, Reason, RuleMode, Source};

/// Keys allowed at the top of a rule file. `test` tables belong to the rule-test runner,
/// which reads them itself; the daemon never looks at them.
const TOP_LEVEL_KEYS: &[&str] = &["rule", "lists", "test"];

const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "action",
    "reason",
    "callback_uri",
    "enabled",
    "mode",
    "when",
    "targets",
    "timeout",
    "mask_callee",
    "mask_caller",
];

const ACTIONS: &[(&str, Action)] = &[
    ("reject", Action::Reject),
    ("allow", Action::Allow),
    ("redirect", Action::Redirect),
    ("ignore", Action::Ignore),
];
const REASONS: &[(&str, Reason)] = &[
    ("none", Reason::None),
    ("busy", Reason::Busy),
    ("forbidden", Reason::Forbidden),
];
const MODES: &[(&str, RuleMode)] = &[("enforce", RuleMode::Enforce), ("audit", RuleMode::Audit)];

/// Compiles rule files in the order given (callers sort them; [`load_dir`] sorts by name).
///
/// A source whose name ends in `.list` is a list file (one value a line); every other
/// source is a TOML rule file. Every file is checked even after an error, so the result
/// lists all problems at once. A file with TOML syntax errors reports only those: its
/// half-parsed content would mostly produce misleading follow-up errors. Warnings (rules
/// that can never match or never decide, unused lists) do not fail the compilation; they
/// are in [`RuleSet::warnings`].
pub fn compile(sources: &[Source]) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut set = compile_unindexed(sources.iter().map(Cow::Borrowed).collect())?;
    set.index = Index::build(&set.rules);
    Ok(set)
}

/// [`compile`] without building the index, which its caller must add. Owned sources are
/// freed as soon as their rules are compiled, unless they define lists (which borrow
/// their text): a large folder's text is as large as its compiled rules.
fn compile_unindexed(sources: Vec<Cow<'_, Source>>) -> Result<RuleSet, Vec<Diagnostic>> {
    let version = version_of(sources.iter().map(|source| &**source));
    // Room for every rule up front: growing a vector of 100,000 rules by doubling holds
    // the old and the new one at once, and leaves up to half of it unused.
    let expected = sources
        .iter()
        .map(|source| source.text.matches("[[rule]]").count())
        .sum();

    // Lists first: a rule may use a list defined in any file. Files that can define one
    // are kept whole until the end; the others are compiled one by one further down.
    let (kept, mut streamed): (Vec<_>, Vec<_>) = sources
        .into_iter()
        .enumerate()
        .partition(|(_, source)| is_list_source(&source.path) || may_define_lists(&source.text));
    let mut kept_files: Vec<FileCx<'_>> =
        kept.iter().map(|(_, source)| FileCx::new(source)).collect();
    let mut lists = Lists::default();
    let mut broken = vec![false; kept.len()];
    for (slot, ((at, source), file)) in kept.iter().zip(&mut kept_files).enumerate() {
        if is_list_source(&source.path) {
            lists.add_file(file, *at, &source.text);
            continue;
        }
        // Each parsed document is dropped as soon as it has been read: a large folder's
        // documents together take many times its text's size.
        match parse(file, &source.text) {
            Some(document) => lists.add_table(file, *at, document.get_ref()),
            None => broken[slot] = true,
        }
    }

    let mut compiler = Compiler {
        rules: Vec::with_capacity(expected),
        names: HashMap::new(),
        paths: Vec::new(),
        lists: &lists,
        rates: Vec::new(),
    };
    let mut diagnostics: Vec<(usize, Diagnostic)> = Vec::new();
    let mut warnings: Vec<(usize, Warning)> = Vec::new();
    let mut streamed = streamed.drain(..).peekable();
    for (slot, (at, source)) in kept.iter().enumerate() {
        // The files before this one, which define no lists.
        while let Some((at, source)) = streamed.next_if(|(other, _)| other < at) {
            compiler.file(at, &source, &mut diagnostics, &mut warnings);
        }
        if is_list_source(&source.path) || broken[slot] {
            continue;
        }
        if let Some(document) = parse(&mut kept_files[slot], &source.text) {
            compiler.document(&mut kept_files[slot], document.get_ref());
        }
    }
    for (at, source) in streamed {
        compiler.file(at, &source, &mut diagnostics, &mut warnings);
    }
    // The names are only needed while compiling; drop them before the index is built.
    let Compiler {
        mut rules,
        rates,
        names,
        paths,
        ..
    } = compiler;
    drop((names, paths));
    rules.shrink_to_fit();
    for (at, line, name) in lists.unused() {
        let message = format!("list {name:?} is not used by any rule");
        let Some(slot) = kept.iter().position(|(kept_at, _)| *kept_at == at) else {
            continue;
        };
        let warning = Warning::new(kept_files[slot].path, (line, 1), message);
        kept_files[slot].warnings.push(warning);
    }

    diagnostics.extend(lists.late.take());
    for ((at, _), file) in kept.iter().zip(kept_files) {
        diagnostics.extend(
            file.diagnostics
                .into_iter()
                .map(|diagnostic| (*at, diagnostic)),
        );
        warnings.extend(file.warnings.into_iter().map(|warning| (*at, warning)));
    }
    if !diagnostics.is_empty() {
        diagnostics.sort_by_key(|(at, diagnostic)| (*at, diagnostic.line, diagnostic.col));
        return Err(diagnostics
            .into_iter()
            .map(|(_, diagnostic)| diagnostic)
            .collect());
    }
    warnings.sort_by_key(|(at, warning)| (*at, warning.line, warning.col));
    let mut warnings: Vec<Warning> = warnings.into_iter().map(|(_, warning)| warning).collect();
    warnings.extend(super::warn::rule_warnings(&rules));
    Ok(RuleSet {
        rules,
        version,
        rates,
        warnings,
        index: Index::default(),
    })
}

fn is_list_source(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "list")
}

/// Whether a rule file's text could hold a `[lists]` table: its key is written `lists`
/// somewhere, or may be spelled with an escape in a quoted key.
fn may_define_lists(text: &str) -> bool {
    text.contains("lists") || text.contains("\\u") || text.contains("\\U")
}

/// Parses a rule file; `None`, with every syntax error recorded in `file`, when it has
/// errors. A file with errors reports only those: its half-parsed content would mostly
/// produce misleading follow-up errors.
fn parse<'s>(file: &mut FileCx<'_>, text: &'s str) -> Option<Spanned<DeTable<'s>>> {
    let (document, errors) = DeTable::parse_recoverable(text);
    if errors.is_empty() {
        return Some(document);
    }
    for error in errors {
        let span = error.span().unwrap_or(0..0);
        file.error(span, condense(error.message()));
    }
    None
}

/// Reads and compiles the `*.toml` rule files and `*.list` list files directly in `dir`, in
/// byte order of their names.
///
/// Names starting with `.` (editor and VCS leftovers) and names ending in `.test.toml`
/// (rule tests) are skipped. A missing or unreadable folder, or an unreadable file, is a
/// diagnostic without a position; an empty folder gives an empty rule set, which allows
/// every call.
pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<Diagnostic>> {
    let (sources, diagnostics) = read_dir_sources(dir)?;
    compile_read(sources, diagnostics)
}

/// [`load_dir`] for a reload: `Ok(None)` when the folder's files are exactly those of the
/// rule set with version `current`, which is then kept without compiling anything. A
/// no-op reload (logrotate's daily SIGHUP, an editor saving unchanged text) would otherwise
/// hold two copies of a large rule set at once for nothing.
pub fn load_dir_if_changed(dir: &Path, current: &str) -> Result<Option<RuleSet>, Vec<Diagnostic>> {
    let (sources, diagnostics) = read_dir_sources(dir)?;
    if diagnostics.is_empty() && version_of(&sources) == current {
        return Ok(None);
    }
    compile_read(sources, diagnostics).map(Some)
}

/// The rule and list files of `dir`, read, with a diagnostic for each that could not be.
fn read_dir_sources(dir: &Path) -> Result<(Vec<Source>, Vec<Diagnostic>), Vec<Diagnostic>> {
    let entries = fs::read_dir(dir).map_err(|err| {
        let message = format!("cannot read rules folder: {}", io_message(&err));
        vec![Diagnostic::without_position(dir, message)]
    })?;

    let mut diagnostics = Vec::new();
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) if is_rule_file_name(&entry.file_name()) => names.push(entry.file_name()),
            Ok(_) => {}
            Err(err) => {
                let message = format!("cannot read rules folder: {}", io_message(&err));
                diagnostics.push(Diagnostic::without_position(dir, message));
            }
        }
    }
    names.sort();

    let mut sources = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(name);
        // `metadata` follows symlinks, so a folder of links to rule files works; a name
        // like `old.toml/` that is a folder is not a rule file and is passed over.
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => continue,
            _ => {}
        }
        match fs::read_to_string(&path) {
            Ok(text) => sources.push(Source { path, text }),
            Err(err) => {
                let message = format!("cannot read rule file: {}", io_message(&err));
                diagnostics.push(Diagnostic::without_position(&path, message));
            }
        }
    }

    Ok((sources, diagnostics))
}

/// Compiles what [`read_dir_sources`] read; fails with its diagnostics too.
fn compile_read(
    sources: Vec<Source>,
    mut diagnostics: Vec<Diagnostic>,
) -> Result<RuleSet, Vec<Diagnostic>> {
    match compile_unindexed(sources.into_iter().map(Cow::Owned).collect()) {
        Ok(mut set) if diagnostics.is_empty() => {
            set.index = Index::build(&set.rules);
            Ok(set)
        }
        Ok(_) => Err(diagnostics),
        Err(more) => {
            diagnostics.extend(more);
            Err(diagnostics)
        }
    }
}

fn is_rule_file_name(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    !name.starts_with('.')
        && (name.ends_with(".toml") && !name.ends_with(".test.toml") || name.ends_with(".list"))
}

/// An I/O error in the lowercase, one-line form diagnostics use.
fn io_message(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::InvalidData {
        return "not valid UTF-8 text".to_owned();
    }
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    lowercase_first(text)
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The first 12 hex digits of SHA-256 over each source's file name, a NUL, the length of
/// its text (8 bytes, little-endian) and its text.
///
/// Only the file name counts, not the folder, so the same rules deployed at different
/// paths share a version.
pub(crate) fn version_of<'a>(sources: impl IntoIterator<Item = &'a Source>) -> String {
    let mut hasher = Sha256::new();
    for source in sources {
        let name = source.path.file_name().unwrap_or(source.path.as_os_str());
        // A file name holds no NUL, so the NUL ends it; the text's length ends the text.
        // Without it, the end of one file's text and the start of the next file's name
        // could trade bytes and give two different folders one version.
        hasher.update(name.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((source.text.len() as u64).to_le_bytes());
        hasher.update(source.text.as_bytes());
    }
    let mut version = hex::encode(hasher.finalize());
    version.truncate(12);
    version
}

/// Where a rule name was first defined, for the duplicate-name message: an index into
/// [`Compiler::paths`] and a line. Small, since a large set has one per rule.
struct FirstDefinition {
    file: u32,
    line: u32,
}

struct Compiler<'c, 's> {
    rules: Vec<Rule>,
    names: HashMap<Arc<str>, FirstDefinition>,
    /// The rule files compiled so far, in order.
    paths: Vec<Arc<Path>>,
    lists: &'c Lists<'s>,
    rates: Vec<Arc<RateCounter>>,
}

/// One file being compiled: its path, positions and the problems found in it so far.
pub(crate) struct FileCx<'s> {
    path: &'s Path,
    shared_path: Arc<Path>,
    index: LineIndex<'s>,
    diagnostics: Vec<Diagnostic>,
    warnings: Vec<Warning>,
}

impl<'s> FileCx<'s> {
    pub(crate) fn new(source: &'s Source) -> FileCx<'s> {
        FileCx::for_text(&source.path, &source.text)
    }

    pub(crate) fn for_text(path: &'s Path, text: &'s str) -> FileCx<'s> {
        FileCx {
            path,
            shared_path: Arc::from(path),
            index: LineIndex::new(text),
            diagnostics: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn path(&self) -> &'s Path {
        self.path
    }

    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        self.index.position(offset)
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: String) {
        let position = self.index.span_start(&span);
        self.diagnostics
            .push(Diagnostic::new(self.path, position, message));
    }

    pub(crate) fn warning(&mut self, span: Range<usize>, message: String) {
        let position = self.index.span_start(&span);
        self.warnings
            .push(Warning::new(self.path, position, message));
    }

    pub(crate) fn error_count(&self) -> usize {
        self.diagnostics.len()
    }
}

/// A table's entries in source order; the parser's map is sorted by key, and diagnostics
/// and condition order should follow the file.
pub(crate) type Entry<'a, 'i> = (&'a Spanned<Cow<'i, str>>, &'a Spanned<DeValue<'i>>);

pub(crate) fn entries<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// `string "x"` for strings (the offending value, quoted), the TOML type name otherwise.
pub(crate) fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(text) => format!("string {text:?}"),
        other => other.type_str().to_owned(),
    }
}

/// The TOML parser's message on one line.
fn condense(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Compiler<'_, '_> {
    /// Compiles rule file number `at`, which defines no lists, and hands its problems over
    /// so nothing of it outlives this call.
    fn file(
        &mut self,
        at: usize,
        source: &Source,
        diagnostics: &mut Vec<(usize, Diagnostic)>,
        warnings: &mut Vec<(usize, Warning)>,
    ) {
        let mut file = FileCx::new(source);
        if let Some(document) = parse(&mut file, &source.text) {
            self.document(&mut file, document.get_ref());
        }
        diagnostics.extend(file.diagnostics.into_iter().map(|found| (at, found)));
        warnings.extend(file.warnings.into_iter().map(|found| (at, found)));
    }

    fn document(&mut self, file: &mut FileCx<'_>, document: &DeTable<'_>) {
        self.paths.push(file.shared_path.clone());
        for (key, value) in entries(document) {
            match key.get_ref().as_ref() {
                // Read before any rule (lists) or by the rule-test runner (test).
                "lists" | "test" => {}
                "rule" => match value.get_ref() {
                    DeValue::Array(items) => {
                        for item in items.iter() {
                            match item.get_ref() {
                                DeValue::Table(table) => self.rule(file, item.span(), table),
                                other => file.error(
                                    item.span(),
                                    format!("each rule must be a table, found {}", describe(other)),
                                ),
                            }
                        }
                    }
                    DeValue::Table(_) => file.error(
                        key.span(),
                        "\"rule\" must be an array of tables: write [[rule]], not [rule]".into(),
                    ),
                    other => file.error(
                        value.span(),
                        format!(
                            "\"rule\" must be an array of tables ([[rule]]), found {}",
                            describe(other)
                        ),
                    ),
                },
                other => file.error(
                    key.span(),
                    format!(
                        "unknown top-level key {other:?}{}",
                        did_you_mean(other, TOP_LEVEL_KEYS.iter().copied())
                    ),
                ),
            }
        }
    }

    fn rule(&mut self, file: &mut FileCx<'_>, header: Range<usize>, table: &DeTable<'_>) {
        let errors_before = file.error_count();

        // The name comes first, whatever its place in the table, so that messages about
        // the other keys can name the rule.
        let name = table.get("name").and_then(|value| self.name(file, value));
        let label = name.as_deref().unwrap_or("<unnamed>");

        let mut action = None;
        let mut reason = None;
        let mut callback_uri = None;
        let mut enabled = true;
        let mut mode = RuleMode::Enforce;
        let mut condition = Some(Condition::All(Vec::new()));
        let mut description: Option<&str> = None;
        let mut redirect = RedirectDraft::default();
        let rates_before = self.rates.len();
        let mut scope = Scope {
            lists: self.lists,
            rates: &mut self.rates,
            // Read ahead: rate conditions need it, and `enabled` may come after `when`.
            enabled: table
                .get("enabled")
                .and_then(|value| value.get_ref().as_bool())
                .unwrap_or(true),
            rate_ordinal: 0,
        };
        for (key, value) in entries(table) {
            match key.get_ref().as_ref() {
                "name" => {}
                "description" => {
                    description = expect_str(file, "description", value);
                }
                "action" => {
                    action = choice(file, "action", value, ACTIONS);
                }
                "reason" => {
                    reason = choice(file, "reason", value, REASONS)
                        .map(|reason| (reason, key.span(), value.get_ref().as_str().unwrap_or("")));
                }
                "callback_uri" => {
                    callback_uri = callback(file, value).map(|uri| (uri, key.span()));
                }
                "enabled" => match value.get_ref() {
                    DeValue::Boolean(flag) => enabled = *flag,
                    other => file.error(
                        value.span(),
                        format!(
                            "\"enabled\" must be true or false, found {}",
                            describe(other)
                        ),
                    ),
                },
                "mode" => {
                    mode = choice(file, "mode", value, MODES).unwrap_or(mode);
                }
                key_name if REDIRECT_KEYS.contains(&key_name) => redirect.read(file, key, value),
                "when" => match value.get_ref() {
                    DeValue::Table(when) => {
                        condition = super::when::compile_when(file, label, when, &mut scope);
                    }
                    other => file.error(
                        value.span(),
                        format!(
                            "\"when\" must be a table of conditions, found {}",
                            describe(other)
                        ),
                    ),
                },
                other => file.error(
                    key.span(),
                    format!(
                        "unknown rule key {other:?}{}",
                        did_you_mean(other, RULE_KEYS.iter().copied())
                    ),
                ),
            }
        }

        if !table.contains_key("name") {
            file.error(header.clone(), "rule is missing \"name\"".into());
        }
        if !table.contains_key("action") {
            let rule = match &name {
                Some(name) => format!("rule {name:?}"),
                None => "rule".to_owned(),
            };
            let message = format!("{rule} is missing \"action\" (reject, allow, redirect, ignore)");
            file.error(header.clone(), message);
        }
        let action_name = match action {
            Some(Action::Allow) => "an allow",
            Some(Action::Ignore) => "an ignore",
            Some(Action::Reject) => "a reject",
            Some(Action::Redirect) | None => "a redirect",
        };
        if let (Some(action), Some((_, span, text))) = (action, &reason)
            && action != Action::Reject
        {
            let message =
                format!("reason {text:?} on {action_name} rule (only reject rules have one)");
            file.error(span.clone(), message);
        }
        if let (Some(Action::Allow | Action::Ignore), Some((uri, span))) = (action, &callback_uri) {
            let message = format!(
                "callback_uri {uri:?} on {action_name} rule \
                 (only reject and redirect rules use one)"
            );
            file.error(span.clone(), message);
        }
        if action.is_some_and(|action| action != Action::Redirect)
            && let Some(span) = redirect.first_key.clone()
        {
            let message = format!("{action_name} rule has redirect options (targets, timeout…)");
            file.error(span, message);
        }
        if action == Some(Action::Redirect) && !table.contains_key("targets") {
            file.error(
                header.clone(),
                format!("redirect rule {label:?} has no \"targets\""),
            );
        }

        let compiled = match (name, action, condition) {
            (Some(name), Some(action), Some(condition)) if file.error_count() == errors_before => {
                Some((name, action, condition))
            }
            _ => None,
        };
        let Some((name, action, condition)) = compiled else {
            // The rule is dropped, and so are the counters its conditions created.
            self.rates.truncate(rates_before);
            return;
        };
        let decision = Decision {
            action,
            rule: Some(name.clone()),
            reason: reason.map_or(Reason::None, |(reason, _, _)| reason),
            callback_uri: callback_uri.map(|(uri, _)| uri),
            mode,
            redirect: redirect.finish().map(Arc::new),
            shadow: None,
        };
        let (line, col) = file.index.span_start(&header);
        let location = RuleLocation {
            path: file.shared_path.clone(),
            line,
            col,
        };
        let fingerprint = {
            let mut hasher = DefaultHasher::new();
            format!("{description:?} {enabled} {decision:?} {condition:?}").hash(&mut hasher);
            hasher.finish()
        };
        self.rules.push(Rule {
            enabled,
            condition,
            decision,
            location,
            fingerprint,
        });
    }

    /// Checks a rule's name and claims it; `None` when it is unusable.
    fn name(&mut self, file: &mut FileCx<'_>, value: &Spanned<DeValue<'_>>) -> Option<Arc<str>> {
        let name = expect_str(file, "name", value)?;
        if name.trim().is_empty() {
            file.error(value.span(), "\"name\" must not be empty".into());
            return None;
        }
        let name: Arc<str> = Arc::from(name);
        let (line, _) = file.index.span_start(&value.span());
        match self.names.get(&name) {
            Some(first) => {
                let message = format!(
                    "duplicate rule name {name:?} (first defined at {}:{})",
                    self.paths[first.file as usize].display(),
                    first.line
                );
                file.error(value.span(), message);
                None
            }
            None => {
                let first = FirstDefinition {
                    file: (self.paths.len() - 1) as u32,
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                };
                self.names.insert(name.clone(), first);
                Some(name)
            }
        }
    }
}

fn expect_str<'v>(
    file: &mut FileCx<'_>,
    key: &str,
    value: &'v Spanned<DeValue<'_>>,
) -> Option<&'v str> {
    match value.get_ref() {
        DeValue::String(text) => Some(text),
        other => {
            let message = format!("{key:?} must be a string, found {}", describe(other));
            file.error(value.span(), message);
            None
        }
    }
}

/// One of a fixed set of words, in any case.
fn choice<T: Copy>(
    file: &mut FileCx<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    choices: &[(&str, T)],
) -> Option<T> {
    let text = expect_str(file, key, value)?;
    if let Some((_, found)) = choices
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(text))
    {
        return Some(*found);
    }
    let words = choices.iter().map(|(word, _)| *word);
    let hint = match did_you_mean(&text.to_lowercase(), words.clone()) {
        hint if !hint.is_empty() => hint,
        _ => {
            let listed: Vec<String> = words.map(|word| format!("{word:?}")).collect();
            format!(" (expected {})", listed.join(", "))
        }
    };
    file.error(value.span(), format!("unknown {key} {text:?}{hint}"));
    None
}

/// A callback URI Graph can reach: absolute, `https`, with a host.
fn callback(file: &mut FileCx<'_>, value: &Spanned<DeValue<'_>>) -> Option<Arc<str>> {
    let text = expect_str(file, "callback_uri", value)?;
    let problem = match url::Url::parse(text) {
        Err(err) => Some(format!("invalid callback_uri {text:?}: {err}")),
        Ok(url) if url.scheme() != "https" => Some(format!("callback_uri {text:?} must use https")),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            Some(format!("callback_uri {text:?} has no host"))
        }
        Ok(_) => None,
    };
    match problem {
        Some(message) => {
            file.error(value.span(), message);
            None
        }
        None => Some(Arc::from(text.trim())),
    }
}

#[cfg(test)]
mod tests;
