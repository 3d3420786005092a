//! Heap allocations per evaluation, counted by a global allocator: the facts are built
//! before counting starts, so what is counted is the evaluator's own work. Plain `main`;
//! run with `cargo bench --bench alloc`.
//!
//! The invites are the generated sets' two (decided by the last rule, matched by nothing)
//! and every invite in the example notifications, each evaluated many times in turn. The
//! first round is left out: a rate condition allocates when it first sees a key, and lazy
//! regex caches fill on first use.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use callscreen::facts::Facts;
use callscreen::{notification, rules};

#[path = "support/ruleset.rs"]
mod ruleset;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: u64 = 20_000;

fn example_invites() -> Vec<Facts> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notifications");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("examples/notifications")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut invites = Vec::new();
    for path in paths {
        let body = std::fs::read(&path).expect("notification file");
        if let Ok(parsed) = notification::parse(&body) {
            invites.extend(parsed.invites);
        }
    }
    invites
}

fn main() {
    let examples = example_invites();
    for size in [1_000, 100_000] {
        let generated = ruleset::rule_set(size);
        let set = rules::compile(&generated.sources(Path::new("rules"))).expect("compile");
        let mut invites = vec![generated.last.clone(), generated.none.clone()];
        invites.extend(examples.iter().cloned());
        // The generated sets limit the rate of each phone number: those invites also
        // append to the rate condition's history, a queue that grows (amortised) until
        // it is trimmed. Counted apart, so the evaluator's own figure stands alone.
        let (counted, uncounted): (Vec<Facts>, Vec<Facts>) = invites
            .into_iter()
            .partition(|facts| facts.caller.phone.is_some());
        for (label, invites) in [
            ("invites without a rate key", &uncounted),
            ("invites counted by a rate condition", &counted),
        ] {
            let (allocations, evaluations) = count(&set, invites);
            println!(
                "{size} rules, {} {label}: {allocations} allocations in {evaluations} \
                 evaluations, {:.4} per evaluation",
                invites.len(),
                allocations as f64 / evaluations as f64
            );
        }
    }
}

/// Allocations while evaluating each invite `ROUNDS` times, after one round not counted.
fn count(set: &rules::RuleSet, invites: &[Facts]) -> (u64, u64) {
    for facts in invites {
        black_box(set.evaluate(facts));
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        for facts in invites {
            black_box(set.evaluate(black_box(facts)));
        }
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    (allocations, ROUNDS * invites.len() as u64)
}
