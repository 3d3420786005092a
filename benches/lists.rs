//! Named lists at scale: how long a rules folder with a 1,000,000-number list file takes to
//! load, and what one lookup costs once loaded. Plain `main` (no bench framework); run with
//! `cargo bench --bench lists`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use callscreen::facts::Facts;
use callscreen::rules;
use jiff::Timestamp;

const NUMBERS: usize = 1_000_000;
const LOOKUPS: u32 = 2_000_000;

fn number(at: usize) -> String {
    format!("+1 555 {:03} {:04}", at / 10_000, at % 10_000)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut list = String::with_capacity(NUMBERS * 16);
    for at in 0..NUMBERS {
        let _ = writeln!(list, "{}", number(at));
    }
    std::fs::write(dir.path().join("blocked.list"), &list).expect("write list");

    // The common case: one rule, so the list is built in its phone form only.
    std::fs::write(
        dir.path().join("10-blocked.toml"),
        "[[rule]]\nname = \"blocked\"\naction = \"reject\"\n\
         [rule.when]\ncaller.phone = { in_list = \"blocked\" }\n",
    )
    .expect("write rules");
    let (load, _) = best_load(dir.path());
    println!(
        "load: {NUMBERS} numbers as phone numbers in {:.0} ms",
        load.as_secs_f64() * 1e3
    );

    // Both forms: the list is used on a phone field and on a text field.
    std::fs::write(
        dir.path().join("10-blocked.toml"),
        "[[rule]]\nname = \"blocked\"\naction = \"reject\"\n\
         [rule.when]\ncaller.phone = { in_list = \"blocked\" }\n\n\
         [[rule]]\nname = \"blocked-ids\"\naction = \"reject\"\n\
         [rule.when]\ncaller.id = { in_list = \"blocked\" }\n",
    )
    .expect("write rules");

    let (load, set) = best_load(dir.path());
    println!(
        "load: {NUMBERS} numbers in phone and text forms in {:.0} ms",
        load.as_secs_f64() * 1e3
    );

    let now = Timestamp::now();
    let facts = |phone: Option<String>, id: Option<&str>| {
        let mut facts = Facts::default();
        facts.caller.kind = "phone".into();
        facts.caller.phone = phone;
        facts.caller.id = id.map(str::to_owned);
        facts
    };
    let cases = [
        ("phone hit", facts(Some("+15550990123".into()), None)),
        ("phone miss", facts(Some("+15559990123".into()), None)),
        ("text hit", facts(None, Some("+1 555 099 0123"))),
        ("text miss", facts(None, Some("NOT-ON-THE-LIST-X"))),
    ];
    for (name, facts) in &cases {
        let expected = set.evaluate_at(facts, now).rule.is_some();
        let started = Instant::now();
        for _ in 0..LOOKUPS {
            black_box(set.evaluate_at(black_box(facts), now));
        }
        let per = started.elapsed().as_nanos() as f64 / f64::from(LOOKUPS);
        println!("lookup ({name}, matched {expected}): {per:.0} ns per invite");
    }
}

/// The fastest of three loads of `dir` (the first also pays for the page cache), and the
/// rule set.
fn best_load(dir: &std::path::Path) -> (Duration, rules::RuleSet) {
    let mut best = Duration::MAX;
    let mut set = None;
    for _ in 0..3 {
        let started = Instant::now();
        let loaded = rules::load_dir(dir).expect("rules compile");
        best = best.min(started.elapsed());
        set = Some(loaded);
    }
    (best, set.expect("loaded three times"))
}
