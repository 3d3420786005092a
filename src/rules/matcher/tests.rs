//! Evaluation behaviour, driven through the compiler so each test reads like a rule file.

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::facts::{Caller, FieldType, Meeting, Target};
use crate::rules::{Action, Reason, RuleMode, Source, compile};

fn source(name: &str, text: &str) -> Source {
    Source {
        path: PathBuf::from(name),
        text: text.to_owned(),
    }
}

fn rules(text: &str) -> RuleSet {
    match compile(&[source("rules.toml", text)]) {
        Ok(set) => set,
        Err(diagnostics) => panic!("rules did not compile: {diagnostics:#?}"),
    }
}

/// Whether a single reject rule with this `[rule.when]` body matches `facts`.
fn matches(when: &str, facts: &Facts) -> bool {
    let set = rules(&format!(
        "[[rule]]\nname = \"r\"\naction = \"reject\"\n[rule.when]\n{when}\n"
    ));
    set.evaluate(facts).rule.is_some()
}

/// Facts with one text field set; exhaustive over text fields so a new field is noticed.
fn with_text(field: Field, value: &str) -> Facts {
    let mut facts = Facts::default();
    let text = value.to_owned();
    let value = Some(text.clone());
    match field {
        Field::CallerKind => facts.caller.kind = text,
        Field::CallerId => facts.caller.id = value,
        Field::CallerName => facts.caller.name = value,
        Field::CallerTenant => facts.caller.tenant = value,
        Field::CallerProvider => facts.caller.provider = value,
        Field::CallerPhone => facts.caller.phone = value,
        Field::CallerAsserted => facts.caller.asserted = value,
        Field::CallerRegion => facts.caller.region = value,
        Field::CallerLanguage => facts.caller.language = value,
        Field::CallerCountry => facts.caller.country = value,
        Field::CallerEndpoint => facts.caller.endpoint = value,
        Field::TargetId => facts.target.id = value,
        Field::TargetKind => facts.target.kind = value,
        Field::Tenant => facts.tenant = value,
        Field::MeetingKind => facts.meeting.kind = value,
        Field::MeetingOrganizerId => facts.meeting.organizer_id = value,
        Field::MeetingOrganizerTenant => facts.meeting.organizer_tenant = value,
        Field::ChatThread => facts.chat_thread = value,
        Field::OnBehalfOfId => facts.on_behalf_of_id = value,
        Field::Modalities | Field::Group | Field::Transferred => {
            panic!("{} is not a text field", field.name())
        }
    }
    facts
}

fn modalities(values: &[&str]) -> Facts {
    Facts {
        modalities: values.iter().map(|value| value.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn every_field_matches_and_mismatches() {
    for &field in Field::ALL {
        let name = field.name();
        match field.field_type() {
            FieldType::Text => {
                let facts = with_text(field, "Value-42");
                assert!(matches(&format!("{name} = \"value-42\""), &facts), "{name}");
                assert!(
                    !matches(&format!("{name} = \"value-43\""), &facts),
                    "{name}"
                );
                assert!(
                    !matches(&format!("{name} = \"value-42\""), &Facts::default()),
                    "{name}"
                );
            }
            FieldType::Phone => {
                let facts = with_text(field, "+15550100");
                assert!(matches(&format!("{name} = \"+1 555 0100\""), &facts));
                assert!(!matches(&format!("{name} = \"+1 555 0101\""), &facts));
                assert!(!matches(
                    &format!("{name} = \"+15550100\""),
                    &Facts::default()
                ));
            }
            FieldType::Set => {
                let facts = modalities(&["audio", "video"]);
                assert!(matches(
                    &format!("{name} = {{ any = [\"video\"] }}"),
                    &facts
                ));
                assert!(!matches(
                    &format!("{name} = {{ any = [\"data\"] }}"),
                    &facts
                ));
            }
            FieldType::Bool => {
                let mut facts = Facts::default();
                assert!(matches(&format!("{name} = false"), &facts), "{name}");
                assert!(!matches(&format!("{name} = true"), &facts), "{name}");
                match field {
                    Field::Group => facts.group = true,
                    Field::Transferred => facts.transferred = true,
                    _ => unreachable!("no other boolean fields"),
                }
                assert!(matches(&format!("{name} = true"), &facts), "{name}");
                assert!(!matches(&format!("{name} = false"), &facts), "{name}");
            }
        }
    }
}

#[test]
fn nested_field_facts_from_struct_literals() {
    let facts = Facts {
        caller: Caller {
            kind: "phone".into(),
            ..Default::default()
        },
        target: Target {
            id: Some("bot-1".into()),
            kind: Some("application".into()),
        },
        meeting: Meeting {
            organizer_id: Some("org-9".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let when = "caller.kind = \"PHONE\"\ntarget = { id = \"BOT-1\", kind = \"application\" }\n\
                meeting.organizer.id = \"org-9\"";
    assert!(matches(when, &facts));
    assert!(!matches(
        "meeting.organizer.tenant = { exists = true }",
        &facts
    ));
}

#[test]
fn equals_and_any_of_ignore_case_including_unicode() {
    let ascii = with_text(Field::CallerName, "Alice SMITH");
    assert!(matches("caller.name = \"alice smith\"", &ascii));
    assert!(matches("caller.name = \"ALICE smith\"", &ascii));
    assert!(!matches("caller.name = \"alice\"", &ascii));
    assert!(matches("caller.name = [\"bob\", \"ALICE SMITH\"]", &ascii));
    assert!(!matches("caller.name = [\"bob\", \"carol\"]", &ascii));

    let accented = with_text(Field::CallerName, "ÉMILE Zola");
    assert!(matches("caller.name = \"émile zola\"", &accented));
    assert!(matches("caller.name = \"Émile ZOLA\"", &accented));
    // Final sigma lowercases differently at a word end; both forms must still meet.
    let greek = with_text(Field::CallerName, "ΟΔΥΣΣΕΥΣ");
    assert!(matches("caller.name = \"οδυσσευς\"", &greek));
    assert!(matches(
        "caller.name = \"Οδυσσεύς\"",
        &with_text(Field::CallerName, "ΟΔΥΣΣΕΎΣ")
    ));
    // The Kelvin sign lowercases to an ASCII k.
    assert!(matches(
        "caller.name = \"\u{212a}\"",
        &with_text(Field::CallerName, "K")
    ));
}

#[test]
fn prefix_and_suffix_take_one_or_several_values() {
    let facts = with_text(Field::CallerId, "Spam-Bot-17");
    assert!(matches("caller.id = { prefix = \"spam-\" }", &facts));
    assert!(matches(
        "caller.id = { prefix = [\"ham-\", \"SPAM\"] }",
        &facts
    ));
    assert!(!matches("caller.id = { prefix = \"bot\" }", &facts));
    assert!(matches("caller.id = { suffix = \"-17\" }", &facts));
    assert!(matches(
        "caller.id = { suffix = [\"x\", \"BOT-17\"] }",
        &facts
    ));
    assert!(!matches("caller.id = { suffix = \"spam\" }", &facts));
    assert!(!matches(
        "caller.id = { prefix = \"spam-bot-17-and-more\" }",
        &facts
    ));

    let unicode = with_text(Field::CallerName, "Ärzte Straße");
    assert!(matches("caller.name = { prefix = \"ärz\" }", &unicode));
    assert!(!matches("caller.name = { suffix = \"STRASSE\" }", &unicode));
    assert!(matches("caller.name = { suffix = \"straße\" }", &unicode));
    assert!(!matches("caller.name = { suffix = \"ärzte\" }", &unicode));
}

#[test]
fn operators_in_one_table_must_all_hold() {
    let facts = with_text(Field::CallerName, "alpha omega");
    assert!(matches(
        "caller.name = { prefix = \"alpha\", suffix = \"omega\" }",
        &facts
    ));
    assert!(!matches(
        "caller.name = { prefix = \"alpha\", suffix = \"beta\" }",
        &facts
    ));
}

#[test]
fn regex_is_unanchored_and_case_insensitive() {
    let facts = with_text(Field::CallerName, "Totally Legit SPAM Caller");
    assert!(matches("caller.name = { regex = \"spam\" }", &facts));
    assert!(matches(
        "caller.name = { regex = '^totally\\s+legit' }",
        &facts
    ));
    assert!(!matches("caller.name = { regex = '^spam' }", &facts));
    assert!(!matches(
        "caller.name = { regex = '.*' }",
        &Facts::default()
    ));
}

#[test]
fn not_negates_values_lists_and_operators() {
    let facts = with_text(Field::CallerRegion, "EMEA");
    assert!(!matches("caller.region = { not = \"emea\" }", &facts));
    assert!(matches("caller.region = { not = \"amer\" }", &facts));
    assert!(!matches(
        "caller.region = { not = [\"amer\", \"emea\"] }",
        &facts
    ));
    assert!(matches(
        "caller.region = { not = { prefix = \"am\" } }",
        &facts
    ));
    assert!(!matches(
        "caller.region = { not = { not = \"amer\" } }",
        &facts
    ));
}

#[test]
fn exists_checks_presence() {
    let present = with_text(Field::CallerTenant, "contoso");
    let empty = with_text(Field::CallerTenant, "");
    let missing = Facts::default();
    assert!(matches("caller.tenant = { exists = true }", &present));
    assert!(!matches("caller.tenant = { exists = false }", &present));
    assert!(!matches("caller.tenant = { exists = true }", &missing));
    assert!(matches("caller.tenant = { exists = false }", &missing));
    // Graph sends "" for values it has nothing for.
    assert!(matches("caller.tenant = { exists = false }", &empty));
}

#[test]
fn conditions_on_missing_facts_are_false_except_negations() {
    let missing = Facts::default();
    for when in [
        "caller.id = \"x\"",
        "caller.id = [\"x\", \"y\"]",
        "caller.id = { prefix = \"x\" }",
        "caller.id = { suffix = \"x\" }",
        "caller.id = { regex = \"x\" }",
        "caller.phone = \"+1555\"",
        "modalities = { any = [\"audio\"] }",
        "modalities = { all = [\"audio\"] }",
        "modalities = { none = [\"audio\"] }",
        "modalities = { only = [\"audio\"] }",
    ] {
        assert!(!matches(when, &missing), "{when}");
    }
    for when in [
        "caller.id = { not = \"x\" }",
        "caller.id = { not = { regex = \"x\" } }",
        "modalities = { not = { any = [\"audio\"] } }",
        "modalities = { exists = false }",
        "[rule.when.not]\ncaller.id = \"x\"",
    ] {
        assert!(matches(when, &missing), "{when}");
    }
}

#[test]
fn phone_numbers_are_compared_in_e164_form() {
    let facts = with_text(Field::CallerPhone, "+442079460000");
    assert!(matches("caller.phone = \"+44 20 7946 0000\"", &facts));
    assert!(matches("caller.phone = \"0044 (20) 7946-0000\"", &facts));
    assert!(matches("caller.phone = \"tel:+44.20.7946.0000\"", &facts));
    assert!(matches(
        "caller.phone = [\"+1 555 0100\", \"+44 20 7946 0000\"]",
        &facts
    ));
    assert!(matches("caller.phone = { prefix = \"0044 20\" }", &facts));
    assert!(!matches("caller.phone = { prefix = \"+1\" }", &facts));
    assert!(matches("caller.phone = { suffix = \"0000\" }", &facts));
    assert!(matches("caller.phone = { regex = '^\\+44' }", &facts));

    // A fact the parser left unnormalised is normalised before comparing.
    let raw = with_text(Field::CallerPhone, "tel:0044 20 7946 0000");
    assert!(matches("caller.phone = \"+442079460000\"", &raw));
    assert!(matches("caller.phone = { prefix = \"+4420\" }", &raw));
    assert!(matches("caller.phone = { regex = '^\\+44207' }", &raw));
    // Something that is no phone number at all is compared as it is and matches nothing.
    assert!(!matches(
        "caller.phone = \"+44\"",
        &with_text(Field::CallerPhone, "unknown")
    ));
}

#[test]
fn set_operators() {
    let av = modalities(&["audio", "video"]);
    assert!(matches("modalities = { any = [\"VIDEO\", \"data\"] }", &av));
    assert!(!matches("modalities = { any = [\"data\"] }", &av));
    assert!(matches("modalities = { any = \"audio\" }", &av));
    assert!(matches(
        "modalities = { all = [\"audio\", \"Video\"] }",
        &av
    ));
    assert!(!matches(
        "modalities = { all = [\"audio\", \"data\"] }",
        &av
    ));
    assert!(matches("modalities = { none = [\"data\"] }", &av));
    assert!(!matches(
        "modalities = { none = [\"data\", \"video\"] }",
        &av
    ));
    assert!(matches(
        "modalities = { only = [\"audio\", \"video\", \"data\"] }",
        &av
    ));
    assert!(!matches("modalities = { only = [\"audio\"] }", &av));
    assert!(matches("modalities = { exists = true }", &av));
    assert!(!matches("modalities = { exists = false }", &av));
    assert!(matches(
        "modalities = { not = { only = [\"audio\"] } }",
        &av
    ));
    assert!(!matches(
        "modalities = { not = { any = [\"audio\"] } }",
        &av
    ));
    assert!(matches(
        "modalities = { any = [\"audio\"], none = [\"data\"] }",
        &av
    ));
    assert!(!matches(
        "modalities = { any = [\"audio\"], none = [\"video\"] }",
        &av
    ));

    let upper = modalities(&["Audio"]);
    assert!(matches("modalities = { only = [\"audio\"] }", &upper));
}

#[test]
fn groups_any_of_not_and_nesting() {
    let facts = Facts {
        caller: Caller {
            kind: "guest".into(),
            name: Some("Mallory".into()),
            ..Default::default()
        },
        tenant: Some("contoso".into()),
        ..Default::default()
    };
    let any_of = "tenant = \"contoso\"\n\
                  [[rule.when.any_of]]\ncaller.kind = \"user\"\n\
                  [[rule.when.any_of]]\ncaller.kind = \"guest\"\ncaller.name = \"mallory\"";
    assert!(matches(any_of, &facts));
    let none_hold = "[[rule.when.any_of]]\ncaller.kind = \"user\"\n\
                     [[rule.when.any_of]]\ncaller.kind = \"guest\"\ncaller.name = \"bob\"";
    assert!(!matches(none_hold, &facts));

    // `not` holds unless all of its conditions hold.
    assert!(!matches(
        "[rule.when.not]\ncaller.kind = \"guest\"\ntenant = \"contoso\"",
        &facts
    ));
    assert!(matches(
        "[rule.when.not]\ncaller.kind = \"guest\"\ntenant = \"fabrikam\"",
        &facts
    ));

    // `not` inside an `any_of` alternative, and `any_of` inside a `not`.
    let nested = "[[rule.when.any_of]]\ncaller.kind = \"user\"\n\
                  [[rule.when.any_of]]\n[rule.when.any_of.not]\ntenant = \"fabrikam\"";
    assert!(matches(nested, &facts));
    let nested = "[rule.when.not]\n[[rule.when.not.any_of]]\ncaller.kind = \"user\"\n\
                  [[rule.when.not.any_of]]\ncaller.name = \"mallory\"";
    assert!(!matches(nested, &facts));
    let inline = "any_of = [{ not = { tenant = \"contoso\" } }, { caller.kind = \"guest\" }]";
    assert!(matches(inline, &facts));
}

#[test]
fn empty_when_matches_every_invite() {
    let set = rules("[[rule]]\nname = \"all\"\naction = \"reject\"\n");
    assert_eq!(set.evaluate(&Facts::default()).rule.as_deref(), Some("all"));
    let set = rules("[[rule]]\nname = \"all\"\naction = \"reject\"\nwhen = {}\n");
    assert_eq!(set.evaluate(&Facts::default()).rule.as_deref(), Some("all"));
}

#[test]
fn decision_carries_rule_settings() {
    let set = rules(
        r#"
        [[rule]]
        name = "screened"
        action = "REJECT"
        reason = "Busy"
        callback_uri = "https://bot.example.com/api/calls/screened"
        mode = "Audit"
        "#,
    );
    let decision = set.evaluate(&Facts::default());
    assert_eq!(
        decision,
        Decision {
            action: Action::Reject,
            rule: Some(Arc::from("screened")),
            reason: Reason::Busy,
            callback_uri: Some(Arc::from("https://bot.example.com/api/calls/screened")),
            mode: RuleMode::Audit,
            redirect: None,
            shadow: None,
        }
    );

    let set = rules("[[rule]]\nname = \"vip\"\naction = \"allow\"\n");
    let decision = set.evaluate(&Facts::default());
    assert_eq!(decision.action, Action::Allow);
    assert_eq!(decision.rule.as_deref(), Some("vip"));
    assert_eq!(decision.reason, Reason::None);
    assert_eq!(decision.mode, RuleMode::Enforce);
}

#[test]
fn no_match_allows_by_default() {
    let set = rules("[[rule]]\nname = \"r\"\naction = \"reject\"\nwhen.tenant = \"x\"\n");
    assert_eq!(set.evaluate(&Facts::default()), Decision::default_allow());
    assert_eq!(
        RuleSet::empty().evaluate(&Facts::default()),
        Decision::default_allow()
    );
}

#[test]
fn disabled_rules_are_skipped_but_listed() {
    let set = rules(
        "[[rule]]\nname = \"off\"\naction = \"reject\"\nenabled = false\n\
         [[rule]]\nname = \"on\"\naction = \"reject\"\nreason = \"forbidden\"\n",
    );
    let decision = set.evaluate(&Facts::default());
    assert_eq!(decision.rule.as_deref(), Some("on"));
    assert_eq!(decision.reason, Reason::Forbidden);
    assert_eq!(set.len(), 2);
    assert_eq!(set.rule_names().collect::<Vec<_>>(), ["off", "on"]);
}

#[test]
fn first_match_wins_across_files_in_given_order() {
    let vip = source(
        "10-vip.toml",
        "[[rule]]\nname = \"vip\"\naction = \"allow\"\nwhen.caller.id = \"boss\"\n",
    );
    let spam = source(
        "50-spam.toml",
        "[[rule]]\nname = \"everyone\"\naction = \"reject\"\n",
    );
    let boss = with_text(Field::CallerId, "BOSS");

    let set = compile(&[vip.clone(), spam.clone()]).unwrap();
    assert_eq!(set.rule_names().collect::<Vec<_>>(), ["vip", "everyone"]);
    assert_eq!(set.evaluate(&boss).rule.as_deref(), Some("vip"));
    assert_eq!(
        set.evaluate(&Facts::default()).rule.as_deref(),
        Some("everyone")
    );

    // The order given is the order evaluated, whatever the names.
    let set = compile(&[spam, vip]).unwrap();
    assert_eq!(set.evaluate(&boss).rule.as_deref(), Some("everyone"));
}

#[test]
fn rule_set_basics() {
    let empty = RuleSet::empty();
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
    assert_eq!(empty.rule_names().count(), 0);
    assert_eq!(empty.version(), "e3b0c44298fc");
    let debug = format!(
        "{:?}",
        rules("[[rule]]\nname = \"r\"\naction = \"reject\"\n")
    );
    assert!(debug.starts_with("RuleSet { version: "), "{debug}");

    fn assert_shareable<T: Send + Sync + 'static>() {}
    assert_shareable::<RuleSet>();
    assert_shareable::<Arc<RuleSet>>();
}

#[test]
fn folding_helpers() {
    assert_eq!(fold("ÀB Σ ς"), "àb σ σ");
    assert!(eq_folded("HeLLo", "hello"));
    assert!(!eq_folded("hello!", "hello"));
    assert!(starts_folded("ÉCOLE", "éc"));
    assert!(!starts_folded("É", "éc"));
    assert!(ends_folded("İstanbul", "bul"));
    assert!(!ends_folded("ul", "bul"));
    assert!(ascii_folds_to(b"ABC", b"abc"));
    assert!(!ascii_folds_to(b"AB", b"abc"));
}

#[test]
fn an_audit_mode_rule_never_takes_a_call_from_a_later_enforced_rule() {
    let text = "[[rule]]\nname = \"trial\"\naction = \"reject\"\nreason = \"busy\"\n\
                mode = \"audit\"\n[rule.when]\ncaller.region = \"amer\"\n\n\
                [[rule]]\nname = \"no-anonymous\"\naction = \"reject\"\nreason = \"forbidden\"\n\
                [rule.when]\ncaller.kind = \"anonymous\"\n";
    let set = rules(text);
    let mut facts = Facts::default();
    facts.caller.kind = "anonymous".into();
    facts.caller.region = Some("amer".into());

    // The enforced rule decides; the audit rule's would-be decision rides along.
    let decision = set.evaluate(&facts);
    assert_eq!(decision.rule.as_deref(), Some("no-anonymous"));
    assert_eq!(decision.mode, RuleMode::Enforce);
    let shadow = decision.shadow.expect("the audit rule matched first");
    assert_eq!(shadow.rule.as_deref(), Some("trial"));
    assert_eq!(shadow.reason, Reason::Busy);
    assert_eq!(
        set.evaluate_linear_at(&facts, jiff::Timestamp::now())
            .shadow,
        Some(shadow)
    );

    // With no enforced rule matching, the audit rule's decision is the (recorded) one.
    facts.caller.kind = "user".into();
    let decision = set.evaluate(&facts);
    assert_eq!(decision.rule.as_deref(), Some("trial"));
    assert_eq!(decision.mode, RuleMode::Audit);
    assert_eq!(decision.shadow, None);
}
