//! Diagnostics: one problem in one rule file, shown as `path:line:col: message`.
//!
//! The compiler works on byte spans from the TOML parser; [`LineIndex`] turns them into
//! the 1-based line and column people see in their editor.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found while reading or compiling rule files.
///
/// `line` and `col` are 1-based; both are 0 when the problem has no position (an unreadable
/// file, a missing folder). Columns count characters, not bytes, so they match what an
/// editor shows for non-ASCII text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(path: &Path, (line, col): (usize, usize), message: String) -> Diagnostic {
        Diagnostic {
            path: path.to_path_buf(),
            line,
            col,
            message,
        }
    }

    pub(crate) fn without_position(path: &Path, message: String) -> Diagnostic {
        Diagnostic::new(path, (0, 0), message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

/// Something legal but probably not meant: a rule that can never match or never decide, a
/// list nobody uses. Shown as `path:line:col: warning: message`; it never stops a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Warning {
    pub(crate) fn new(path: &Path, (line, col): (usize, usize), message: String) -> Warning {
        Warning {
            path: path.to_path_buf(),
            line,
            col,
            message,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Maps byte offsets of one text to line and column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset where each line starts; the first is always 0. `u32` halves the index
    /// of a large folder; a file of 4 GiB or more gets no line numbers past that.
    starts: Vec<u32>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        let ends = text.match_indices('\n').map(|(at, _)| at + 1);
        starts.extend(ends.map_while(|start| u32::try_from(start).ok()));
        LineIndex { text, starts }
    }

    /// The 1-based line and column of a byte offset. Offsets past the end (the parser
    /// reports "unexpected end of input" there) or inside a character are pulled back to
    /// the nearest character start rather than trusted.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .starts
            .partition_point(|&start| start as usize <= offset);
        let start = self.starts[line - 1] as usize;
        let col = self.text[start..offset].chars().count() + 1;
        (line, col)
    }

    pub(crate) fn span_start(&self, span: &Range<usize>) -> (usize, usize) {
        self.position(span.start)
    }
}

/// The candidate closest to `input`, when it is close enough to be a plausible typo.
pub(crate) fn suggest<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let mut best: Option<(&str, f64)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(input, candidate);
        if best.is_none_or(|(_, best_score)| score > best_score) {
            best = Some((candidate, score));
        }
    }
    // Below this, suggestions stop looking like typos and start looking like guesses.
    best.filter(|&(_, score)| score >= 0.8)
        .map(|(candidate, _)| candidate)
}

/// ` (did you mean "x"?)` when a close candidate exists, else nothing.
pub(crate) fn did_you_mean<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    match suggest(input, candidates) {
        Some(candidate) => format!(" (did you mean \"{candidate}\"?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_position() {
        let with = Diagnostic::new(Path::new("rules/a.toml"), (3, 8), "bad".into());
        assert_eq!(with.to_string(), "rules/a.toml:3:8: bad");
        let without = Diagnostic::without_position(Path::new("rules"), "no such folder".into());
        assert_eq!(without.to_string(), "rules: no such folder");
        let warning = Warning::new(Path::new("rules/a.toml"), (2, 1), "odd".into());
        assert_eq!(warning.to_string(), "rules/a.toml:2:1: warning: odd");
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let index = LineIndex::new("ab\nçé = 1\r\nx");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(1), (1, 2));
        assert_eq!(index.position(3), (2, 1));
        // "çé" is four bytes but two columns.
        assert_eq!(index.position(7), (2, 3));
        // Inside "ç": pulled back to its start.
        assert_eq!(index.position(4), (2, 1));
        assert_eq!(index.position(13), (3, 1));
        assert_eq!(index.position(999), (3, 2));
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let names = ["caller.name", "caller.kind", "tenant"];
        assert_eq!(suggest("caller.nmae", names), Some("caller.name"));
        assert_eq!(suggest("tennant", names), Some("tenant"));
        assert_eq!(suggest("zzz", names), None);
        assert_eq!(did_you_mean("zzz", names), "");
    }
}
