//! Writes a generated rule set (the one the benches use) into a folder, for the HTTP and
//! memory benches: `cargo run --release --example gen_rules -- 1000 /tmp/rules`.

use std::path::PathBuf;

#[path = "../benches/support/ruleset.rs"]
mod ruleset;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(count), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: gen_rules RULES DIR");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("RULES is a number");
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the rules folder");
    let generated = ruleset::rule_set(count);
    generated.write(&dir).expect("write the rules");
    println!("{} rules in {}", generated.rules, dir.display());
}
