//! Named lists of values: `[lists]` tables in rule files and `NAME.list` files in the rules
//! folder, used by the `{ in_list = "NAME" }` condition.
//!
//! Lists are gathered from every file before any rule is compiled, so a rule may use a list
//! defined in a later file. Each list is turned into a hash set once per form it is used in
//! (case-folded text, or E.164 phone numbers), and shared by every condition using it.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::compile::{FileCx, describe, entries};
use super::diag::Diagnostic;
use super::matcher::with_folded;
use crate::facts::normalize_phone;

/// The values of one list in the form a condition compares them: case-folded text, or
/// E.164 numbers for phone fields.
pub(crate) struct ValueSet {
    pub(crate) name: Arc<str>,
    values: HashSet<Box<str>>,
    /// Identifies the list's contents, so a reload can tell a changed list from an edit
    /// elsewhere in its file.
    digest: u64,
}

impl ValueSet {
    /// Whether the fact is in the list. Facts are folded on the stack, so an ASCII fact of
    /// ordinary length costs one hash lookup and no allocation.
    pub(crate) fn contains(&self, fact: &str) -> bool {
        with_folded(fact, |folded| self.values.contains(folded))
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The values, in the form facts are compared with.
    pub(crate) fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|value| &**value)
    }
}

impl fmt::Debug for ValueSet {
    // Lists can hold millions of values; name, size and digest identify one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "list {:?} ({} values, {:016x})",
            self.name,
            self.values.len(),
            self.digest
        )
    }
}

/// One value as written, with its 1-based position for error messages.
struct ListValue<'s> {
    text: Cow<'s, str>,
    line: usize,
    col: usize,
}

/// A list as defined, before it is put in the form a condition needs.
pub(crate) struct ListDef<'s> {
    name: Arc<str>,
    /// The source the list came from, to file late diagnostics under it.
    file: usize,
    path: &'s Path,
    line: usize,
    values: Vec<ListValue<'s>>,
    text: OnceCell<Arc<ValueSet>>,
    digest: OnceCell<u64>,
    /// `None` inside: some value is no phone number (already reported).
    phone: OnceCell<Option<Arc<ValueSet>>>,
    pub(crate) used: Cell<bool>,
}

/// Every list of one compilation, by name.
#[derive(Default)]
pub(crate) struct Lists<'s> {
    defs: HashMap<Arc<str>, ListDef<'s>>,
    /// Definition order, so unused-list warnings come out in file order.
    order: Vec<Arc<str>>,
    /// Problems found while building a list's phone form: they belong to the list's own
    /// file, which may not be the file being compiled.
    pub(crate) late: RefCell<Vec<(usize, Diagnostic)>>,
}

impl<'s> Lists<'s> {
    pub(crate) fn get(&self, name: &str) -> Option<&ListDef<'s>> {
        self.defs.get(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|name| &**name)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// A `NAME.list` file: one value a line; blank lines and `#` comments are skipped, and
    /// so is anything after a `#` that follows whitespace.
    pub(crate) fn add_file(&mut self, file: &mut FileCx<'s>, at: usize, text: &'s str) {
        let path = file.path();
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default();
        let name = name.strip_suffix(".list").unwrap_or(&name).to_owned();
        let mut values = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let content = strip_comment(line);
            let value = content.trim();
            if value.is_empty() {
                continue;
            }
            let indent = content.len() - content.trim_start().len();
            values.push(ListValue {
                text: Cow::Borrowed(value),
                line: number + 1,
                col: line[..indent].chars().count() + 1,
            });
        }
        self.define(file, at, name, 0..0, values);
    }

    /// The `[lists]` table of a rule file: `name = ["value", …]`.
    pub(crate) fn add_table(&mut self, file: &mut FileCx<'s>, at: usize, document: &DeTable<'s>) {
        let Some(lists) = document.get("lists") else {
            return;
        };
        let DeValue::Table(table) = lists.get_ref() else {
            let message = format!(
                "\"lists\" must be a table of named lists ([lists] with name = [\"value\", …]), \
                 found {}",
                describe(lists.get_ref())
            );
            file.error(lists.span(), message);
            return;
        };
        for (key, value) in entries(table) {
            let name = key.get_ref().to_string();
            let DeValue::Array(items) = value.get_ref() else {
                let message = format!(
                    "list {name:?} must be an array of strings, found {}",
                    describe(value.get_ref())
                );
                file.error(value.span(), message);
                continue;
            };
            let mut values = Vec::with_capacity(items.len());
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::String(text) if !text.trim().is_empty() => {
                        let (line, col) = file.position(item.span().start);
                        let text = match text {
                            Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
                            Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
                        };
                        values.push(ListValue { text, line, col });
                    }
                    other => {
                        let message = format!(
                            "expected a non-empty string in list {name:?}, found {}",
                            describe(other)
                        );
                        file.error(item.span(), message);
                    }
                }
            }
            self.define(file, at, name, key.span(), values);
        }
    }

    fn define(
        &mut self,
        file: &mut FileCx<'s>,
        at: usize,
        name: String,
        span: std::ops::Range<usize>,
        values: Vec<ListValue<'s>>,
    ) {
        let (line, _) = file.position(span.start);
        if let Some(first) = self.defs.get(name.as_str()) {
            let message = format!(
                "duplicate list name {name:?} (first defined at {}:{})",
                first.path.display(),
                first.line.max(1)
            );
            file.error(span, message);
            return;
        }
        let name: Arc<str> = Arc::from(name);
        self.order.push(name.clone());
        self.defs.insert(
            name.clone(),
            ListDef {
                name,
                file: at,
                path: file.path(),
                line,
                values,
                text: OnceCell::new(),
                digest: OnceCell::new(),
                phone: OnceCell::new(),
                used: Cell::new(false),
            },
        );
    }

    /// `(file index, line, name)` of every list no condition used.
    pub(crate) fn unused(&self) -> impl Iterator<Item = (usize, usize, &str)> {
        self.order
            .iter()
            .filter_map(|name| self.defs.get(name))
            .filter(|def| !def.used.get())
            .map(|def| (def.file, def.line, &*def.name))
    }
}

impl ListDef<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The list as case-folded text.
    pub(crate) fn text_set(&self) -> Arc<ValueSet> {
        self.text
            .get_or_init(|| {
                let values = self
                    .values
                    .iter()
                    .map(|value| with_folded(&value.text, |folded| Box::<str>::from(folded)));
                Arc::new(self.build(values))
            })
            .clone()
    }

    /// The list as E.164 numbers, for a phone field; `None` when a value is not a phone
    /// number, each such value reported once at its own line.
    pub(crate) fn phone_set(&self, lists: &Lists<'_>, field: &str) -> Option<Arc<ValueSet>> {
        self.phone
            .get_or_init(|| {
                let mut numbers = Vec::with_capacity(self.values.len());
                let mut late = lists.late.borrow_mut();
                for value in &self.values {
                    match normalize_phone(&value.text) {
                        Some(number) => numbers.push(number.into_boxed_str()),
                        None => {
                            let message = format!(
                                "invalid phone number {:?} in list {:?} (used on {field:?})",
                                value.text, self.name
                            );
                            let position = (value.line, value.col);
                            late.push((self.file, Diagnostic::new(self.path, position, message)));
                        }
                    }
                }
                (numbers.len() == self.values.len())
                    .then(|| Arc::new(self.build(numbers.into_iter())))
            })
            .clone()
    }

    fn build(&self, values: impl Iterator<Item = Box<str>>) -> ValueSet {
        let digest = *self.digest.get_or_init(|| {
            let mut digest = DefaultHasher::new();
            for value in &self.values {
                value.text.hash(&mut digest);
            }
            digest.finish()
        });
        let mut set = HashSet::with_capacity(self.values.len());
        set.extend(values);
        ValueSet {
            name: self.name.clone(),
            values: set,
            digest,
        }
    }
}

/// A list-file line without its comment: a line starting with `#`, or a `#` after
/// whitespace, starts one.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    let bytes = line.as_bytes();
    for (at, byte) in bytes.iter().enumerate() {
        if *byte == b'#' && at > 0 && bytes[at - 1].is_ascii_whitespace() {
            return &line[..at];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_stripped_only_at_line_start_or_after_whitespace() {
        assert_eq!(strip_comment("# all comment"), "");
        assert_eq!(strip_comment("   # indented"), "");
        assert_eq!(strip_comment("+1 555 0100 # Alice"), "+1 555 0100 ");
        assert_eq!(strip_comment("a#b"), "a#b");
        assert_eq!(strip_comment("value"), "value");
    }
}
