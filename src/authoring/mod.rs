//! Tools for people who write rules, behind the `test`, `explain` and `replay` commands:
//! rule tests kept beside the rules ([`cases`]), a rule-by-rule account of one decision
//! ([`explain`]), and the decisions an audit log would get from other rules ([`replay`]).

pub mod cases;
pub mod explain;
pub mod replay;

/// An I/O error in the lowercase, one-line form diagnostics use.
pub(crate) fn io_message(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = text.find(" (os error").map_or(&*text, |at| &text[..at]);
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}
