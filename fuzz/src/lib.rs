//! Fixtures shared by the fuzz targets: a fixed rule set that exercises every kind of
//! condition, a handful of invites to evaluate rule sets against, and checks on the
//! evaluator's answers.

use std::path::Path;
use std::sync::OnceLock;

use callscreen::facts::{Caller, Facts, Meeting, Target};
use callscreen::notification;
use callscreen::rules::{self, Action, Decision, RuleSet, Source};

/// Every operator and field type, with ASCII and non-ASCII values, so evaluating fuzzed
/// invites walks all of the matcher's comparison paths.
const FIXED_RULES: &str = r#"
[[rule]]
name = "regex-and-prefix"
action = "reject"
reason = "busy"
[rule.when]
caller.name = { regex = "^(robo|spam)\\w*$|ΣΊΣΥΦΟΣ", not = { prefix = ["ok", "Ⅻ"] } }
caller.phone = { prefix = ["+1 900", "0044 909"], not = { suffix = "0000" } }

[[rule]]
name = "suffix-and-sets"
action = "reject"
mode = "audit"
callback_uri = "https://bot.example.com/screened"
[rule.when]
caller.id = { suffix = ["@spam.example", "İ"] }
modalities = { any = ["video", "VIDEOBASEDSCREENSHARING"], none = "data", exists = true }

[[rule]]
name = "any-of-and-not"
action = "reject"
reason = "forbidden"
[[rule.when.any_of]]
caller.kind = ["anonymous", "encrypted"]
caller.phone = { exists = false }
[[rule.when.any_of]]
group = true
meeting.organizer.tenant = { not = "00000000-0000-0000-0000-000000000000" }
meeting.kind = "organizer"
[rule.when.not]
tenant = "5e6a0a2e-dd70-434d-81d7-7cffb7decc0c"

[[rule]]
name = "all-and-only"
action = "reject"
enabled = true
[rule.when]
modalities = { all = ["audio"], only = ["audio", "video"] }
transferred = true
on_behalf_of.id = { exists = true }
caller.asserted = { regex = "^\\+?[0-9]{5,}$" }

[[rule]]
name = "disabled"
action = "reject"
enabled = false
[rule.when]

[[rule]]
name = "everything-else-from-phones"
action = "allow"
[rule.when]
caller.kind = "phone"
caller.country = { not = { exists = false } }
caller.region = ["amer", "emea", "apac"]
caller.language = { prefix = "en", suffix = ["-us", "-gb"] }
caller.endpoint = { not = ["skypeForBusiness"] }
caller.tenant = { exists = false }
caller.provider = { not = "AAD" }
target.id = { exists = true }
target.kind = { regex = "instance$" }
chat.thread = { not = { prefix = "19:meeting_" } }
meeting.organizer.id = { exists = false }
"#;

/// The rule set the `notification` target evaluates every invite against.
pub fn fixed_rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let source = Source {
            path: "fixed.toml".into(),
            text: FIXED_RULES.to_owned(),
        };
        match rules::compile(&[source]) {
            Ok(set) => set,
            Err(diagnostics) => panic!("the fixed rule set does not compile: {diagnostics:?}"),
        }
    })
}

const EXAMPLE_BODIES: &[&[u8]] = &[
    include_bytes!("../../examples/notifications/pstn-caller-with-countrycode.json"),
    include_bytes!("../../examples/notifications/anonymous-caller-no-id.json"),
    include_bytes!("../../examples/notifications/group-call-invite-chatinfo-organizer.json"),
    include_bytes!("../../examples/notifications/guest-caller.json"),
    include_bytes!("../../examples/notifications/p2p-aad-user-video.json"),
];

/// Invites to evaluate fuzzed rule sets against: a few from the example notifications,
/// one with every field set (non-ASCII text included), and one with nothing set.
pub fn fixed_facts() -> &'static [Facts] {
    static FACTS: OnceLock<Vec<Facts>> = OnceLock::new();
    FACTS.get_or_init(|| {
        let mut facts = Vec::new();
        for body in EXAMPLE_BODIES {
            match notification::parse(body) {
                Ok(parsed) => facts.extend(parsed.invites),
                Err(error) => panic!("an example notification does not parse: {error}"),
            }
        }
        facts.push(everything_set());
        facts.push(Facts::default());
        facts
    })
}

fn everything_set() -> Facts {
    let some = |text: &str| Some(text.to_owned());
    Facts {
        call_id: "1b7d3e2a-0000-4000-8000-00000000fuzz".to_owned(),
        caller: Caller {
            kind: "user".to_owned(),
            id: some("ΣΊΣΥΦΟΣ@Spam.Example"),
            name: some("Straße İstanbul ǅ"),
            tenant: some("5e6a0a2e-dd70-434d-81d7-7cffb7decc0c"),
            provider: some("AAD"),
            phone: some("+19005550123"),
            asserted: some("+441632960000"),
            region: some("emea"),
            language: some("de-DE"),
            country: some("DE"),
            endpoint: some("default"),
        },
        target: Target {
            id: some("5d96cf7f-265b-4da9-8f0c-26ef4243ed52"),
            kind: some("applicationInstance"),
        },
        tenant: some("5e6a0a2e-dd70-434d-81d7-7cffb7decc0c"),
        modalities: vec!["audio".to_owned(), "vidéo".to_owned()],
        group: true,
        meeting: Meeting {
            kind: some("organizer"),
            organizer_id: some("a1b2"),
            organizer_tenant: some("ffffffff-0000-0000-0000-000000000000"),
        },
        chat_thread: some("19:meeting_x@thread.v2"),
        transferred: true,
        on_behalf_of_id: some("c3d4"),
        call_chain_id: some("e5f6"),
    }
}

/// Evaluates `facts` and checks the decision is one the set can give: either the default
/// allow, or the decision of an enabled rule of that name.
pub fn evaluate_checked(set: &RuleSet, facts: &Facts) -> Decision {
    let decision = set.evaluate(facts);
    match decision.rule.as_deref() {
        None => assert_eq!(decision, Decision::default_allow()),
        Some(name) => assert!(
            set.enabled_rule_names().any(|enabled| enabled == name),
            "decision names {name:?}, which is not an enabled rule"
        ),
    }
    if decision.action == Action::Allow {
        assert!(decision.callback_uri.is_none(), "an allow with a callback");
    }
    // Evaluation is pure: the same invite gives the same decision.
    assert_eq!(set.evaluate(facts), decision);
    decision
}

/// Checks that a diagnostic names its file first and points inside that file's text.
pub fn check_diagnostic(display: &str, path: &Path, line: usize, col: usize, text: &str) {
    let path = path.display().to_string();
    assert!(
        display.starts_with(&path),
        "diagnostic {display:?} does not start with {path:?}"
    );
    if line == 0 {
        assert_eq!(
            col, 0,
            "a diagnostic without a line has a column: {display:?}"
        );
        return;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        line <= lines.len(),
        "diagnostic {display:?} is past the last line ({})",
        lines.len()
    );
    let width = lines[line - 1].chars().count();
    assert!(
        (1..=width + 1).contains(&col),
        "diagnostic {display:?} is outside its line ({width} characters)"
    );
}
