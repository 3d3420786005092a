//! Facts: what screening knows about one invite, and the names rules use for each fact.
//!
//! The notification parser fills a [`Facts`]; the rule evaluator reads it through
//! [`Facts::text`], [`Facts::flag`] and [`Facts::set`]. Nothing here does I/O.

use serde::{Deserialize, Serialize};

/// One invite, reduced to the values rules can test.
///
/// Text values are kept as Graph sent them (trimmed); case folding happens at comparison
/// time. Phone numbers (`caller.phone`, a phone `caller.id`, a phone `caller.asserted`) are
/// already in E.164 form (`+15550100`), see [`normalize_phone`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    pub call_id: String,
    pub caller: Caller,
    pub target: Target,
    pub tenant: Option<String>,
    /// `requestedModalities`, lowercased, in the order Graph sent them.
    pub modalities: Vec<String>,
    pub group: bool,
    pub meeting: Meeting,
    pub chat_thread: Option<String>,
    pub transferred: bool,
    pub on_behalf_of_id: Option<String>,
    /// `callChainId`: joins the legs of one conversation in the audit log; not a rule field.
    pub call_chain_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Caller {
    /// `user`, `onPremises`, `guest`, `phone`, `acsUser`, `applicationInstance`,
    /// `application`, `encrypted`, `device`, `anonymous` (an identity set without ids), or
    /// `unknown` (no identity set at all).
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub provider: Option<String>,
    pub phone: Option<String>,
    pub asserted: Option<String>,
    pub region: Option<String>,
    pub language: Option<String>,
    pub country: Option<String>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Target {
    pub id: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meeting {
    /// `organizer`, `joinMeetingId` or `token`.
    pub kind: Option<String>,
    pub organizer_id: Option<String>,
    pub organizer_tenant: Option<String>,
}

/// How a field is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Case-insensitive text.
    Text,
    /// Text compared in E.164 form; rule values are normalised the same way.
    Phone,
    /// A set of case-insensitive words (`modalities`).
    Set,
    /// `true` / `false`.
    Bool,
}

macro_rules! fields {
    ($($variant:ident => $name:literal, $ty:ident;)*) => {
        /// A fact a rule can test, named as in rule files (`caller.kind`, `modalities`, ...).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field {
            $($variant,)*
        }

        impl Field {
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];

            /// The name used in rule files.
            pub fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)*
                }
            }

            pub fn field_type(self) -> FieldType {
                match self {
                    $(Field::$variant => FieldType::$ty,)*
                }
            }

            pub fn from_name(name: &str) -> Option<Field> {
                match name {
                    $($name => Some(Field::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

fields! {
    CallerKind => "caller.kind", Text;
    CallerId => "caller.id", Text;
    CallerName => "caller.name", Text;
    CallerTenant => "caller.tenant", Text;
    CallerProvider => "caller.provider", Text;
    CallerPhone => "caller.phone", Phone;
    CallerAsserted => "caller.asserted", Text;
    CallerRegion => "caller.region", Text;
    CallerLanguage => "caller.language", Text;
    CallerCountry => "caller.country", Text;
    CallerEndpoint => "caller.endpoint", Text;
    TargetId => "target.id", Text;
    TargetKind => "target.kind", Text;
    Tenant => "tenant", Text;
    Modalities => "modalities", Set;
    Group => "group", Bool;
    MeetingKind => "meeting.kind", Text;
    MeetingOrganizerId => "meeting.organizer.id", Text;
    MeetingOrganizerTenant => "meeting.organizer.tenant", Text;
    ChatThread => "chat.thread", Text;
    Transferred => "transferred", Bool;
    OnBehalfOfId => "on_behalf_of.id", Text;
}

impl Facts {
    /// The value of a text or phone field; `None` when the invite lacks it (or for set and
    /// boolean fields).
    pub fn text(&self, field: Field) -> Option<&str> {
        let value = match field {
            Field::CallerKind => return Some(self.caller.kind.as_str()),
            Field::CallerId => &self.caller.id,
            Field::CallerName => &self.caller.name,
            Field::CallerTenant => &self.caller.tenant,
            Field::CallerProvider => &self.caller.provider,
            Field::CallerPhone => &self.caller.phone,
            Field::CallerAsserted => &self.caller.asserted,
            Field::CallerRegion => &self.caller.region,
            Field::CallerLanguage => &self.caller.language,
            Field::CallerCountry => &self.caller.country,
            Field::CallerEndpoint => &self.caller.endpoint,
            Field::TargetId => &self.target.id,
            Field::TargetKind => &self.target.kind,
            Field::Tenant => &self.tenant,
            Field::MeetingKind => &self.meeting.kind,
            Field::MeetingOrganizerId => &self.meeting.organizer_id,
            Field::MeetingOrganizerTenant => &self.meeting.organizer_tenant,
            Field::ChatThread => &self.chat_thread,
            Field::OnBehalfOfId => &self.on_behalf_of_id,
            Field::Modalities | Field::Group | Field::Transferred => return None,
        };
        value.as_deref()
    }

    /// The value of a boolean field (`group`, `transferred`).
    pub fn flag(&self, field: Field) -> Option<bool> {
        match field {
            Field::Group => Some(self.group),
            Field::Transferred => Some(self.transferred),
            _ => None,
        }
    }

    /// The members of a set field (`modalities`).
    pub fn set(&self, field: Field) -> Option<&[String]> {
        match field {
            Field::Modalities => Some(&self.modalities),
            _ => None,
        }
    }
}

impl Facts {
    /// Sets a text or phone field; `None` removes the value (for `caller.kind`, leaves it
    /// empty). Returns false, changing nothing, for set and boolean fields.
    pub fn set_text(&mut self, field: Field, value: Option<String>) -> bool {
        let slot = match field {
            Field::CallerKind => {
                self.caller.kind = value.unwrap_or_default();
                return true;
            }
            Field::CallerId => &mut self.caller.id,
            Field::CallerName => &mut self.caller.name,
            Field::CallerTenant => &mut self.caller.tenant,
            Field::CallerProvider => &mut self.caller.provider,
            Field::CallerPhone => &mut self.caller.phone,
            Field::CallerAsserted => &mut self.caller.asserted,
            Field::CallerRegion => &mut self.caller.region,
            Field::CallerLanguage => &mut self.caller.language,
            Field::CallerCountry => &mut self.caller.country,
            Field::CallerEndpoint => &mut self.caller.endpoint,
            Field::TargetId => &mut self.target.id,
            Field::TargetKind => &mut self.target.kind,
            Field::Tenant => &mut self.tenant,
            Field::MeetingKind => &mut self.meeting.kind,
            Field::MeetingOrganizerId => &mut self.meeting.organizer_id,
            Field::MeetingOrganizerTenant => &mut self.meeting.organizer_tenant,
            Field::ChatThread => &mut self.chat_thread,
            Field::OnBehalfOfId => &mut self.on_behalf_of_id,
            Field::Modalities | Field::Group | Field::Transferred => return false,
        };
        *slot = value;
        true
    }

    /// Sets a boolean field; false for other fields.
    pub fn set_flag(&mut self, field: Field, value: bool) -> bool {
        match field {
            Field::Group => self.group = value,
            Field::Transferred => self.transferred = value,
            _ => return false,
        }
        true
    }

    /// Sets the members of a set field, lowercased as the notification parser stores them;
    /// false for other fields.
    pub fn set_members(&mut self, field: Field, members: Vec<String>) -> bool {
        match field {
            Field::Modalities => {
                self.modalities = members.iter().map(|member| member.to_lowercase()).collect();
                true
            }
            _ => false,
        }
    }
}

/// Brings a phone number to E.164 form: `tel:` and visual separators (spaces, `-`, `.`,
/// `(`, `)`, `/`) dropped, a leading `00` turned into `+`. Returns `None` when what is left
/// is not `+` followed by digits, or digits alone (national numbers are kept as digits).
pub fn normalize_phone(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let without_scheme = trimmed
        .strip_prefix("tel:")
        .or_else(|| trimmed.strip_prefix("TEL:"))
        .unwrap_or(trimmed);
    let mut out = String::with_capacity(without_scheme.len());
    for (index, ch) in without_scheme.chars().enumerate() {
        match ch {
            '+' if index == 0 => out.push('+'),
            '0'..='9' => out.push(ch),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return None,
        }
    }
    if let Some(rest) = out.strip_prefix("00") {
        out = format!("+{rest}");
    }
    let digits = out.strip_prefix('+').unwrap_or(&out);
    if digits.is_empty() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_round_trip() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(*field));
        }
        assert_eq!(Field::from_name("caller.nmae"), None);
    }

    #[test]
    fn setters_reach_every_field_of_their_type() {
        for field in Field::ALL {
            let mut facts = Facts::default();
            match field.field_type() {
                FieldType::Text | FieldType::Phone => {
                    assert!(facts.set_text(*field, Some("x".into())));
                    assert_eq!(facts.text(*field), Some("x"), "{}", field.name());
                }
                FieldType::Bool => {
                    assert!(facts.set_flag(*field, true));
                    assert_eq!(facts.flag(*field), Some(true));
                }
                FieldType::Set => {
                    assert!(facts.set_members(*field, vec!["Video".into()]));
                    assert_eq!(facts.set(*field), Some(&["video".to_owned()][..]));
                }
            }
        }
        assert!(!Facts::default().set_text(Field::Group, None));
    }

    #[test]
    fn phone_numbers_normalise_to_e164() {
        assert_eq!(
            normalize_phone("+1 (555) 555-0123").as_deref(),
            Some("+15555550123")
        );
        assert_eq!(
            normalize_phone("tel:+44.20.7946.0000").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            normalize_phone("0049 30 1234").as_deref(),
            Some("+49301234")
        );
        assert_eq!(normalize_phone("5550100").as_deref(), Some("5550100"));
        assert_eq!(normalize_phone("anonymous"), None);
        assert_eq!(normalize_phone("+"), None);
        assert_eq!(normalize_phone("1+2"), None);
    }
}
