//! Arbitrary bytes as a webhook body: parsing never panics, every element of a batch is
//! accounted for exactly once, and every invite evaluates against a fixed rule set.

#![no_main]

use callscreen::notification::{self, NotificationError};
use callscreen_fuzz::{evaluate_checked, fixed_rules};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let parsed = match notification::parse(body) {
        Ok(parsed) => parsed,
        Err(NotificationError::Malformed(position)) => {
            assert!(position.line >= 1 || position.column == 0, "{position}");
            return;
        }
        Err(NotificationError::NotNotifications | NotificationError::Legacy) => return,
    };

    // The body is JSON with a `value` array (after an optional byte order mark).
    let json = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let elements = match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(root)) => match root.get("value") {
            Some(Value::Array(elements)) => elements.len(),
            other => panic!("parsed a batch whose value is {other:?}"),
        },
        other => panic!("parsed a batch that serde_json reads as {other:?}"),
    };
    assert_eq!(parsed.invites.len() + parsed.skipped.len(), elements);
    let mut previous = None;
    for skipped in &parsed.skipped {
        assert!(skipped.index < elements);
        assert!(previous < Some(skipped.index), "skips out of batch order");
        previous = Some(skipped.index);
    }

    let rules = fixed_rules();
    for facts in &parsed.invites {
        let call_id = facts.call_id.as_str();
        assert!(
            !call_id.is_empty() && call_id.trim() == call_id,
            "{call_id:?}"
        );
        evaluate_checked(rules, facts);
    }
});
