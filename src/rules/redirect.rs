//! `action = "redirect"`: where a routed call goes, and Graph's redirect options, checked
//! when the rules compile so a bad target never reaches Graph.

use toml::Spanned;
use toml::de::DeValue;

use super::compile::{FileCx, describe, entries};
use super::diag::did_you_mean;
use crate::facts::normalize_phone;

/// Graph rings at most this many targets at once.
const MAX_TARGETS: usize = 25;
/// Graph's accepted ring timeout for a redirect, in seconds.
const TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 15..=90;

/// The rule keys that belong to redirect rules.
pub(crate) const REDIRECT_KEYS: &[&str] = &["targets", "timeout", "mask_callee", "mask_caller"];

const TARGET_KINDS: &[&str] = &["user", "phone", "application_instance"];

/// Where and how a redirect rule routes the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub targets: Vec<RedirectTarget>,
    /// Seconds the targets ring, 15 to 90; Graph's default when absent.
    pub timeout: Option<u32>,
    pub mask_callee: Option<bool>,
    pub mask_caller: Option<bool>,
}

/// One redirect target, by the identity Graph needs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectTarget {
    /// A Teams user, by Entra object id.
    User(String),
    /// A phone number, in E.164 form.
    Phone(String),
    /// A resource account (call queue, auto attendant, another bot's number).
    ApplicationInstance(String),
}

/// The redirect keys of one rule as they are read, before the rule is complete.
#[derive(Debug, Default)]
pub(crate) struct RedirectDraft {
    pub targets: Option<Vec<RedirectTarget>>,
    pub timeout: Option<u32>,
    pub mask_callee: Option<bool>,
    pub mask_caller: Option<bool>,
    /// Where the first redirect key was written, for errors on non-redirect rules.
    pub first_key: Option<std::ops::Range<usize>>,
}

impl RedirectDraft {
    /// Reads one of [`REDIRECT_KEYS`].
    pub(crate) fn read(
        &mut self,
        file: &mut FileCx<'_>,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
    ) {
        self.first_key.get_or_insert(key.span());
        match key.get_ref().as_ref() {
            "targets" => self.targets = targets(file, value),
            "timeout" => self.timeout = timeout(file, value),
            "mask_callee" => self.mask_callee = flag(file, "mask_callee", value),
            "mask_caller" => self.mask_caller = flag(file, "mask_caller", value),
            _ => unreachable!("only redirect keys are passed here"),
        }
    }

    pub(crate) fn finish(self) -> Option<Redirect> {
        Some(Redirect {
            targets: self.targets?,
            timeout: self.timeout,
            mask_callee: self.mask_callee,
            mask_caller: self.mask_caller,
        })
    }
}

fn targets(file: &mut FileCx<'_>, value: &Spanned<DeValue<'_>>) -> Option<Vec<RedirectTarget>> {
    let DeValue::Array(items) = value.get_ref() else {
        let message = format!(
            "\"targets\" must be a list of tables such as [{{ user = \"…\" }}, \
             {{ phone = \"+1…\" }}], found {}",
            describe(value.get_ref())
        );
        file.error(value.span(), message);
        return None;
    };
    if items.is_empty() || items.len() > MAX_TARGETS {
        let message = format!("\"targets\" must hold 1 to {MAX_TARGETS} targets");
        file.error(value.span(), message);
        return None;
    }
    let mut parsed = Vec::with_capacity(items.len());
    let mut broken = false;
    for item in items.iter() {
        match target(file, item) {
            Some(target) => parsed.push(target),
            None => broken = true,
        }
    }
    (!broken).then_some(parsed)
}

fn target(file: &mut FileCx<'_>, item: &Spanned<DeValue<'_>>) -> Option<RedirectTarget> {
    let DeValue::Table(table) = item.get_ref() else {
        let message = format!(
            "a redirect target is a table such as {{ phone = \"+15550100\" }}, found {}",
            describe(item.get_ref())
        );
        file.error(item.span(), message);
        return None;
    };
    let pairs = entries(table);
    let [(kind, id)] = pairs.as_slice() else {
        let message = "a target names one of user, phone, application_instance";
        file.error(item.span(), message.into());
        return None;
    };
    let Some(text) = id
        .get_ref()
        .as_str()
        .map(str::trim)
        .filter(|text| !text.is_empty())
    else {
        file.error(
            id.span(),
            "a redirect target's id must be a non-empty string".into(),
        );
        return None;
    };
    match kind.get_ref().as_ref() {
        "user" => Some(RedirectTarget::User(text.to_owned())),
        "application_instance" => Some(RedirectTarget::ApplicationInstance(text.to_owned())),
        "phone" => match normalize_phone(text).filter(|number| number.starts_with('+')) {
            Some(number) => Some(RedirectTarget::Phone(number)),
            None => {
                let message = format!("redirect phone {text:?} is not an E.164 number (+…)");
                file.error(id.span(), message);
                None
            }
        },
        other => {
            let hint = did_you_mean(other, TARGET_KINDS.iter().copied());
            let message = format!("unknown redirect target kind {other:?}{hint}");
            file.error(kind.span(), message);
            None
        }
    }
}

fn timeout(file: &mut FileCx<'_>, value: &Spanned<DeValue<'_>>) -> Option<u32> {
    let seconds = match value.get_ref() {
        DeValue::Integer(number) => {
            i64::from_str_radix(&number.as_str().replace('_', ""), number.radix()).ok()
        }
        _ => None,
    };
    match seconds {
        Some(seconds) if TIMEOUT_RANGE.contains(&seconds) => Some(seconds as u32),
        _ => {
            let message = format!(
                "\"timeout\" must be a whole number of seconds from {} to {}",
                TIMEOUT_RANGE.start(),
                TIMEOUT_RANGE.end()
            );
            file.error(value.span(), message);
            None
        }
    }
}

fn flag(file: &mut FileCx<'_>, key: &str, value: &Spanned<DeValue<'_>>) -> Option<bool> {
    match value.get_ref() {
        DeValue::Boolean(flag) => Some(*flag),
        other => {
            let message = format!("{key:?} must be true or false, found {}", describe(other));
            file.error(value.span(), message);
            None
        }
    }
}
