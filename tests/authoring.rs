//! The `test`, `explain` and `replay` commands, and what `check` adds for rule authors
//! (rule tests and warnings), run as a user would run them.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::{callscreen, repo, stderr, stdout};

fn rule_folders() -> Vec<PathBuf> {
    let mut folders = vec![repo("rules")];
    for entry in std::fs::read_dir(repo("examples/rules")).unwrap() {
        folders.push(entry.unwrap().path());
    }
    folders.sort();
    folders
}

/// A copy of the shipped `rules/` folder in a temp dir, with the notifications its tests
/// refer to at the same relative place.
fn copy_of_shipped_rules() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::create_dir_all(dir.path().join("examples/notifications")).unwrap();
    for entry in std::fs::read_dir(repo("rules")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            dir.path().join("rules").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    for entry in std::fs::read_dir(repo("examples/notifications")).unwrap() {
        let path = entry.unwrap().path();
        let target = dir
            .path()
            .join("examples/notifications")
            .join(path.file_name().unwrap());
        std::fs::copy(&path, target).unwrap();
    }
    dir
}

#[test]
fn every_shipped_rule_folder_carries_passing_tests() {
    for folder in rule_folders() {
        let output = callscreen(&["test", "--rules", folder.to_str().unwrap()]);
        let text = stdout(&output);
        assert!(output.status.success(), "{}: {text}", folder.display());
        let summary = text.lines().last().unwrap_or_default();
        assert!(summary.starts_with("ok: "), "{summary}");
        assert!(
            !summary.starts_with("ok: 0 "),
            "{}: no tests",
            folder.display()
        );

        let output = callscreen(&["check", "--rules", folder.to_str().unwrap()]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stdout(&output).contains(" tests passed"),
            "{}",
            stdout(&output)
        );
        assert_eq!(stderr(&output), "", "no warnings in {}", folder.display());
    }
}

#[test]
fn a_failing_rule_test_shows_expected_actual_and_facts_and_fails() {
    let dir = copy_of_shipped_rules();
    let rules = dir.path().join("rules");
    std::fs::write(
        rules.join("90-wrong.test.toml"),
        "[[test]]\nname = \"wrong on purpose\"\n\
         notification = \"../examples/notifications/guest-caller.json\"\n\
         action = \"reject\"\nrule = \"no-anonymous\"\n",
    )
    .unwrap();
    let output = callscreen(&["test", "--rules", rules.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let location = format!("{}:1:1", rules.join("90-wrong.test.toml").display());
    assert!(
        text.contains(&format!("{location}: test \"wrong on purpose\" failed")),
        "{text}"
    );
    assert!(
        text.contains("  expected: reject by rule \"no-anonymous\"\n"),
        "{text}"
    );
    assert!(
        text.contains("  actual:   allow (no rule matched)\n"),
        "{text}"
    );
    assert!(
        text.contains("\"call_id\":\"02c89680-e98c-4884-857c-e06bf9a21be1\""),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with(&format!(
            "FAILED: 1 of 6 tests failed in {}",
            rules.display()
        )),
        "{text}"
    );

    // check runs the tests too.
    let output = callscreen(&["check", "--rules", rules.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("wrong on purpose"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("error: 1 of 6 rule tests failed"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn rule_test_errors_are_located_like_rule_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-a.toml"),
        "[[rule]]\nname = \"a\"\naction = \"reject\"\n\n[[test]]\nnotification = \"nope.json\"\n\
         action = \"reject\"\nrule = \"a\"\n",
    )
    .unwrap();
    let output = callscreen(&["test", "--rules", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let path = dir.path().join("10-a.toml");
    assert!(
        stdout(&output).contains(&format!(
            "{}:6:16: cannot read notification {}: no such file or directory",
            path.display(),
            dir.path().join("nope.json").display()
        )),
        "{}",
        stdout(&output)
    );
}

#[test]
fn check_prints_warnings_and_still_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-a.toml"),
        "[[rule]]\nname = \"everyone\"\naction = \"allow\"\n\n\
         [[rule]]\nname = \"guests\"\naction = \"reject\"\n[rule.when]\ncaller.kind = \"guest\"\n\
         \"caller.kind\" = \"user\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("spare.list"), "x\n").unwrap();
    let output = callscreen(&["check", "--rules", dir.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let file = dir.path().join("10-a.toml");
    let spare = dir.path().join("spare.list");
    let expected = [
        format!(
            "{}:1:1: warning: list \"spare\" is not used by any rule",
            spare.display()
        ),
        format!(
            "{}:5:1: warning: rule \"guests\" can never match: its conditions on \
             \"caller.kind\" contradict each other",
            file.display()
        ),
    ];
    let text = stderr(&output);
    for line in &expected {
        assert!(text.contains(line.as_str()), "{text}");
    }
    assert!(stdout(&output).starts_with("ok: 2 rules in "));
}

#[test]
fn explain_walks_the_rules_up_to_the_deciding_one() {
    let output = callscreen(&[
        "explain",
        "--rules",
        "examples/rules/internal-only",
        "examples/notifications/pstn-caller-with-countrycode.json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("invite 3a7cfb36-6088-455f-8763-54b65ed08d6b ("));
    assert!(
        lines[1].contains("colleagues")
            && lines[1].contains("no: caller.kind in [\"user\", \"onpremises\"], actual \"phone\""),
        "{text}"
    );
    assert!(
        lines[2].contains("everyone-else") && lines[2].contains("MATCH"),
        "{text}"
    );
    assert_eq!(
        lines[3],
        "  → reject by rule \"everyone-else\", reason forbidden"
    );

    let output = callscreen(&[
        "explain",
        "--json",
        "examples/notifications/p2p-aad-user-audio.json",
    ]);
    let value: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(value["decision"]["action"], "allow");
    assert_eq!(value["decision"]["rule"], Value::Null);
    let rules = value["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["rule"], "no-anonymous");
    assert_eq!(rules[0]["status"], "failed");
    assert_eq!(rules[0]["condition"]["field"], "caller.kind");
    assert_eq!(rules[0]["condition"]["expected"], "\"anonymous\"");
    assert_eq!(rules[0]["condition"]["actual"], "\"user\"");
    assert_eq!(rules[1]["condition"]["actual"], Value::Null);
}

#[test]
fn explain_shows_disabled_rules_as_skipped_and_time_windows_at_a_given_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-a.toml"),
        "[[rule]]\nname = \"off\"\nenabled = false\naction = \"reject\"\n\n\
         [[rule]]\nname = \"nights\"\naction = \"reject\"\n[rule.when.time]\n\
         zone = \"Europe/Berlin\"\nhours = [\"22:00-06:00\"]\n",
    )
    .unwrap();
    let file = "examples/notifications/p2p-aad-user-audio.json";
    let rules = dir.path().to_str().unwrap();
    let output = callscreen(&[
        "explain",
        "--rules",
        rules,
        "--at",
        "2026-03-29T12:00:00Z",
        file,
    ]);
    let text = stdout(&output);
    assert!(text.contains("off     skipped (disabled)"), "{text}");
    assert!(
        text.contains(
            "no: time in zone = \"Europe/Berlin\"; hours = [\"22:00-06:00\"], actual Sun \
             2026-03-29 14:00 CEST"
        ),
        "{text}"
    );
    assert!(text.contains("→ no rule matched → allow"), "{text}");
    let output = callscreen(&[
        "explain",
        "--rules",
        rules,
        "--at",
        "2026-03-29T01:00:00Z",
        file,
    ]);
    assert!(
        stdout(&output).contains("nights  MATCH"),
        "{}",
        stdout(&output)
    );
}

/// Audit records as the daemon writes them, one per invite of `files`, decided by the
/// shipped rules (via `eval`), at `ts`.
fn audit_log(files: &[&str], ts: &str) -> String {
    let mut args = vec!["eval", "--rules", "rules"];
    args.extend(files);
    let output = callscreen(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            let outcome = match (record["action"].as_str(), record["mode"].as_str()) {
                (Some("reject"), _) => "would_reject",
                _ => "allowed",
            };
            record["ts"] = ts.into();
            record["outcome"] = outcome.into();
            record["rules_version"] = "c5a12e586e8b".into();
            record["caller"] = serde_json::json!({"kind": record["facts"]["caller"]["kind"]});
            record.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn replay_reports_changed_decisions_and_exits_by_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = audit_log(
        &[
            "examples/notifications/pstn-caller-with-countrycode.json",
            "examples/notifications/pstn-caller-without-countrycode.json",
            "examples/notifications/p2p-aad-user-audio.json",
            "examples/notifications/call-from-other-bot-application.json",
        ],
        "2026-12-01T10:00:00Z",
    );
    // A repeat of the first invite, a broken line and a record from a newer daemon.
    let first = log
        .lines()
        .next()
        .unwrap()
        .replace("would_reject", "duplicate");
    let first = first.replace("\"allowed\"", "\"duplicate\"");
    log.push_str(&format!("\n{first}\nnot json\n"));
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, &log).unwrap();
    let audit = path.to_str().unwrap();

    // Without the broken line, the same rules decide the same way: nothing changes.
    let clean_path = dir.path().join("clean.jsonl");
    std::fs::write(&clean_path, log.replace("\nnot json\n", "\n")).unwrap();
    let clean = clean_path.to_str().unwrap();
    let output = callscreen(&["replay", "--rules", "rules", clean]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // A line that is not a record makes the answer incomplete: exit 2, report still shown.
    let output = callscreen(&["replay", "--rules", "rules", audit]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("audit.jsonl:6: not an audit record"));
    assert!(
        stdout(&output).trim_end().ends_with(
            "replayed 4 of 5 records (skipped: 1 duplicates, 1 bad lines): 0 decisions would \
             change"
        ),
        "{}",
        stdout(&output)
    );
    // The shipped bot rule is in audit mode: its evidence is reported.
    assert!(
        stdout(&output).contains(
            "no-bot-to-bot: 1 calls from 1 distinct caller, since 2026-12-01T10:00:00Z \
             (rules_version c5a12e586e8b)"
        ),
        "{}",
        stdout(&output)
    );

    // An allowlist for phone lines rejects one of the two numbers.
    let output = callscreen(&["replay", "--rules", "examples/rules/pstn-allowlist", clean]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(
            "3a7cfb36-6088-455f-8763-54b65ed08d6b  2026-12-01T10:00:00Z  allow (no rule) → \
             reject by \"unknown-numbers\""
        ),
        "{text}"
    );
    assert!(text.contains("unknown-numbers  +1 / -0"), "{text}");

    let output = callscreen(&[
        "replay",
        "--json",
        "--rules",
        "examples/rules/pstn-allowlist",
        audit,
    ]);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["records"], 5);
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["bad_lines"], 1);
    let changes = report["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|change| change["new_rule"] == "known-numbers")
    );

    let output = callscreen(&["replay", "--rules", "rules", "missing.jsonl"]);
    assert_eq!(output.status.code(), Some(2));
    let output = callscreen(&["replay", "--rules", "no-such-folder", audit]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn time_windows_work_without_a_system_time_zone_database() {
    // An empty TZDIR hides the system's zoneinfo; the copy built into the binary serves.
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_callscreen"))
        .args(["test", "--rules", "examples/rules/business-hours"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TZDIR", empty.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
}

#[test]
fn help_lists_the_authoring_commands() {
    let text = stdout(&callscreen(&["--help"]));
    for command in ["test", "explain", "replay"] {
        assert!(text.contains(command), "{text}");
    }
}
