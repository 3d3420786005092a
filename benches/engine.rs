//! The screening engine under criterion: parsing notification bodies to facts, evaluating
//! generated rule sets of 10, 1,000 and 100,000 rules (the invite decided by the last rule,
//! and an invite no rule matches; with the index and, for comparison, by a scan in rule
//! order), and compiling 10,000 rules from memory and swapping them in.
//!
//! `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use callscreen::notification;
use callscreen::rules::{self, RuleSet};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;

#[path = "support/ruleset.rs"]
mod ruleset;

fn parse(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notifications");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/notifications")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut group = c.benchmark_group("parse");
    for path in files {
        let body = std::fs::read(&path).expect("notification file");
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| notification::parse(black_box(body)))
        });
    }
    group.finish();
}

fn compiled(generated: &ruleset::Generated) -> RuleSet {
    let set = rules::compile(&generated.sources(Path::new("rules"))).expect("rules compile");
    // The bench is only meaningful if the invites are decided as intended.
    let now = Timestamp::now();
    let last = set.evaluate_linear_at(&generated.last, now);
    assert_eq!(last.rule.as_deref(), Some(generated.last_rule.as_str()));
    assert_eq!(set.evaluate_linear_at(&generated.none, now).rule, None);
    assert_eq!(set.evaluate_at(&generated.last, now), last);
    assert_eq!(set.evaluate_at(&generated.none, now).rule, None);
    set
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    for size in [10, 1_000, 100_000] {
        let generated = ruleset::rule_set(size);
        let set = compiled(&generated);
        for (case, facts) in [("last", &generated.last), ("none", &generated.none)] {
            group.bench_function(BenchmarkId::new(format!("indexed/{case}"), size), |b| {
                b.iter(|| set.evaluate(black_box(facts)))
            });
        }
    }
    group.finish();

    // The scan the index replaces, for scale; 100,000 rules take long enough to need
    // fewer samples.
    let mut group = c.benchmark_group("evaluate-linear");
    group.sample_size(10);
    for size in [10, 1_000, 100_000] {
        let generated = ruleset::rule_set(size);
        let set = compiled(&generated);
        for (case, facts) in [("last", &generated.last), ("none", &generated.none)] {
            group.bench_function(BenchmarkId::new(case, size), |b| {
                b.iter(|| set.evaluate_linear_at(black_box(facts), Timestamp::now()))
            });
        }
    }
    group.finish();
}

fn compile_and_swap(c: &mut Criterion) {
    let generated = ruleset::rule_set(10_000);
    let sources = generated.sources(Path::new("rules"));
    let current = ArcSwap::from_pointee(compiled(&generated));
    let mut group = c.benchmark_group("reload");
    group.sample_size(10);
    group.bench_function("compile-and-swap/10000", |b| {
        b.iter(|| {
            let set = rules::compile(black_box(&sources)).expect("rules compile");
            set.inherit_state(&current.load());
            current.store(Arc::new(set));
        })
    });
    group.finish();
}

criterion_group!(benches, parse, evaluate, compile_and_swap);
criterion_main!(benches);
