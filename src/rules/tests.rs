//! Lists, time windows, rate conditions, warnings, reload reports and explanations, each
//! driven through the compiler so the tests read like rule files.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::*;

fn source(name: &str, text: &str) -> Source {
    Source {
        path: PathBuf::from(name),
        text: text.to_owned(),
    }
}

fn set_of(sources: &[(&str, &str)]) -> RuleSet {
    let sources: Vec<Source> = sources
        .iter()
        .map(|(name, text)| source(name, text))
        .collect();
    match compile(&sources) {
        Ok(set) => set,
        Err(diagnostics) => panic!("did not compile: {diagnostics:#?}"),
    }
}

fn errors_of(sources: &[(&str, &str)]) -> Vec<String> {
    let sources: Vec<Source> = sources
        .iter()
        .map(|(name, text)| source(name, text))
        .collect();
    match compile(&sources) {
        Ok(_) => panic!("expected diagnostics"),
        Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
    }
}

fn warnings_of(sources: &[(&str, &str)]) -> Vec<String> {
    set_of(sources)
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A file with one reject rule `r` whose `[rule.when]` body is `when`.
fn rule(when: &str) -> String {
    format!("[[rule]]\nname = \"r\"\naction = \"reject\"\n[rule.when]\n{when}\n")
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn caller_id(id: &str) -> Facts {
    let mut facts = Facts::default();
    facts.caller.kind = "user".into();
    facts.caller.id = Some(id.into());
    facts
}

fn phone(number: &str) -> Facts {
    let mut facts = Facts::default();
    facts.caller.kind = "phone".into();
    facts.caller.phone = Some(number.into());
    facts
}

fn decided_by(set: &RuleSet, facts: &Facts, now: Timestamp) -> Option<String> {
    set.evaluate_at(facts, now)
        .rule
        .map(|rule| rule.to_string())
}

const NOON: &str = "2026-06-01T12:00:00Z";

// === lists ===

#[test]
fn toml_lists_match_case_insensitively_and_under_not() {
    let text = format!(
        "[lists]\nstaff = [\"Alice@Contoso.com\", \"bob@contoso.com\"]\n{}",
        rule("caller.id = { in_list = \"staff\" }")
    );
    let set = set_of(&[("a.toml", &text)]);
    let now = at(NOON);
    assert_eq!(
        decided_by(&set, &caller_id("alice@contoso.COM"), now).as_deref(),
        Some("r")
    );
    assert_eq!(decided_by(&set, &caller_id("carol@contoso.com"), now), None);
    assert_eq!(decided_by(&set, &Facts::default(), now), None);

    let text = format!(
        "[lists]\nstaff = [\"alice@contoso.com\"]\n{}",
        rule("caller.id = { not = { in_list = \"staff\" } }")
    );
    let set = set_of(&[("a.toml", &text)]);
    assert_eq!(decided_by(&set, &caller_id("ALICE@contoso.com"), now), None);
    assert_eq!(
        decided_by(&set, &caller_id("eve@example.com"), now).as_deref(),
        Some("r")
    );
    // A missing fact is not in the list, so the negation holds.
    assert_eq!(
        decided_by(&set, &Facts::default(), now).as_deref(),
        Some("r")
    );
}

#[test]
fn list_files_hold_one_value_a_line_with_comments() {
    let list =
        "# VIP customers\n\n+1 (555) 555-0100   # Alice\n  tel:+15555550101\n0044 20 7946 0000\n";
    let set = set_of(&[
        ("10-vip.toml", &rule("caller.phone = { in_list = \"vip\" }")),
        ("vip.list", list),
    ]);
    let now = at(NOON);
    for number in ["+15555550100", "+15555550101", "+442079460000"] {
        assert_eq!(
            decided_by(&set, &phone(number), now).as_deref(),
            Some("r"),
            "{number}"
        );
    }
    assert_eq!(decided_by(&set, &phone("+15555550102"), now), None);
}

#[test]
fn one_list_serves_phone_and_text_fields() {
    let text = format!(
        "[lists]\nknown = [\"+1 555 0100\"]\n{}\n\
         [[rule]]\nname = \"asserted\"\naction = \"reject\"\n\
         [rule.when]\ncaller.asserted = {{ in_list = \"known\" }}\n",
        rule("caller.phone = { in_list = \"known\" }")
    );
    let set = set_of(&[("a.toml", &text)]);
    let mut facts = Facts::default();
    // Text fields compare the value as written (folded), phone fields in E.164.
    facts.caller.asserted = Some("+1 555 0100".into());
    assert_eq!(
        decided_by(&set, &facts, at(NOON)).as_deref(),
        Some("asserted")
    );
    assert_eq!(
        decided_by(&set, &phone("+15550100"), at(NOON)).as_deref(),
        Some("r")
    );
}

#[test]
fn list_errors_point_at_the_value() {
    assert_eq!(
        errors_of(&[
            ("10-a.toml", &rule("caller.phone = { in_list = \"vip\" }")),
            ("vip.list", "+1 555 0100\n\n  call me maybe\n"),
        ]),
        [
            "vip.list:3:3: invalid phone number \"call me maybe\" in list \"vip\" \
             (used on \"caller.phone\")"
        ]
    );
    assert_eq!(
        errors_of(&[
            ("10-a.toml", &rule("caller.id = { in_list = \"vips\" }")),
            ("vip.list", "x\n"),
        ]),
        ["10-a.toml:5:25: unknown list \"vips\" (did you mean \"vip\"?)"]
    );
    let errors = errors_of(&[("10-a.toml", &rule("caller.id = { in_list = \"vip\" }"))]);
    assert!(errors[0].contains("no lists are defined"), "{errors:?}");
    assert_eq!(
        errors_of(&[
            ("10-a.toml", "[lists]\nvip = [\"a\", 3]\n"),
            ("vip.list", "x\n"),
        ]),
        [
            "10-a.toml:2:13: expected a non-empty string in list \"vip\", found integer",
            "vip.list:1:1: duplicate list name \"vip\" (first defined at 10-a.toml:2)",
        ]
    );
    assert_eq!(
        errors_of(&[("a.toml", "[lists]\nvip = \"x\"\n")]),
        ["a.toml:2:7: list \"vip\" must be an array of strings, found string \"x\""]
    );
}

#[test]
fn new_keys_get_suggestions_too() {
    let errors = errors_of(&[
        ("a.toml", &rule("caller.id = { in_lst = \"vip\" }")),
        ("b.toml", "[list]\nvip = [\"x\"]\n"),
    ]);
    assert_eq!(
        errors,
        [
            "a.toml:5:15: unknown operator \"in_lst\" for \"caller.id\" \
             (did you mean \"in_list\"?)",
            "b.toml:1:2: unknown top-level key \"list\" (did you mean \"lists\"?)",
        ]
    );
    assert_eq!(
        errors_of(&[("a.toml", &rule("rates = 1"))]),
        ["a.toml:5:1: unknown field \"rates\" (did you mean \"rate\"?)"]
    );
}

#[test]
fn unused_and_empty_lists_are_warnings() {
    let warnings = warnings_of(&[
        ("10-a.toml", &rule("caller.id = { in_list = \"blocked\" }")),
        ("blocked.list", "# nobody yet\n"),
        ("spare.list", "x\n"),
    ]);
    assert_eq!(
        warnings,
        [
            "10-a.toml:5:25: warning: list \"blocked\" is empty, so this condition never holds \
             (rule \"r\")",
            "spare.list:1:1: warning: list \"spare\" is not used by any rule",
        ]
    );
}

#[test]
fn list_files_count_in_the_version_and_load_with_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-a.toml"),
        rule("caller.id = { in_list = \"vip\" }"),
    )
    .unwrap();
    std::fs::write(dir.path().join("vip.list"), "alice\n").unwrap();
    let first = load_dir(dir.path()).unwrap();
    assert_eq!(
        decided_by(&first, &caller_id("Alice"), at(NOON)).as_deref(),
        Some("r")
    );
    std::fs::write(dir.path().join("vip.list"), "alice\nbob\n").unwrap();
    let second = load_dir(dir.path()).unwrap();
    assert_ne!(first.version(), second.version());
    assert_eq!(
        decided_by(&second, &caller_id("bob"), at(NOON)).as_deref(),
        Some("r")
    );
    assert_eq!(second.diff(&first).changed, ["r"]);
}

#[test]
fn a_reload_of_unchanged_files_compiles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("10-a.toml"), rule("caller.id = \"alice\"")).unwrap();
    let current = load_dir(dir.path()).unwrap();
    let unchanged = load_dir_if_changed(dir.path(), current.version()).unwrap();
    assert!(unchanged.is_none());

    std::fs::write(dir.path().join("20-b.list"), "bob\n").unwrap();
    let changed = load_dir_if_changed(dir.path(), current.version())
        .unwrap()
        .expect("a new file is a change");
    assert_ne!(changed.version(), current.version());
    assert_eq!(changed.version(), load_dir(dir.path()).unwrap().version());

    // A broken file is reported, never mistaken for "unchanged".
    std::fs::write(dir.path().join("30-c.toml"), "[[rule]\n").unwrap();
    assert!(load_dir_if_changed(dir.path(), changed.version()).is_err());
}

// === time windows ===

fn berlin_window(extra: &str) -> RuleSet {
    set_of(&[(
        "a.toml",
        &rule(&format!(
            "[rule.when.time]\nzone = \"Europe/Berlin\"\n{extra}"
        )),
    )])
}

fn holds_at(set: &RuleSet, when: &str) -> bool {
    set.evaluate_at(&Facts::default(), at(when)).rule.is_some()
}

#[test]
fn business_hours_on_weekdays() {
    let set = berlin_window("days = [\"mon-fri\"]\nhours = [\"08:00-18:00\"]\n");
    // Monday 2026-06-01, CEST (UTC+2).
    assert!(!holds_at(&set, "2026-06-01T05:59:00Z"));
    assert!(holds_at(&set, "2026-06-01T06:00:00Z"));
    assert!(holds_at(&set, "2026-06-01T15:59:59Z"));
    assert!(
        !holds_at(&set, "2026-06-01T16:00:00Z"),
        "the end is exclusive"
    );
    // Saturday.
    assert!(!holds_at(&set, "2026-06-06T10:00:00Z"));
}

#[test]
fn hours_follow_the_wall_clock_across_daylight_saving_changes() {
    // 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST, so 02:xx never happens.
    let skipped = berlin_window("hours = [\"02:00-03:00\"]\n");
    assert!(!holds_at(&skipped, "2026-03-29T00:59:00Z")); // 01:59 CET
    assert!(!holds_at(&skipped, "2026-03-29T01:00:00Z")); // 03:00 CEST
    assert!(holds_at(&skipped, "2026-03-30T00:30:00Z")); // 02:30 CEST the next day

    let morning = berlin_window("hours = [\"08:00-09:00\"]\n");
    assert!(holds_at(&morning, "2026-03-28T07:30:00Z")); // 08:30 CET
    assert!(holds_at(&morning, "2026-03-29T06:30:00Z")); // 08:30 CEST
    assert!(!holds_at(&morning, "2026-03-29T07:30:00Z")); // 09:30 CEST

    // 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice and matches twice.
    assert!(holds_at(&skipped, "2026-10-25T00:30:00Z")); // 02:30 CEST
    assert!(holds_at(&skipped, "2026-10-25T01:30:00Z")); // 02:30 CET
    assert!(!holds_at(&skipped, "2026-10-25T02:30:00Z")); // 03:30 CET

    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    let set = set_of(&[(
        "a.toml",
        &rule("[rule.when.time]\nzone = \"America/New_York\"\nhours = [\"08:00-18:00\"]\n"),
    )]);
    assert!(holds_at(&set, "2026-03-06T13:00:00Z")); // 08:00 EST
    assert!(!holds_at(&set, "2026-03-06T12:59:00Z"));
    assert!(holds_at(&set, "2026-03-09T12:00:00Z")); // 08:00 EDT
    assert!(!holds_at(&set, "2026-03-09T11:59:00Z"));
}

#[test]
fn a_range_crossing_midnight_belongs_to_the_day_it_starts() {
    let set = berlin_window("days = [\"fri\"]\nhours = [\"22:00-06:00\"]\n");
    // June: CEST, UTC+2. Friday 2026-06-05.
    assert!(holds_at(&set, "2026-06-05T21:00:00Z")); // Fri 23:00
    assert!(holds_at(&set, "2026-06-06T01:00:00Z")); // Sat 03:00, Friday's night
    assert!(!holds_at(&set, "2026-06-05T01:00:00Z")); // Fri 03:00, Thursday's night
    assert!(!holds_at(&set, "2026-06-06T21:00:00Z")); // Sat 23:00
    assert!(!holds_at(&set, "2026-06-06T04:00:00Z")); // Sat 06:00, the end is exclusive
}

#[test]
fn dates_and_not_dates() {
    let set = berlin_window("dates = [\"2026-12-24\", 2026-12-31]\nhours = [\"12:00-24:00\"]\n");
    assert!(holds_at(&set, "2026-12-24T11:00:00Z")); // 12:00 CET
    assert!(!holds_at(&set, "2026-12-24T10:00:00Z"));
    assert!(holds_at(&set, "2026-12-31T22:59:00Z")); // 23:59 CET
    assert!(!holds_at(&set, "2026-12-25T11:00:00Z"));

    let set = berlin_window("days = [\"mon-fri\"]\nnot_dates = [\"2026-12-24..2026-12-26\"]\n");
    assert!(holds_at(&set, "2026-12-23T11:00:00Z"));
    assert!(!holds_at(&set, "2026-12-24T11:00:00Z"));
    assert!(!holds_at(&set, "2026-12-25T11:00:00Z"));
}

#[test]
fn outside_business_hours_is_a_not_table() {
    let set = set_of(&[(
        "a.toml",
        &rule(
            "caller.kind = \"phone\"\n[rule.when.not.time]\nzone = \"Europe/Berlin\"\n\
             days = [\"mon-fri\"]\nhours = [\"08:00-18:00\"]\n",
        ),
    )]);
    let caller = phone("+15550100");
    assert_eq!(decided_by(&set, &caller, at("2026-06-01T10:00:00Z")), None);
    assert_eq!(
        decided_by(&set, &caller, at("2026-06-01T20:00:00Z")).as_deref(),
        Some("r")
    );
}

#[test]
fn time_window_errors() {
    let errors = |body: &str| errors_of(&[("a.toml", &rule(body))]);
    assert_eq!(
        errors("[rule.when.time]\nhours = [\"08:00-18:00\"]"),
        [
            "a.toml:5:12: \"time\" needs a \"zone\", an IANA time zone name such as \
             \"Europe/Berlin\""
        ]
    );
    assert_eq!(
        errors("[rule.when.time]\nzone = \"Europe/Berln\""),
        ["a.toml:6:8: unknown time zone \"Europe/Berln\" (did you mean \"Europe/Berlin\"?)"]
    );
    assert_eq!(
        errors(
            "[rule.when.time]\nzone = \"UTC\"\nday = [\"mon\"]\nhours = [\"8-18\", \"09:00-09:00\"]"
        ),
        [
            "a.toml:7:1: unknown key \"day\" in \"time\" (did you mean \"days\"?)",
            "a.toml:8:10: invalid hours \"8-18\" (expected \"HH:MM-HH:MM\", e.g. \"08:00-18:00\")",
            "a.toml:8:18: empty hours \"09:00-09:00\": the end is exclusive; for the whole day \
             leave out \"hours\" or write \"00:00-24:00\"",
        ]
    );
    assert_eq!(
        errors("[rule.when.time]\nzone = \"UTC\"\ndays = []"),
        ["a.toml:7:8: empty \"days\" never matches"]
    );
    assert_eq!(
        errors("tme = 1"),
        ["a.toml:5:1: unknown field \"tme\" (did you mean \"time\"?)"]
    );
}

// === rate limits ===

fn rate_rule(over: u32, within: &str) -> String {
    rule(&format!(
        "[rule.when.rate]\nkey = \"caller.phone\"\nover = {over}\nwithin = \"{within}\""
    ))
}

#[test]
fn rate_holds_once_a_key_was_seen_more_than_over_times_within_the_window() {
    let set = set_of(&[("a.toml", &rate_rule(2, "1m"))]);
    let alice = phone("+1 555 0100");
    let t0 = at("2026-06-01T12:00:00Z");
    let seconds = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
    assert_eq!(decided_by(&set, &alice, seconds(0)), None);
    assert_eq!(decided_by(&set, &alice, seconds(10)), None);
    assert_eq!(decided_by(&set, &alice, seconds(20)).as_deref(), Some("r"));
    // Another caller has a count of their own; the number is compared in E.164 form.
    assert_eq!(decided_by(&set, &phone("+15550199"), seconds(21)), None);
    assert_eq!(
        decided_by(&set, &phone("+15550100"), seconds(30)).as_deref(),
        Some("r")
    );
    // At 75 s only the invites at 20 and 30 s remain within the minute, plus this one.
    assert_eq!(decided_by(&set, &alice, seconds(75)).as_deref(), Some("r"));
    // Quiet for a minute: counting starts again.
    assert_eq!(decided_by(&set, &alice, seconds(200)), None);
    // Invites without the key are not counted and never match.
    assert_eq!(decided_by(&set, &Facts::default(), seconds(201)), None);
}

#[test]
fn every_invite_counts_whichever_rule_decides() {
    let text = format!(
        "[[rule]]\nname = \"vip\"\naction = \"allow\"\n[rule.when]\ncaller.name = \"VIP\"\n\n{}",
        rate_rule(2, "1m")
    );
    let set = set_of(&[("a.toml", &text)]);
    let mut vip = phone("+15550100");
    vip.caller.name = Some("vip".into());
    let now = at(NOON);
    assert_eq!(decided_by(&set, &vip, now).as_deref(), Some("vip"));
    assert_eq!(decided_by(&set, &vip, now).as_deref(), Some("vip"));
    assert_eq!(
        decided_by(&set, &phone("+15550100"), now).as_deref(),
        Some("r")
    );
}

#[test]
fn disabled_rules_do_not_count() {
    let text = rate_rule(1, "1m").replace("action", "enabled = false\naction");
    let set = set_of(&[("a.toml", &text)]);
    for _ in 0..3 {
        assert_eq!(decided_by(&set, &phone("+15550100"), at(NOON)), None);
    }
    assert_eq!(set.rates[0].keys(), 0);
}

#[test]
fn counts_survive_a_reload_of_unchanged_rules() {
    let old = set_of(&[("a.toml", &rate_rule(2, "1m"))]);
    let alice = phone("+15550100");
    let now = at(NOON);
    old.evaluate_at(&alice, now);
    old.evaluate_at(&alice, now);

    let same = set_of(&[("a.toml", &format!("# edited\n{}", rate_rule(2, "1m")))]);
    same.inherit_state(&old);
    assert_eq!(decided_by(&same, &alice, now).as_deref(), Some("r"));

    let changed = set_of(&[("a.toml", &rate_rule(3, "1m"))]);
    changed.inherit_state(&old);
    assert_eq!(decided_by(&changed, &alice, now), None);

    same.reset_state();
    assert_eq!(decided_by(&same, &alice, now), None);
}

#[test]
fn rate_errors() {
    let errors = |body: &str| errors_of(&[("a.toml", &rule(body))]);
    assert_eq!(
        errors("[rule.when.rate]\nkey = \"modalities\"\nover = 0\nwithin = \"soon\"\nper = 1"),
        [
            "a.toml:6:7: \"key\" must be a text field; \"modalities\" is not (try \
             \"caller.phone\" or \"caller.id\")",
            "a.toml:7:8: \"over\" must be between 1 and 10000 (the condition holds once a key \
             was seen more than this many times)",
            "a.toml:8:10: invalid duration \"soon\" for \"within\" (e.g. \"30s\", \"1m\", \"2h\")",
            "a.toml:9:1: unknown key \"per\" in \"rate\"",
        ]
    );
    assert_eq!(
        errors("[rule.when.rate]\nkey = \"caller.phon\"\nover = 3"),
        [
            "a.toml:5:12: \"rate\" needs \"within\" (write key = \"caller.phone\", over = 5, \
             within = \"1m\")",
            "a.toml:6:7: unknown field \"caller.phon\" (did you mean \"caller.phone\"?)",
        ]
    );
    assert_eq!(
        errors("[rule.when.rate]\nkey = \"caller.phone\"\nover = 3\nwithn = \"1m\""),
        [
            "a.toml:5:12: \"rate\" needs \"within\" (write key = \"caller.phone\", over = 5, \
             within = \"1m\")",
            "a.toml:8:1: unknown key \"withn\" in \"rate\" (did you mean \"within\"?)",
        ]
    );
}

// === warnings ===

#[test]
fn contradictory_conditions_are_warnings() {
    let warnings = warnings_of(&[(
        "a.toml",
        &rule("caller.kind = \"user\"\n\"caller.kind\" = \"guest\""),
    )]);
    assert_eq!(
        warnings,
        [
            "a.toml:1:1: warning: rule \"r\" can never match: its conditions on \"caller.kind\" \
          contradict each other"
        ]
    );
    let cases = [
        "caller.tenant = { exists = false }\n\"caller.tenant\" = \"x\"",
        "caller.tenant = { exists = false, prefix = \"x\" }",
        "caller.kind = [\"user\", \"guest\"]\n[rule.when.not]\ncaller.kind = [\"guest\", \"user\"]",
        "group = true\n[rule.when.not]\ngroup = true",
        "caller.kind = \"user\"\n[[rule.when.any_of]]\ncaller.kind = \"guest\"\n\
         [[rule.when.any_of]]\ncaller.kind = \"phone\"",
    ];
    for case in cases {
        let warnings = warnings_of(&[("a.toml", &rule(case))]);
        assert_eq!(warnings.len(), 1, "{case}: {warnings:?}");
        assert!(
            warnings[0].contains("can never match"),
            "{case}: {warnings:?}"
        );
    }
    // Rules that can match are left alone.
    let fine = [
        "caller.kind = [\"user\", \"guest\"]\n[rule.when.not]\ncaller.kind = \"guest\"",
        "caller.tenant = { exists = false, not = \"x\" }",
        "caller.kind = \"user\"\n[[rule.when.any_of]]\ncaller.kind = \"guest\"\n\
         [[rule.when.any_of]]\ncaller.kind = \"USER\"",
        "caller.kind = \"user\"\n[rule.when.not]\ncaller.kind = \"user\"\ncaller.name = \"x\"",
    ];
    for case in fine {
        assert_eq!(
            warnings_of(&[("a.toml", &rule(case))]),
            Vec::<String>::new(),
            "{case}"
        );
    }
}

#[test]
fn shadowed_rules_are_warnings() {
    let text = "[[rule]]\nname = \"first\"\naction = \"reject\"\n\
                [rule.when]\ncaller.kind = \"Guest\"\n\n\
                [[rule]]\nname = \"same\"\naction = \"allow\"\n\
                [rule.when]\ncaller.kind = \"guest\"\n\n\
                [[rule]]\nname = \"off\"\nenabled = false\naction = \"allow\"\n\n\
                [[rule]]\nname = \"everything\"\naction = \"allow\"\n\n\
                [[rule]]\nname = \"late\"\naction = \"reject\"\n\
                [rule.when]\ncaller.kind = \"phone\"\n";
    assert_eq!(
        warnings_of(&[("a.toml", text)]),
        [
            "a.toml:7:1: warning: rule \"same\" never decides: rule \"first\" (a.toml:1) before \
             it has the same conditions",
            "a.toml:22:1: warning: rule \"late\" is never reached: rule \"everything\" \
             (a.toml:18) before it matches every invite",
        ]
    );
}

// === reload report ===

#[test]
fn diff_names_added_removed_and_changed_rules() {
    let old = set_of(&[(
        "a.toml",
        "[[rule]]\nname = \"keep\"\naction = \"allow\"\n\n\
         [[rule]]\nname = \"edit\"\naction = \"reject\"\n\n\
         [[rule]]\nname = \"gone\"\naction = \"reject\"\n",
    )]);
    let new = set_of(&[(
        "a.toml",
        "# a comment changes nothing\n[[rule]]\nname = \"keep\"\naction = \"allow\"\n\n\
         [[rule]]\nname = \"edit\"\naction = \"reject\"\nreason = \"busy\"\n\n\
         [[rule]]\nname = \"new\"\naction = \"reject\"\n",
    )]);
    let diff = new.diff(&old);
    assert_eq!(diff.added, ["new"]);
    assert_eq!(diff.removed, ["gone"]);
    assert_eq!(diff.changed, ["edit"]);
    assert!(new.diff(&new).is_empty());
}

// === explain ===

#[test]
fn explain_names_the_first_failing_condition_of_each_rule() {
    let text = "[[rule]]\nname = \"off\"\nenabled = false\naction = \"reject\"\n\n\
                [[rule]]\nname = \"guests\"\naction = \"reject\"\n\
                [rule.when]\ncaller.kind = \"guest\"\n\n\
                [[rule]]\nname = \"video\"\naction = \"reject\"\nreason = \"busy\"\n[rule.when]\n\
                caller.kind = \"user\"\nmodalities = { any = [\"video\"] }\n\n\
                [[rule]]\nname = \"late\"\naction = \"allow\"\n";
    let set = set_of(&[("a.toml", text)]);
    let mut facts = caller_id("x");
    facts.modalities = vec!["audio".into()];
    let explanation = set.explain_at(&facts, at(NOON));
    let outcomes: Vec<(&str, String)> = explanation
        .steps
        .iter()
        .map(|step| {
            let outcome = match &step.outcome {
                StepOutcome::Failed { condition } => condition.to_string(),
                other => format!("{other:?}"),
            };
            (step.rule.as_str(), outcome)
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("off", "Skipped".to_owned()),
            (
                "guests",
                "caller.kind = \"guest\", actual \"user\"".to_owned()
            ),
            (
                "video",
                "modalities any \"video\", actual [\"audio\"]".to_owned()
            ),
            ("late", "Matched".to_owned()),
        ]
    );
    assert_eq!(explanation.decision.rule.as_deref(), Some("late"));
    assert_eq!(explanation.steps[1].location.line, 6);
}

#[test]
fn explain_agrees_with_evaluate_on_every_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut folders = vec![root.join("rules")];
    for entry in std::fs::read_dir(root.join("examples/rules")).unwrap() {
        folders.push(entry.unwrap().path());
    }
    let mut invites = Vec::new();
    for entry in std::fs::read_dir(root.join("examples/notifications")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let body = std::fs::read(&path).unwrap();
            invites.extend(crate::notification::parse(&body).unwrap().invites);
        }
    }
    assert!(invites.len() > 10);
    for folder in folders {
        let set = load_dir(&folder).unwrap();
        for facts in &invites {
            let explained = set.explain_at(facts, at(NOON)).decision;
            let evaluated = set.evaluate_at(facts, at(NOON));
            assert_eq!(
                explained,
                evaluated,
                "{} {}",
                folder.display(),
                facts.call_id
            );
        }
    }
}

#[test]
fn explain_describes_time_and_rate_conditions() {
    let text = rule(
        "[rule.when.time]\nzone = \"Europe/Berlin\"\nhours = [\"08:00-18:00\"]\n\
         [rule.when.rate]\nkey = \"caller.phone\"\nover = 5\nwithin = \"1m\"",
    );
    let set = set_of(&[("a.toml", &text)]);
    let step = |now: &str| {
        let explanation = set.explain_at(&phone("+15550100"), at(now));
        match &explanation.steps[0].outcome {
            StepOutcome::Failed { condition } => condition.to_string(),
            other => format!("{other:?}"),
        }
    };
    assert_eq!(
        step("2026-03-29T01:30:00Z"),
        "time in zone = \"Europe/Berlin\"; hours = [\"08:00-18:00\"], actual Sun 2026-03-29 \
         03:30 CEST"
    );
    assert_eq!(
        step("2026-03-29T10:00:00Z"),
        "rate over key = \"caller.phone\", over = 5, within = \"1m\", actual 1 invite from \
         \"+15550100\" in the window"
    );
}
