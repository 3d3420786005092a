//! Arbitrary bytes as the daemon's TOML configuration: deserialising and validating never
//! panic. Validation is sandboxed: relative paths resolve against a folder that does not
//! exist, no secret comes from the environment, and configurations that name key or
//! secret files are only deserialised, so the target never reads files of its own choosing.

#![no_main]

use std::path::Path;

use callscreen::config::{Config, Overrides, RawConfig, SecretSources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_a_file_to_read(text) {
        let _ = toml::from_str::<RawConfig>(text);
        return;
    }
    let base_dir = Path::new("/nonexistent/callscreen-fuzz");
    for overrides in [Overrides::default(), dry_run()] {
        let Ok(raw) = toml::from_str::<RawConfig>(text) else {
            return;
        };
        let _ = Config::from_raw(raw, base_dir, &overrides, &SecretSources::default());
    }
});

fn dry_run() -> Overrides {
    Overrides {
        dry_run: true,
        ..Overrides::default()
    }
}

/// Whether validating would read a file named in the text: the redaction key or the client
/// secret. Judged on the parsed table, so quoting or escaping a key cannot hide it.
fn names_a_file_to_read(text: &str) -> bool {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return true;
    };
    let has = |section: &str, key: &str| {
        table
            .get(section)
            .and_then(toml::Value::as_table)
            .is_some_and(|section| section.contains_key(key))
    };
    has("audit", "redact_key_file") || has("graph", "client_secret_file")
}
