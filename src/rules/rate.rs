//! Rate conditions: `[rule.when.rate]` holds when the invite's key (a text field such as
//! `caller.phone`) was seen in more than `over` invites within `within`, this one included.
//!
//! Every invite that is evaluated counts once in every rate condition of every enabled
//! rule whose key it has, before any rule is tried, so what a counter sees does not
//! depend on rule order or on which rule decided. Memory is bounded: at most
//! [`KEY_CAPACITY`] keys per condition (the least recently seen go first) and `over + 1`
//! timestamps per key.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use toml::Spanned;
use toml::de::DeValue;

use super::compile::{FileCx, describe, entries};
use super::diag::did_you_mean;
use super::matcher::with_folded;
use crate::facts::{Field, FieldType};

/// Distinct keys remembered per rate condition.
pub const KEY_CAPACITY: usize = 100_000;
/// Largest `over`: each key keeps `over + 1` timestamps.
const MAX_OVER: u32 = 10_000;
/// Longest `within`; longer-term patterns are better read from the audit log.
const MAX_WITHIN_MS: i64 = 24 * 60 * 60 * 1000;
const KEYS: &[&str] = &["key", "over", "within"];

/// One rate condition of a compiled rule set, with its counts.
pub(crate) struct RateCounter {
    pub(crate) field: Field,
    pub(crate) over: u32,
    pub(crate) within_ms: i64,
    within_text: Box<str>,
    /// Position in the rule set's counters, and so in [`RateHits`].
    pub(crate) slot: usize,
    /// Disabled rules do not count.
    pub(crate) active: bool,
    /// What a reload matches to carry the counts over: the rule's name, the definition and
    /// the condition's place among the rule's rate conditions.
    pub(crate) identity: String,
    /// Swapped wholesale by `inherit_state`, so an old and a new rule set can share it.
    state: ArcSwap<Mutex<RateState>>,
    capacity: usize,
}

impl fmt::Debug for RateCounter {
    // The definition only: two rules with the same rate condition have the same condition.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate({})", self.text())
    }
}

impl RateCounter {
    /// `key = "caller.phone", over = 5, within = "1m"`.
    pub(crate) fn text(&self) -> String {
        format!(
            "key = {:?}, over = {}, within = {:?}",
            self.field.name(),
            self.over,
            self.within_text
        )
    }

    /// Counts one invite with key `key` at `now`; returns how many invites with that key
    /// fall within the window ending at `now` (this one included), at most `over + 1`.
    pub(crate) fn record(&self, key: &str, now: Timestamp) -> u32 {
        let state = self.state.load();
        let mut state = state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = now.as_millisecond();
        with_folded(key, |key| {
            state.record(key, now, self.within_ms, self.over, self.capacity)
        })
    }

    /// Forgets every count (rule tests start each case afresh).
    pub(crate) fn reset(&self) {
        self.state.store(Arc::default());
    }

    pub(crate) fn inherit(&self, previous: &RateCounter) {
        self.state.store(previous.state.load_full());
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.state.load().lock().unwrap().keys.len()
    }
}

#[derive(Default)]
struct RateState {
    keys: HashMap<Arc<str>, KeyHits>,
    /// Every recorded hit, oldest first, as (key, sequence number, time). An entry is
    /// current when its sequence number is its key's latest; older ones are skipped.
    order: VecDeque<(Arc<str>, u64, i64)>,
    next: u64,
}

struct KeyHits {
    /// Milliseconds since the epoch, oldest first; at most `over + 1`.
    times: VecDeque<i64>,
    last: u64,
}

impl RateState {
    fn record(&mut self, key: &str, now: i64, within: i64, over: u32, capacity: usize) -> u32 {
        let horizon = now.saturating_sub(within);
        // Keys whose latest hit left the window are of no further use.
        while let Some((oldest, seq, at)) = self.order.front() {
            if *at > horizon {
                break;
            }
            if self.keys.get(oldest).is_some_and(|hits| hits.last == *seq) {
                self.keys.remove(oldest);
            }
            self.order.pop_front();
        }

        let seq = self.next;
        self.next += 1;
        let (key, hits) = match self.keys.get_key_value(key) {
            Some((key, _)) => {
                let key = key.clone();
                let hits = self.keys.get_mut(&key).expect("key was just found");
                (key, hits)
            }
            None => {
                let key: Arc<str> = Arc::from(key);
                let hits = KeyHits {
                    times: VecDeque::with_capacity(over as usize + 1),
                    last: seq,
                };
                (key.clone(), self.keys.entry(key).or_insert(hits))
            }
        };
        hits.times.push_back(now);
        while hits.times.len() > over as usize + 1 {
            hits.times.pop_front();
        }
        // A replay may run backwards in time; only hits inside the window count.
        let count = hits
            .times
            .iter()
            .filter(|&&at| at > horizon && at <= now)
            .count() as u32;
        hits.last = seq;
        self.order.push_back((key, seq, now));

        while self.keys.len() > capacity {
            let Some((oldest, seq, _)) = self.order.pop_front() else {
                break;
            };
            if self.keys.get(&oldest).is_some_and(|hits| hits.last == seq) {
                self.keys.remove(&oldest);
            }
        }
        // Superseded entries pile up for keys seen often; drop them once they dominate.
        if self.order.len() > 2 * capacity.max(self.keys.len()) + 64 {
            let keys = &self.keys;
            self.order
                .retain(|(key, seq, _)| keys.get(key).is_some_and(|hits| hits.last == *seq));
        }
        count
    }
}

/// Which rate conditions hold for the invite being evaluated; one bit per counter. Up to
/// 256 counters fit inline, so the common case allocates nothing.
pub(crate) struct RateHits {
    inline: [u64; 4],
    heap: Vec<u64>,
}

impl RateHits {
    pub(crate) fn new(counters: usize) -> RateHits {
        let heap = if counters > 256 {
            vec![0; counters.div_ceil(64)]
        } else {
            Vec::new()
        };
        RateHits {
            inline: [0; 4],
            heap,
        }
    }

    fn words(&mut self) -> &mut [u64] {
        if self.heap.is_empty() {
            &mut self.inline
        } else {
            &mut self.heap
        }
    }

    pub(crate) fn set(&mut self, slot: usize) {
        self.words()[slot / 64] |= 1 << (slot % 64);
    }

    pub(crate) fn get(&self, slot: usize) -> bool {
        let words: &[u64] = if self.heap.is_empty() {
            &self.inline
        } else {
            &self.heap
        };
        words[slot / 64] & (1 << (slot % 64)) != 0
    }
}

// === compiling ===

/// Compiles a `rate` table of rule `rule`. `ordinal` tells apart several rate conditions of
/// one rule; `slot` is the counter's place in the rule set.
pub(crate) fn compile(
    file: &mut FileCx<'_>,
    rule: &str,
    ordinal: usize,
    slot: usize,
    key: Range<usize>,
    value: &Spanned<DeValue<'_>>,
) -> Option<RateCounter> {
    let DeValue::Table(table) = value.get_ref() else {
        let message = format!(
            "\"rate\" must be a table ([rule.when.rate] with key, over, within), found {}",
            describe(value.get_ref())
        );
        file.error(key, message);
        return None;
    };
    let errors_before = file.error_count();
    let mut field = None;
    let mut over = None;
    let mut within = None;
    for (name, value) in entries(table) {
        match name.get_ref().as_ref() {
            "key" => field = key_field(file, value),
            "over" => over = over_value(file, value),
            "within" => within = within_value(file, value),
            other => {
                let message = format!(
                    "unknown key {other:?} in \"rate\"{}",
                    did_you_mean(other, KEYS.iter().copied())
                );
                file.error(name.span(), message);
            }
        }
    }
    for required in KEYS {
        if !table.contains_key(*required) {
            let message = format!(
                "\"rate\" needs {required:?} (write key = \"caller.phone\", over = 5, \
                 within = \"1m\")"
            );
            file.error(key.clone(), message);
        }
    }
    if file.error_count() > errors_before {
        return None;
    }
    let (field, over, (within_ms, within_text)) = (field?, over?, within?);
    let identity = format!(
        "{rule}\u{0}{}\u{0}{over}\u{0}{within_ms}\u{0}{ordinal}",
        field.name()
    );
    Some(RateCounter {
        field,
        over,
        within_ms,
        within_text,
        slot,
        active: true,
        identity,
        state: ArcSwap::default(),
        capacity: KEY_CAPACITY,
    })
}

fn key_field(file: &mut FileCx<'_>, value: &Spanned<DeValue<'_>>) -> Option<Field> {
    let text_fields = || {
        Field::ALL
            .iter()
            .filter(|field| matches!(field.field_type(), FieldType::Text | FieldType::Phone))
            .map(|field| field.name())
    };
    let DeValue::String(name) = value.get_ref() else {
        let message = format!(
            "\"key\" must name a text field such as \"caller.phone\", found {}",
            describe(value.get_ref())
        );
        file.error(value.span(), message);
        return None;
    };
    match Field::from_name(name) {
        Some(field) if matches!(field.field_type(), FieldType::Text | FieldType::Phone) => {
            Some(field)
        }
        Some(field) => {
            let message = format!(
                "\"key\" must be a text field; {:?} is not (try \"caller.phone\" or \
                 \"caller.id\")",
                field.name()
            );
            file.error(value.span(), message);
            None
        }
        None => {
            let hint = did_you_mean(name, text_fields());
            file.error(value.span(), format!("unknown field {name:?}{hint}"));
            None
        }
    }
}

fn over_value(file: &mut FileCx<'_>, value: &Spanned<DeValue<'_>>) -> Option<u32> {
    let parsed = match value.get_ref() {
        DeValue::Integer(number) => {
            let digits = number.as_str().replace('_', "");
            i64::from_str_radix(&digits, number.radix()).ok()
        }
        other => {
            let message = format!("\"over\" must be a whole number, found {}", describe(other));
            file.error(value.span(), message);
            return None;
        }
    };
    match parsed {
        Some(over) if (1..=i64::from(MAX_OVER)).contains(&over) => Some(over as u32),
        _ => {
            let message = format!(
                "\"over\" must be between 1 and {MAX_OVER} (the condition holds once a key \
                 was seen more than this many times)"
            );
            file.error(value.span(), message);
            None
        }
    }
}

fn within_value(file: &mut FileCx<'_>, value: &Spanned<DeValue<'_>>) -> Option<(i64, Box<str>)> {
    let DeValue::String(text) = value.get_ref() else {
        let message = format!(
            "\"within\" must be a duration such as \"1m\" or \"30s\", found {}",
            describe(value.get_ref())
        );
        file.error(value.span(), message);
        return None;
    };
    let parsed = humantime::parse_duration(text.trim())
        .ok()
        .and_then(|duration| i64::try_from(duration.as_millis()).ok());
    match parsed {
        Some(ms) if ms > 0 && ms <= MAX_WITHIN_MS => Some((ms, Box::from(text.trim()))),
        Some(_) => {
            let message = format!("\"within\" {text:?} must be more than 0 and at most 24 hours");
            file.error(value.span(), message);
            None
        }
        None => {
            let message =
                format!("invalid duration {text:?} for \"within\" (e.g. \"30s\", \"1m\", \"2h\")");
            file.error(value.span(), message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_record(state: &mut RateState, key: &str, at_s: i64, capacity: usize) -> u32 {
        state.record(key, at_s * 1000, 60_000, 2, capacity)
    }

    #[test]
    fn counts_within_the_window_including_the_current_invite() {
        let mut state = RateState::default();
        assert_eq!(state_record(&mut state, "a", 0, 10), 1);
        assert_eq!(state_record(&mut state, "a", 10, 10), 2);
        assert_eq!(state_record(&mut state, "a", 20, 10), 3);
        // Capped at over + 1 timestamps.
        assert_eq!(state_record(&mut state, "a", 30, 10), 3);
        assert_eq!(state.keys["a"].times.len(), 3);
        // 61 s after the hits at 10, 20 and 30 s, only the ones at 20 and 30 remain... plus
        // this one.
        assert_eq!(state_record(&mut state, "a", 71, 10), 3);
        assert_eq!(state_record(&mut state, "b", 200, 10), 1);
        // "a" aged out entirely and was forgotten.
        assert!(!state.keys.contains_key("a"));
    }

    #[test]
    fn keys_are_bounded_and_the_least_recently_seen_go_first() {
        let mut state = RateState::default();
        for (at, key) in ["a", "b", "c"].iter().enumerate() {
            state_record(&mut state, key, at as i64, 3);
        }
        // "a" is seen again, so "b" is now the least recently seen.
        state_record(&mut state, "a", 3, 3);
        state_record(&mut state, "d", 4, 3);
        assert_eq!(state.keys.len(), 3);
        assert!(state.keys.contains_key("a"));
        assert!(!state.keys.contains_key("b"));
        for at in 0..10_000 {
            state_record(&mut state, "a", 5 + at / 1000, 3);
        }
        assert!(state.order.len() < 100, "{}", state.order.len());
    }

    #[test]
    fn rate_hits_inline_and_on_the_heap() {
        let mut small = RateHits::new(3);
        small.set(2);
        assert!(small.get(2) && !small.get(1));
        let mut large = RateHits::new(1000);
        large.set(999);
        assert!(large.get(999) && !large.get(998));
    }
}
