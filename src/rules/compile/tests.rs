//! Golden diagnostics (broken rule text in, exact `file:line:col: message` out), folder
//! loading and versions.

use std::fs;
use std::path::PathBuf;

use super::*;

const RULE: &str = "[[rule]]\nname = \"r\"\naction = \"reject\"\n";

fn source(name: &str, text: &str) -> Source {
    Source {
        path: PathBuf::from(name),
        text: text.to_owned(),
    }
}

fn errors_of(sources: &[Source]) -> Vec<String> {
    match compile(sources) {
        Ok(set) => panic!("expected diagnostics, compiled {set:?}"),
        Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
    }
}

/// The diagnostics for one file, `rules/a.toml`, holding `text`.
fn errors(text: &str) -> Vec<String> {
    errors_of(&[source("rules/a.toml", text)])
}

/// The diagnostics for a rule `r` whose `[rule.when]` table is `when` (it starts on line 5).
fn when_errors(when: &str) -> Vec<String> {
    errors(&format!("{RULE}[rule.when]\n{when}\n"))
}

#[test]
fn toml_syntax_errors_use_the_parser_position() {
    assert_eq!(
        errors("[[rule]]\nname = \"a\" x\n"),
        ["rules/a.toml:2:12: unexpected key or value, expected newline, `#`"]
    );
    assert_eq!(
        errors("[[rule]]\nname = \"a\"\nname = \"b\"\n"),
        ["rules/a.toml:3:1: duplicate key"]
    );
    assert_eq!(
        errors("[[rule]]\nname = \"unterminated\n"),
        ["rules/a.toml:2:21: invalid basic string, expected `\"`"]
    );
}

#[test]
fn every_syntax_error_in_a_file_is_reported_in_order() {
    let text = "[[rule]]\nname = \"a\" x\naction = \n";
    assert_eq!(
        errors(text),
        [
            "rules/a.toml:2:12: unexpected key or value, expected newline, `#`",
            "rules/a.toml:3:10: string values must be quoted, expected literal string",
        ]
    );
}

#[test]
fn unknown_top_level_keys() {
    assert_eq!(
        errors("[[rules]]\nname = \"a\"\n"),
        ["rules/a.toml:1:3: unknown top-level key \"rules\" (did you mean \"rule\"?)"]
    );
    assert_eq!(
        errors("title = \"x\"\n"),
        ["rules/a.toml:1:1: unknown top-level key \"title\""]
    );
}

#[test]
fn rule_must_be_an_array_of_tables() {
    assert_eq!(
        errors("[rule]\nname = \"a\"\n"),
        ["rules/a.toml:1:2: \"rule\" must be an array of tables: write [[rule]], not [rule]"]
    );
    assert_eq!(
        errors("rule = 3\n"),
        ["rules/a.toml:1:8: \"rule\" must be an array of tables ([[rule]]), found integer"]
    );
    assert_eq!(
        errors("rule = [\"a\"]\n"),
        ["rules/a.toml:1:9: each rule must be a table, found string \"a\""]
    );
}

#[test]
fn unknown_rule_keys_get_suggestions() {
    assert_eq!(
        errors("[[rule]]\nname = \"r\"\nacton = \"reject\"\n"),
        [
            "rules/a.toml:1:1: rule \"r\" is missing \"action\" (reject, allow, redirect, ignore)",
            "rules/a.toml:3:1: unknown rule key \"acton\" (did you mean \"action\"?)",
        ]
    );
    assert_eq!(
        errors(&format!("{RULE}priority = 3\n")),
        ["rules/a.toml:4:1: unknown rule key \"priority\""]
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let text = "[[rule]]\nname = 7\naction = true\ndescription = []\nenabled = \"yes\"\n\
                when = \"always\"\n";
    assert_eq!(
        errors(text),
        [
            "rules/a.toml:2:8: \"name\" must be a string, found integer",
            "rules/a.toml:3:10: \"action\" must be a string, found boolean",
            "rules/a.toml:4:15: \"description\" must be a string, found array",
            "rules/a.toml:5:11: \"enabled\" must be true or false, found string \"yes\"",
            "rules/a.toml:6:8: \"when\" must be a table of conditions, found string \"always\"",
        ]
    );
}

#[test]
fn missing_and_empty_names() {
    assert_eq!(
        errors("[[rule]]\naction = \"reject\"\n"),
        ["rules/a.toml:1:1: rule is missing \"name\""]
    );
    assert_eq!(
        errors("[[rule]]\nname = \" \"\naction = \"reject\"\n"),
        ["rules/a.toml:2:8: \"name\" must not be empty"]
    );
    assert_eq!(
        errors("[[rule]]\n"),
        [
            "rules/a.toml:1:1: rule is missing \"name\"",
            "rules/a.toml:1:1: rule is missing \"action\" (reject, allow, redirect, ignore)",
        ]
    );
}

#[test]
fn duplicate_names_point_at_the_first_definition() {
    let first = source("rules/10-a.toml", &format!("# vip\n{RULE}"));
    let second = source("rules/20-b.toml", &format!("{RULE}{RULE}"));
    assert_eq!(
        errors_of(&[first, second]),
        [
            "rules/20-b.toml:2:8: duplicate rule name \"r\" (first defined at rules/10-a.toml:3)",
            "rules/20-b.toml:5:8: duplicate rule name \"r\" (first defined at rules/10-a.toml:3)",
        ]
    );
}

#[test]
fn bad_enum_values() {
    let text = "[[rule]]\nname = \"r\"\naction = \"rejct\"\nreason = \"sometimes\"\n\
                mode = \"aduit\"\n[[rule]]\nname = \"s\"\naction = \"drop\"\n";
    assert_eq!(
        errors(text),
        [
            "rules/a.toml:3:10: unknown action \"rejct\" (did you mean \"reject\"?)",
            "rules/a.toml:4:10: unknown reason \"sometimes\" \
             (expected \"none\", \"busy\", \"forbidden\")",
            "rules/a.toml:5:8: unknown mode \"aduit\" (did you mean \"audit\"?)",
            "rules/a.toml:8:10: unknown action \"drop\" \
             (expected \"reject\", \"allow\", \"redirect\", \"ignore\")",
        ]
    );
}

#[test]
fn reason_and_callback_only_on_reject_rules() {
    let text = "[[rule]]\nname = \"vip\"\naction = \"allow\"\nreason = \"none\"\n\
                callback_uri = \"https://bot.example.com/cb\"\n";
    assert_eq!(
        errors(text),
        [
            "rules/a.toml:4:1: reason \"none\" on an allow rule (only reject rules have one)",
            "rules/a.toml:5:1: callback_uri \"https://bot.example.com/cb\" on an allow rule \
         (only reject and redirect rules use one)",
        ]
    );
}

#[test]
fn callback_uris_must_be_absolute_https_with_a_host() {
    let check = |uri: &str| errors(&format!("{RULE}callback_uri = \"{uri}\"\n"));
    assert_eq!(
        check("http://bot.example.com/cb"),
        ["rules/a.toml:4:16: callback_uri \"http://bot.example.com/cb\" must use https"]
    );
    assert_eq!(
        check("/api/calls"),
        ["rules/a.toml:4:16: invalid callback_uri \"/api/calls\": relative URL without a base"]
    );
    assert_eq!(
        check("https://"),
        ["rules/a.toml:4:16: invalid callback_uri \"https://\": empty host"]
    );
    assert_eq!(
        check("mailto:ops@example.com"),
        ["rules/a.toml:4:16: callback_uri \"mailto:ops@example.com\" must use https"]
    );
}

#[test]
fn unknown_fields_get_suggestions() {
    assert_eq!(
        when_errors("caller.nmae = \"x\""),
        ["rules/a.toml:5:8: unknown field \"caller.nmae\" (did you mean \"caller.name\"?)"]
    );
    assert_eq!(
        errors(&format!("{RULE}[rule.when.caller]\nknd = \"x\"\n")),
        ["rules/a.toml:5:1: unknown field \"caller.knd\" (did you mean \"caller.kind\"?)"]
    );
    assert_eq!(
        when_errors("meeting.organiser.id = \"x\""),
        ["rules/a.toml:5:19: unknown field \"meeting.organiser.id\" \
         (did you mean \"meeting.organizer.id\"?)"]
    );
    assert_eq!(
        when_errors("colour = \"red\""),
        ["rules/a.toml:5:1: unknown field \"colour\""]
    );
    assert_eq!(
        when_errors("caller = {}"),
        ["rules/a.toml:5:1: unknown field \"caller\" (did you mean \"caller.id\"?)"]
    );
    assert_eq!(
        when_errors("caller.id.x.y = \"v\""),
        ["rules/a.toml:5:11: unknown operator \"x\" for \"caller.id\""]
    );
}

#[test]
fn unknown_operators_get_suggestions() {
    assert_eq!(
        when_errors("caller.name = { prefx = \"a\" }"),
        [
            "rules/a.toml:5:17: unknown operator \"prefx\" for \"caller.name\" \
         (did you mean \"prefix\"?)"
        ]
    );
    assert_eq!(
        when_errors("caller.name = { any = [\"a\"] }"),
        [
            "rules/a.toml:5:17: unknown operator \"any\" for \"caller.name\" (set operators apply \
         to \"modalities\"; for any of several values write a list: [\"a\", \"b\"])"
        ]
    );
    assert_eq!(
        when_errors("modalities = { prefix = \"vid\" }"),
        [
            "rules/a.toml:5:16: unknown operator \"prefix\" for \"modalities\" \
         (\"modalities\" is a set; use any, all, none or only)"
        ]
    );
    assert_eq!(
        when_errors("modalities = { anny = [\"video\"] }"),
        ["rules/a.toml:5:16: unknown operator \"anny\" for \"modalities\" (did you mean \"any\"?)"]
    );
}

#[test]
fn wrong_value_types_in_conditions() {
    assert_eq!(
        when_errors("caller.kind = 3"),
        [
            "rules/a.toml:5:15: \"caller.kind\" takes a string, a list of strings or a table of \
         operators, found integer"
        ]
    );
    assert_eq!(
        when_errors("caller.kind = [\"user\", 3]"),
        ["rules/a.toml:5:24: expected a string in the list for \"caller.kind\", found integer"]
    );
    assert_eq!(
        when_errors("caller.id = { exists = \"yes\" }"),
        [
            "rules/a.toml:5:24: \"exists\" for \"caller.id\" takes true or false, \
             found string \"yes\""
        ]
    );
    assert_eq!(
        when_errors("caller.id = { regex = 1 }"),
        ["rules/a.toml:5:23: \"regex\" for \"caller.id\" must be a string, found integer"]
    );
    assert_eq!(
        when_errors("caller.id = { prefix = 1 }"),
        [
            "rules/a.toml:5:24: \"prefix\" for \"caller.id\" takes a string or a list of strings, \
         found integer"
        ]
    );
    assert_eq!(
        when_errors("group = \"yes\""),
        ["rules/a.toml:5:9: \"group\" takes true or false, found string \"yes\""]
    );
    assert_eq!(
        when_errors("transferred = 1"),
        ["rules/a.toml:5:15: \"transferred\" takes true or false, found integer"]
    );
    assert_eq!(
        when_errors("modalities = { any = 1 }"),
        ["rules/a.toml:5:22: \"any\" for \"modalities\" takes a list of strings, found integer"]
    );
    assert_eq!(
        when_errors("modalities = true"),
        [
            "rules/a.toml:5:14: \"modalities\" takes a table of set operators \
             (any, all, none, only, exists, not), found boolean"
        ]
    );
}

#[test]
fn plain_values_on_the_set_field_suggest_any() {
    assert_eq!(
        when_errors("modalities = \"video\""),
        [
            "rules/a.toml:5:14: \"modalities\" is a set: write { any = [\"video\"] } to match any \
         of these values"
        ]
    );
    assert_eq!(
        when_errors("modalities = [\"video\", \"data\"]"),
        [
            "rules/a.toml:5:14: \"modalities\" is a set: write { any = [\"video\", \"data\"] } to \
         match any of these values"
        ]
    );
}

#[test]
fn empty_lists_and_tables_are_refused() {
    assert_eq!(
        when_errors("caller.kind = []"),
        ["rules/a.toml:5:15: empty list for \"caller.kind\" never matches"]
    );
    assert_eq!(
        when_errors("caller.kind = { prefix = [] }"),
        ["rules/a.toml:5:26: empty prefix for \"caller.kind\" never matches"]
    );
    assert_eq!(
        when_errors("caller.id = { suffix = [\"x\", \"\"] }"),
        [
            "rules/a.toml:5:30: empty suffix for \"caller.id\" matches every value \
          (use { exists = true })"
        ]
    );
    assert_eq!(
        when_errors("caller.kind = {}"),
        ["rules/a.toml:5:15: empty operator table for \"caller.kind\""]
    );
    assert_eq!(
        when_errors("caller.kind = \"\""),
        [
            "rules/a.toml:5:15: empty value for \"caller.kind\" never matches \
         (use { exists = false } for a missing value)"
        ]
    );
    assert_eq!(
        when_errors("modalities = { any = [] }"),
        ["rules/a.toml:5:22: empty \"any\" list for \"modalities\" never matches"]
    );
    assert_eq!(
        when_errors("modalities = { all = [] }"),
        ["rules/a.toml:5:22: empty \"all\" list for \"modalities\" is meaningless"]
    );
    assert_eq!(
        when_errors("modalities = { none = [] }"),
        ["rules/a.toml:5:23: empty \"none\" list for \"modalities\" excludes nothing"]
    );
    assert_eq!(
        when_errors("modalities = { only = [] }"),
        ["rules/a.toml:5:23: empty \"only\" list for \"modalities\" never matches"]
    );
    assert_eq!(
        when_errors("modalities = {}"),
        ["rules/a.toml:5:14: empty operator table for \"modalities\""]
    );
    assert_eq!(
        when_errors("any_of = []"),
        ["rules/a.toml:5:10: empty \"any_of\" never matches"]
    );
    assert_eq!(
        errors(&format!("{RULE}[rule.when.not]\n")),
        ["rules/a.toml:4:12: empty \"not\" never matches"]
    );
}

#[test]
fn group_shapes_are_checked() {
    assert_eq!(
        when_errors("any_of = { tenant = \"x\" }"),
        [
            "rules/a.toml:5:1: \"any_of\" must be an array of tables ([[rule.when.any_of]]), \
         found table"
        ]
    );
    assert_eq!(
        when_errors("any_of = [\"x\"]"),
        [
            "rules/a.toml:5:11: each \"any_of\" entry must be a table of conditions, \
             found string \"x\""
        ]
    );
    assert_eq!(
        when_errors("not = \"x\""),
        [
            "rules/a.toml:5:1: \"not\" must be a table of conditions ([rule.when.not]), \
         found string \"x\""
        ]
    );
    // Errors deep inside groups are still found.
    let nested = format!("{RULE}[[rule.when.any_of]]\n[rule.when.any_of.not]\ntenant = 3\n");
    assert_eq!(
        errors(&nested),
        [
            "rules/a.toml:6:10: \"tenant\" takes a string, a list of strings or a table of \
         operators, found integer"
        ]
    );
}

#[test]
fn bad_regexes_name_the_rule() {
    assert_eq!(
        when_errors("caller.name = { regex = \"(spam\" }"),
        ["rules/a.toml:5:25: invalid regex \"(spam\" in rule \"r\": unclosed group"]
    );
    assert_eq!(
        when_errors("caller.name = { regex = '\\p{Nope}' }"),
        [
            "rules/a.toml:5:25: invalid regex \"\\\\p{Nope}\" in rule \"r\": \
         Unicode property not found"
        ]
    );
    assert_eq!(
        when_errors("caller.name = { regex = '\\w{2000}' }"),
        [
            "rules/a.toml:5:25: regex \"\\\\w{2000}\" in rule \"r\" is too large \
         (compiled size over 262144 bytes)"
        ]
    );
}

#[test]
fn bad_phone_values() {
    assert_eq!(
        when_errors("caller.phone = \"anonymous\""),
        ["rules/a.toml:5:16: invalid phone number \"anonymous\" for \"caller.phone\""]
    );
    assert_eq!(
        when_errors("caller.phone = [\"+1 555 0100\", \"+1-CALL-NOW\"]"),
        ["rules/a.toml:5:32: invalid phone number \"+1-CALL-NOW\" for \"caller.phone\""]
    );
    assert_eq!(
        when_errors("caller.phone = { prefix = \"+\" }"),
        ["rules/a.toml:5:27: invalid phone number \"+\" for \"caller.phone\""]
    );
}

#[test]
fn disabled_rules_are_still_checked() {
    let text = format!("{RULE}enabled = false\n[rule.when]\ncaller.name = {{ regex = \"(\" }}\n");
    assert_eq!(
        errors(&text),
        ["rules/a.toml:6:25: invalid regex \"(\" in rule \"r\": unclosed group"]
    );
}

#[test]
fn all_problems_in_all_files_are_reported() {
    let first = source(
        "rules/10-a.toml",
        "[[rule]]\nname = \"a\"\naction = \"rejct\"\n",
    );
    let broken = source("rules/20-b.toml", "[[rule]\n");
    let third = source(
        "rules/30-c.toml",
        "[[rule]]\nname = \"a\"\naction = \"reject\"\nwhen.tenatn = \"x\"\n",
    );
    assert_eq!(
        errors_of(&[first, broken, third]),
        [
            "rules/10-a.toml:3:10: unknown action \"rejct\" (did you mean \"reject\"?)",
            "rules/20-b.toml:1:8: unclosed array table, expected `]`",
            "rules/30-c.toml:2:8: duplicate rule name \"a\" (first defined at rules/10-a.toml:2)",
            "rules/30-c.toml:4:6: unknown field \"tenatn\" (did you mean \"tenant\"?)",
        ]
    );
}

#[test]
fn columns_count_characters() {
    // "ü" is two bytes; a byte count would say column 40.
    assert_eq!(
        when_errors("caller.name = { prefix = \"ü\", regex = \"(\" }"),
        ["rules/a.toml:5:39: invalid regex \"(\" in rule \"r\": unclosed group"]
    );
}

#[test]
fn a_valid_file_compiles() {
    let text = r#"
        # Everything the language offers, in one file.
        [[rule]]
        name = "vip"
        description = "The boss always gets through"
        action = "allow"
        when.caller.id = ["boss@contoso.com", "ceo@contoso.com"]

        [[rule]]
        name = "no-anonymous"
        action = "reject"
        reason = "forbidden"
        callback_uri = "https://bot.example.com/api/calls/screened"
        mode = "audit"

        [rule.when]
        caller.kind = "anonymous"
        caller.phone = { not = { prefix = "+1" } }
        modalities = { any = ["audio"], none = ["data"] }
        group = false

        [[rule.when.any_of]]
        caller.region = { exists = false }

        [[rule.when.any_of]]
        caller.name = { regex = "spam|scam", suffix = ["bot", "robot"] }

        [rule.when.not]
        tenant = "contoso"
        meeting.organizer.tenant = "contoso"
    "#;
    let set = compile(&[source("rules/a.toml", text)]).unwrap();
    assert_eq!(
        set.rule_names().collect::<Vec<_>>(),
        ["vip", "no-anonymous"]
    );
}

// === load_dir ===

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn named(name: &str) -> String {
    format!("[[rule]]\nname = \"{name}\"\naction = \"reject\"\n")
}

#[test]
fn load_dir_reads_toml_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "50-spam.toml", &named("spam"));
    write(dir.path(), "10-vip.toml", &named("vip"));
    write(dir.path(), "9-late.toml", &named("late"));
    write(dir.path(), "Z-upper.toml", &named("upper"));
    // None of these are rule files; their broken content proves they are not read.
    write(dir.path(), ".10-hidden.toml", "not toml [");
    write(dir.path(), "vip.test.toml", "not toml [");
    write(dir.path(), "notes.txt", "not toml [");
    write(dir.path(), "backup.toml~", "not toml [");
    fs::create_dir(dir.path().join("old.toml")).unwrap();

    let set = load_dir(dir.path()).unwrap();
    assert_eq!(
        set.rule_names().collect::<Vec<_>>(),
        ["vip", "spam", "late", "upper"]
    );
}

#[test]
fn load_dir_reports_paths_inside_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", "[[rule]]\nname = \"a\"\n");
    write(dir.path(), "b.toml", &named("a"));
    let path = |name: &str| dir.path().join(name).display().to_string();
    let errors: Vec<String> = load_dir(dir.path())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            format!(
                "{}:1:1: rule \"a\" is missing \"action\" (reject, allow, redirect, ignore)",
                path("a.toml")
            ),
            format!(
                "{}:2:8: duplicate rule name \"a\" (first defined at {}:2)",
                path("b.toml"),
                path("a.toml")
            ),
        ]
    );
}

#[test]
fn load_dir_of_an_empty_folder_allows_everything() {
    let dir = tempfile::tempdir().unwrap();
    let set = load_dir(dir.path()).unwrap();
    assert!(set.is_empty());
    assert_eq!(set.version(), RuleSet::empty().version());
}

#[test]
fn load_dir_of_a_missing_folder_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let errors = load_dir(&missing).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 0);
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}: cannot read rules folder: no such file or directory",
            missing.display()
        )
    );
}

#[test]
fn load_dir_reports_unreadable_files_and_still_checks_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.toml"), b"\xff\xfe not utf-8").unwrap();
    write(
        dir.path(),
        "b.toml",
        "[[rule]]\nname = 1\naction = \"reject\"\n",
    );
    let errors: Vec<String> = load_dir(dir.path())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            format!(
                "{}: cannot read rule file: not valid UTF-8 text",
                dir.path().join("a.toml").display()
            ),
            format!(
                "{}:2:8: \"name\" must be a string, found integer",
                dir.path().join("b.toml").display()
            ),
        ]
    );
}

#[cfg(unix)]
#[test]
fn load_dir_follows_symlinks_and_reports_dangling_ones() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    write(elsewhere.path(), "real.toml", &named("linked"));
    std::os::unix::fs::symlink(
        elsewhere.path().join("real.toml"),
        dir.path().join("a.toml"),
    )
    .unwrap();
    assert_eq!(
        load_dir(dir.path())
            .unwrap()
            .rule_names()
            .collect::<Vec<_>>(),
        ["linked"]
    );

    std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("b.toml")).unwrap();
    let errors = load_dir(dir.path()).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}: cannot read rule file: no such file or directory",
            dir.path().join("b.toml").display()
        )
    );
}

// === versions ===

#[test]
fn version_is_a_fixed_hash_of_names_and_texts() {
    let set = compile(&[source("rules/a.toml", RULE)]).unwrap();
    // sha256(b"a.toml\0" + len(RULE) as u64 little-endian + RULE), computed independently.
    assert_eq!(set.version(), "331497a2a67f");
    // The folder is not part of it.
    let elsewhere = compile(&[source("/etc/callscreen/rules/a.toml", RULE)]).unwrap();
    assert_eq!(elsewhere.version(), set.version());
}

#[test]
fn bytes_moved_between_a_text_and_the_next_name_change_the_version() {
    let before = compile(&[source("a.list", "alice\nbo"), source("bb.toml", RULE)]).unwrap();
    let after = compile(&[source("a.list", "alice\nbob"), source("b.toml", RULE)]).unwrap();
    assert_ne!(before.version(), after.version());
}

#[test]
fn version_changes_with_names_texts_and_order() {
    let a = source("a.toml", RULE);
    let b = source("b.toml", &named("other"));
    let base = compile(&[a.clone(), b.clone()]).unwrap();
    let again = compile(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(base.version(), again.version());

    let renamed = compile(&[source("c.toml", RULE), b.clone()]).unwrap();
    assert_ne!(renamed.version(), base.version());
    let edited = compile(&[source("a.toml", &format!("{RULE}# note\n")), b.clone()]).unwrap();
    assert_ne!(edited.version(), base.version());
    let reordered = compile(&[b, a]).unwrap();
    assert_ne!(reordered.version(), base.version());
}

#[test]
fn identical_folders_share_a_version() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    for dir in [first.path(), second.path()] {
        write(dir, "10-a.toml", &named("a"));
        write(dir, "20-b.toml", &named("b"));
    }
    let first = load_dir(first.path()).unwrap();
    let second = load_dir(second.path()).unwrap();
    assert_eq!(first.version(), second.version());
    assert_eq!(first.version().len(), 12);
    assert!(first.version().bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn redirect_rules_compile_their_targets_and_options() {
    let text = "[[rule]]\nname = \"desk\"\naction = \"redirect\"\n\
                targets = [{ user = \"u-1\" }, { phone = \"+1 (555) 0100\" }, \
                { application_instance = \"ai-1\" }]\n\
                timeout = 20\nmask_callee = false\n";
    let set = compile(&[source("rules/a.toml", text)]).unwrap();
    let decision = set.evaluate(&crate::facts::Facts::default());
    assert_eq!(decision.action, Action::Redirect);
    let redirect = decision.redirect.expect("redirect options");
    assert_eq!(
        redirect.targets,
        [
            super::super::RedirectTarget::User("u-1".into()),
            super::super::RedirectTarget::Phone("+15550100".into()),
            super::super::RedirectTarget::ApplicationInstance("ai-1".into()),
        ]
    );
    assert_eq!(redirect.timeout, Some(20));
    assert_eq!(redirect.mask_callee, Some(false));
    assert_eq!(redirect.mask_caller, None);
}

#[test]
fn broken_redirect_rules_name_the_problem() {
    let redirect = "[[rule]]\nname = \"r\"\naction = \"redirect\"\n";
    assert_eq!(
        errors(redirect),
        ["rules/a.toml:1:1: redirect rule \"r\" has no \"targets\""]
    );
    assert_eq!(
        errors(&format!("{redirect}targets = []\n")),
        ["rules/a.toml:4:11: \"targets\" must hold 1 to 25 targets"]
    );
    assert_eq!(
        errors(&format!(
            "{redirect}targets = [{{ phone = \"call me\" }}]\n"
        )),
        ["rules/a.toml:4:22: redirect phone \"call me\" is not an E.164 number (+…)"]
    );
    assert_eq!(
        errors(&format!("{redirect}targets = [{{ usr = \"u\" }}]\n")),
        ["rules/a.toml:4:14: unknown redirect target kind \"usr\" (did you mean \"user\"?)"]
    );
    assert_eq!(
        errors(&format!(
            "{redirect}targets = [{{ user = \"u\", phone = \"+1\" }}]\n"
        )),
        ["rules/a.toml:4:12: a target names one of user, phone, application_instance"]
    );
    assert_eq!(
        errors(&format!(
            "{redirect}targets = [{{ user = \"u\" }}]\ntimeout = 5\n"
        )),
        ["rules/a.toml:5:11: \"timeout\" must be a whole number of seconds from 15 to 90"]
    );
    assert_eq!(
        errors("[[rule]]\nname = \"r\"\naction = \"reject\"\ntargets = [{ user = \"u\" }]\n"),
        ["rules/a.toml:4:1: a reject rule has redirect options (targets, timeout…)"]
    );
    assert_eq!(
        errors("[[rule]]\nname = \"r\"\naction = \"ignore\"\nreason = \"busy\"\n"),
        ["rules/a.toml:4:1: reason \"busy\" on an ignore rule (only reject rules have one)"]
    );
}
