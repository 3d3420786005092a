//! Arbitrary bytes as rule files: compiling never panics; a set that compiles evaluates a
//! few fixed invites; a set that does not gives diagnostics that name their file first
//! and point inside it.
//!
//! A NUL byte (which TOML text cannot hold) splits the input into two files, so that
//! problems spanning files, like a rule name defined twice, are reached too.

#![no_main]

use std::path::Path;

use callscreen::rules::{self, Source};
use callscreen_fuzz::{check_diagnostic, evaluate_checked, fixed_facts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = Vec::new();
    let (first, second) = match text.split_once('\0') {
        Some((first, second)) => (first, Some(second)),
        None => (text, None),
    };
    sources.push(Source {
        path: "rules/10-first.toml".into(),
        text: first.to_owned(),
    });
    if let Some(second) = second {
        sources.push(Source {
            path: "rules/20-second.toml".into(),
            text: second.to_owned(),
        });
    }

    match rules::compile(&sources) {
        Ok(set) => {
            assert_eq!(set.rule_names().count(), set.len());
            assert_eq!(set.version().len(), 12);
            for facts in fixed_facts() {
                evaluate_checked(&set, facts);
            }
        }
        Err(diagnostics) => {
            assert!(
                !diagnostics.is_empty(),
                "a failed compile without diagnostics"
            );
            for diagnostic in &diagnostics {
                let source = sources
                    .iter()
                    .find(|source| source.path == diagnostic.path)
                    .unwrap_or_else(|| panic!("diagnostic for an unknown file: {diagnostic}"));
                check_diagnostic(
                    &diagnostic.to_string(),
                    Path::new(&source.path),
                    diagnostic.line,
                    diagnostic.col,
                    &source.text,
                );
            }
        }
    }
});
