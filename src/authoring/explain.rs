//! `explain` output: every rule tried for an invite, with the first condition that failed,
//! as text for people or JSON for tools.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::facts::Facts;
use crate::rules::{Action, Explanation, StepOutcome};

/// Writes one invite's explanation for a person. `source` names where the invite came from.
pub fn write_text(
    out: &mut impl Write,
    source: &str,
    facts: &Facts,
    explanation: &Explanation,
) -> io::Result<()> {
    writeln!(out, "invite {} ({source})", facts.call_id)?;
    let width = explanation
        .steps
        .iter()
        .map(|step| step.rule.chars().count())
        .max()
        .unwrap_or(0);
    for (at, step) in explanation.steps.iter().enumerate() {
        let what = match &step.outcome {
            StepOutcome::Skipped => "skipped (disabled)".to_owned(),
            StepOutcome::Failed { condition } => format!("no: {condition}"),
            StepOutcome::Matched => "MATCH".to_owned(),
        };
        writeln!(
            out,
            "  {:>3}. {:<width$}  {what}  [{}]",
            at + 1,
            step.rule,
            step.location
        )?;
    }
    let decision = &explanation.decision;
    match (&decision.rule, decision.action) {
        (None, _) => writeln!(out, "  → no rule matched → allow")?,
        (Some(rule), Action::Allow) => writeln!(out, "  → allow by rule {rule:?}")?,
        (Some(rule), Action::Ignore) => writeln!(out, "  → ignore by rule {rule:?}")?,
        (Some(rule), Action::Redirect) => {
            let targets = decision
                .redirect
                .as_ref()
                .map_or(0, |redirect| redirect.targets.len());
            writeln!(out, "  → redirect by rule {rule:?} to {targets} target(s)")?;
        }
        (Some(rule), Action::Reject) => {
            let reason = serde_json::to_value(decision.reason).unwrap_or(Value::Null);
            let mode = match decision.mode {
                crate::rules::RuleMode::Audit => " (audit mode: recorded, not sent)",
                crate::rules::RuleMode::Enforce => "",
            };
            writeln!(
                out,
                "  → reject by rule {rule:?}, reason {}{mode}",
                reason.as_str().unwrap_or("none")
            )?;
        }
    }
    Ok(())
}

/// One invite's explanation as a JSON object.
pub fn to_json(source: &str, facts: &Facts, explanation: &Explanation) -> Value {
    let decision = &explanation.decision;
    let steps: Vec<Value> = explanation
        .steps
        .iter()
        .map(|step| {
            let mut value = json!({
                "rule": step.rule,
                "file": step.location.path.display().to_string(),
                "line": step.location.line,
            });
            if let (Value::Object(map), Ok(Value::Object(outcome))) =
                (&mut value, serde_json::to_value(&step.outcome))
            {
                map.extend(outcome);
            }
            value
        })
        .collect();
    json!({
        "call_id": facts.call_id,
        "source": source,
        "decision": {
            "action": decision.action,
            "rule": decision.rule.as_deref(),
            "reason": (decision.action == Action::Reject).then_some(decision.reason),
            "mode": decision.mode,
        },
        "rules": steps,
        "facts": facts,
    })
}
