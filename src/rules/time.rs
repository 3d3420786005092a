//! Time windows: `[rule.when.time]` holds when the evaluation time, seen on the wall clock
//! of an IANA zone, falls on the listed days, dates and hours.
//!
//! A range of hours that crosses midnight (`22:00-06:00`) belongs to the day it starts on,
//! so `days`, `dates` and `not_dates` are checked against that day. Hours are wall-clock
//! times: a window inside the hour skipped when clocks go forward never occurs that day,
//! and an hour repeated when they go back matches both times.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use toml::Spanned;
use toml::de::DeValue;

use super::compile::{FileCx, describe, entries};
use super::diag::did_you_mean;

const KEYS: &[&str] = &["zone", "days", "hours", "dates", "not_dates"];
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const ALL_DAYS: u8 = 0x7f;
const MINUTES_PER_DAY: u16 = 24 * 60;

/// A compiled `[rule.when.time]` table.
pub(crate) struct TimeWindow {
    zone: TimeZone,
    /// Bit 0 is Monday; every bit set when `days` was not given.
    days: u8,
    /// `[start, end)` in minutes after midnight; `end <= start` crosses midnight. Empty:
    /// the whole day.
    hours: Vec<(u16, u16)>,
    /// Inclusive date ranges; empty: any date.
    dates: Vec<(Date, Date)>,
    not_dates: Vec<(Date, Date)>,
    /// The table written back in one line, for `explain` and rule identity.
    text: Box<str>,
}

impl TimeWindow {
    pub(crate) fn holds(&self, now: Timestamp) -> bool {
        let local = self.zone.to_datetime(now);
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let today = local.date();
        if self.hours.is_empty() {
            return self.day_allowed(today);
        }
        self.hours.iter().any(|&(start, end)| {
            if start < end {
                (start..end).contains(&minute) && self.day_allowed(today)
            } else {
                (minute >= start && self.day_allowed(today))
                    || (minute < end && today.yesterday().is_ok_and(|day| self.day_allowed(day)))
            }
        })
    }

    fn day_allowed(&self, day: Date) -> bool {
        let bit = 1u8 << day.weekday().to_monday_zero_offset();
        self.days & bit != 0
            && (self.dates.is_empty() || in_ranges(&self.dates, day))
            && !in_ranges(&self.not_dates, day)
    }

    /// The evaluation time as this window sees it, e.g. `Sun 2026-03-29 03:30 CEST`.
    pub(crate) fn local_time(&self, now: Timestamp) -> String {
        let local = self.zone.to_datetime(now);
        let day = DAY_NAMES[local.weekday().to_monday_zero_offset() as usize];
        let abbreviation = self.zone.to_offset_info(now).abbreviation().to_owned();
        format!(
            "{} {} {:02}:{:02} {abbreviation}",
            capitalise(day),
            local.date(),
            local.hour(),
            local.minute()
        )
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "time({})", self.text)
    }
}

fn in_ranges(ranges: &[(Date, Date)], day: Date) -> bool {
    ranges
        .iter()
        .any(|(first, last)| *first <= day && day <= *last)
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The zone from the system's tz database, else from the copy built into the binary (a
/// minimal container may have no `/usr/share/zoneinfo`, or an incomplete one).
pub(crate) fn zone(name: &str) -> Option<TimeZone> {
    static BUNDLED: OnceLock<TimeZoneDatabase> = OnceLock::new();
    jiff::tz::db()
        .get(name)
        .or_else(|_| BUNDLED.get_or_init(TimeZoneDatabase::bundled).get(name))
        .ok()
}

fn zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|name| name.as_str().to_owned())
        .collect();
    if names.is_empty() {
        names = TimeZoneDatabase::bundled()
            .available()
            .map(|name| name.as_str().to_owned())
            .collect();
    }
    names
}

// === compiling ===

type Value<'a, 'i> = &'a Spanned<DeValue<'i>>;

/// Compiles a `time` table; `None` after reporting its problems.
pub(crate) fn compile(
    file: &mut FileCx<'_>,
    key: Range<usize>,
    value: Value<'_, '_>,
) -> Option<TimeWindow> {
    let DeValue::Table(table) = value.get_ref() else {
        let message = format!(
            "\"time\" must be a table ([rule.when.time] with zone, days, hours, dates), \
             found {}",
            describe(value.get_ref())
        );
        file.error(key, message);
        return None;
    };
    let errors_before = file.error_count();
    let mut zone_found = None;
    let mut days = ALL_DAYS;
    let mut hours = Vec::new();
    let mut dates = Vec::new();
    let mut not_dates = Vec::new();
    let mut text = String::new();
    for (name, value) in entries(table) {
        match name.get_ref().as_ref() {
            "zone" => zone_found = zone_value(file, value),
            "days" => {
                if let Some(found) = list(file, "days", value, day_range) {
                    days = found.iter().fold(0, |all, bits| all | bits);
                }
            }
            "hours" => hours = list(file, "hours", value, hour_range).unwrap_or_default(),
            "dates" => dates = list(file, "dates", value, date_range).unwrap_or_default(),
            "not_dates" => {
                not_dates = list(file, "not_dates", value, date_range).unwrap_or_default();
            }
            other => {
                let message = format!(
                    "unknown key {other:?} in \"time\"{}",
                    did_you_mean(other, KEYS.iter().copied())
                );
                file.error(name.span(), message);
                continue;
            }
        }
        let _ = write!(text, "{} = {}; ", name.get_ref(), written(value.get_ref()));
    }
    let Some(zone) = zone_found else {
        if !table.contains_key("zone") {
            let message = "\"time\" needs a \"zone\", an IANA time zone name such as \
                           \"Europe/Berlin\""
                .to_owned();
            file.error(key, message);
        }
        return None;
    };
    if file.error_count() > errors_before {
        return None;
    }
    Some(TimeWindow {
        zone,
        days,
        hours,
        dates,
        not_dates,
        text: text.trim_end_matches("; ").into(),
    })
}

/// A value in TOML-like form, for the window's one-line text.
fn written(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(text) => format!("{text:?}"),
        DeValue::Datetime(datetime) => datetime.to_string(),
        DeValue::Array(items) => {
            let items: Vec<String> = items.iter().map(|item| written(item.get_ref())).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.type_str().to_owned(),
    }
}

fn zone_value(file: &mut FileCx<'_>, value: Value<'_, '_>) -> Option<TimeZone> {
    let DeValue::String(name) = value.get_ref() else {
        let message = format!(
            "\"zone\" must be an IANA time zone name such as \"Europe/Berlin\", found {}",
            describe(value.get_ref())
        );
        file.error(value.span(), message);
        return None;
    };
    match zone(name) {
        Some(zone) => Some(zone),
        None => {
            let names = zone_names();
            let hint = did_you_mean(name, names.iter().map(String::as_str));
            file.error(value.span(), format!("unknown time zone {name:?}{hint}"));
            None
        }
    }
}

/// A non-empty array whose items each parse with `parse` (which returns an error message).
fn list<T>(
    file: &mut FileCx<'_>,
    key: &str,
    value: Value<'_, '_>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let DeValue::Array(items) = value.get_ref() else {
        let message = format!(
            "{key:?} must be an array, found {}",
            describe(value.get_ref())
        );
        file.error(value.span(), message);
        return None;
    };
    if items.is_empty() {
        let effect = if key == "not_dates" {
            "excludes nothing"
        } else {
            "never matches"
        };
        file.error(value.span(), format!("empty {key:?} {effect}"));
        return None;
    }
    let mut parsed = Vec::with_capacity(items.len());
    let mut broken = false;
    for item in items.iter() {
        let text = match item.get_ref() {
            DeValue::String(text) => text.to_string(),
            // Dates are natural to write unquoted, which TOML reads as a local date.
            DeValue::Datetime(datetime) if key.ends_with("dates") => datetime.to_string(),
            other => {
                let message = format!("expected a string in {key:?}, found {}", describe(other));
                file.error(item.span(), message);
                broken = true;
                continue;
            }
        };
        match parse(text.trim()) {
            Ok(value) => parsed.push(value),
            Err(message) => {
                file.error(item.span(), message);
                broken = true;
            }
        }
    }
    (!broken).then_some(parsed)
}

/// `"mon"`, `"monday"` or a range `"mon-fri"` (which may wrap: `"fri-mon"`), as day bits.
fn day_range(text: &str) -> Result<u8, String> {
    let day = |word: &str| -> Result<u8, String> {
        let lower = word.trim().to_ascii_lowercase();
        let found = (0..7).find(|&at| lower == DAY_NAMES[at] || lower == FULL_DAY_NAMES[at]);
        found.map(|at| at as u8).ok_or_else(|| {
            let names = DAY_NAMES.iter().chain(&FULL_DAY_NAMES).copied();
            let hint = did_you_mean(&lower, names);
            format!("unknown day {word:?}{hint} (expected mon, tue, …, sun or a range mon-fri)")
        })
    };
    match text.split_once('-') {
        None => Ok(1 << day(text)?),
        Some((first, last)) => {
            let (first, last) = (day(first)?, day(last)?);
            let mut bits = 0;
            let mut at = first;
            loop {
                bits |= 1 << at;
                if at == last {
                    break;
                }
                at = (at + 1) % 7;
            }
            Ok(bits)
        }
    }
}

/// `"HH:MM-HH:MM"`; the end may be `24:00`; an end at or before the start crosses midnight.
fn hour_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid hours {text:?} (expected \"HH:MM-HH:MM\", e.g. \"08:00-18:00\")");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start = minutes(start.trim()).ok_or_else(bad)?;
    let end = minutes(end.trim()).ok_or_else(bad)?;
    if start == MINUTES_PER_DAY {
        return Err(format!(
            "invalid hours {text:?}: a range cannot start at 24:00"
        ));
    }
    if start == end {
        return Err(format!(
            "empty hours {text:?}: the end is exclusive; for the whole day leave out \
             \"hours\" or write \"00:00-24:00\""
        ));
    }
    // An end of 00:00 is the coming midnight: `22:00-00:00` is `22:00-24:00`.
    let end = if end == 0 { MINUTES_PER_DAY } else { end };
    Ok((start, end))
}

fn minutes(text: &str) -> Option<u16> {
    let (hour, minute) = text.split_once(':')?;
    if hour.len() != 2 || minute.len() != 2 {
        return None;
    }
    let hour: u16 = hour.parse().ok()?;
    let minute: u16 = minute.parse().ok()?;
    match (hour, minute) {
        (24, 0) => Some(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Some(hour * 60 + minute),
        _ => None,
    }
}

/// `"2026-12-24"` or an inclusive range `"2026-12-24..2026-12-31"`.
fn date_range(text: &str) -> Result<(Date, Date), String> {
    let date = |part: &str| -> Result<Date, String> {
        part.trim().parse::<Date>().map_err(|_| {
            format!("invalid date {part:?} (expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD)")
        })
    };
    match text.split_once("..") {
        None => {
            let day = date(text)?;
            Ok((day, day))
        }
        Some((first, last)) => {
            let (first, last) = (date(first)?, date(last)?);
            if last < first {
                return Err(format!("date range {text:?} ends before it starts"));
            }
            Ok((first, last))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_and_ranges() {
        assert_eq!(day_range("mon"), Ok(0b1));
        assert_eq!(day_range("Sunday"), Ok(0b100_0000));
        assert_eq!(day_range("mon-fri"), Ok(0b001_1111));
        assert_eq!(day_range("fri-mon"), Ok(0b111_0001));
        assert!(
            day_range("tuesdy")
                .unwrap_err()
                .contains("did you mean \"tuesday\"?")
        );
    }

    #[test]
    fn hour_ranges() {
        assert_eq!(hour_range("08:00-18:00"), Ok((480, 1080)));
        assert_eq!(hour_range("22:00-06:00"), Ok((1320, 360)));
        assert_eq!(hour_range("22:00-24:00"), Ok((1320, 1440)));
        assert_eq!(hour_range("00:00-24:00"), Ok((0, 1440)));
        assert_eq!(hour_range("22:00-00:00"), Ok((1320, 1440)));
        assert!(hour_range("8-18").is_err());
        assert!(
            hour_range("08:00-08:00")
                .unwrap_err()
                .contains("empty hours")
        );
        assert!(hour_range("24:00-01:00").is_err());
        assert!(hour_range("08:60-09:00").is_err());
    }

    #[test]
    fn date_ranges() {
        let day = |text: &str| text.parse::<Date>().unwrap();
        assert_eq!(
            date_range("2026-12-24"),
            Ok((day("2026-12-24"), day("2026-12-24")))
        );
        assert_eq!(
            date_range("2026-12-24..2026-12-31"),
            Ok((day("2026-12-24"), day("2026-12-31")))
        );
        assert!(date_range("2026-12-31..2026-12-24").is_err());
        assert!(date_range("24.12.2026").is_err());
    }

    #[test]
    fn zones_come_from_the_system_or_the_bundled_database() {
        assert!(zone("Europe/Berlin").is_some());
        assert!(zone("Mars/Olympus").is_none());
        // The copy built into the binary is there whatever the host has.
        assert!(TimeZoneDatabase::bundled().get("America/New_York").is_ok());
    }
}
