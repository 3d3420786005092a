//! The rule language: TOML files in a folder, compiled once into a [`RuleSet`] that
//! evaluates [`Facts`] to a [`Decision`]. First matching rule wins; no match allows.
//!
//! Besides conditions on facts, rules can test named lists (`lists.rs`), time windows
//! (`time.rs`) and rates (`rate.rs`). `explain.rs` says why a set decided as it did,
//! `warn.rs` finds rules that cannot do anything, `shadow.rs` gathers evidence for rules in
//! audit mode.

mod compile;
pub(crate) mod diag;
mod explain;
mod index;
mod lists;
mod matcher;
mod rate;
mod redirect;
mod shadow;
mod time;
mod warn;
mod when;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::facts::Facts;

pub use diag::{Diagnostic, Warning};
pub use explain::{Explanation, Failure, RuleStep, StepOutcome};
pub use matcher::{RuleLocation, RuleSetDiff};
pub use rate::KEY_CAPACITY as RATE_KEY_CAPACITY;
pub use redirect::{Redirect, RedirectTarget};
pub use shadow::{ShadowRule, ShadowStats};

/// What a rule does to a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Reject,
    /// Route the call to other targets (`POST …/calls/{id}/redirect`).
    Redirect,
    /// Neither reject nor forward: nothing answers, and the caller hears ringing until
    /// Graph gives up on the invite.
    Ignore,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Reject => "reject",
            Action::Redirect => "redirect",
            Action::Ignore => "ignore",
        }
    }
}

/// The reject reason sent to Graph, in the lowercase form Graph's examples use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    #[default]
    None,
    Busy,
    Forbidden,
}

/// `enforce`: the decision is carried out. `audit`: a reject is only recorded
/// (`would_reject`), never sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMode {
    #[default]
    Enforce,
    Audit,
}

/// The outcome of evaluating one invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The name of the rule that matched; `None` when no rule matched (default allow).
    pub rule: Option<Arc<str>>,
    pub reason: Reason,
    /// The rule's `callback_uri`, if it set one.
    pub callback_uri: Option<Arc<str>>,
    pub mode: RuleMode,
    /// Targets and options of a redirect rule.
    pub redirect: Option<Arc<Redirect>>,
    /// What an audit-mode rule before the deciding rule would have done (it matched, but
    /// only enforced rules decide).
    pub shadow: Option<Arc<Decision>>,
}

impl Decision {
    /// The decision when no rule matches.
    pub fn default_allow() -> Decision {
        Decision {
            action: Action::Allow,
            rule: None,
            reason: Reason::None,
            callback_uri: None,
            mode: RuleMode::Enforce,
            redirect: None,
            shadow: None,
        }
    }
}

/// One rule file's text and the path it is reported under.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

pub use compile::{compile, load_dir, load_dir_if_changed};
pub(crate) use compile::{describe, entries};
pub use matcher::RuleSet;

#[allow(dead_code)]
fn _assert_send_sync(_: &RuleSet, _: &Path, _: &Facts) {}

#[cfg(test)]
mod tests;
