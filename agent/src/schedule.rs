//! Cron schedules for the agent's scheduled scans.
//!
//! Why cron: operators already know it. A nightly full scan is `0 3 * * *` in every crontab
//! they have written, so the agent takes the same five fields (minute hour day-of-month month
//! day-of-week) and the usual macros (`@daily`, `@weekly`, …) instead of inventing a format.
//!
//! Semantics follow Vixie cron, the cron most Linux distributions ship (cronie is a fork):
//!
//! - A field counts as unrestricted when it starts with `*` (so `*/2` does too). When neither
//!   day-of-month nor day-of-week is, a day matches if *either* matches (`0 0 1,15 * mon` is the
//!   1st, the 15th and every Monday); otherwise both must match.
//! - Daylight saving: a job with a fixed minute and hour (`30 2 * * *`) fires once per day of
//!   wall-clock time: a time skipped by a jump forward fires at the jump, a time repeated by a
//!   jump back fires on its first occurrence only. A job whose minute or hour starts with `*`
//!   (`*/15 * * * *`, `@hourly`) follows real time: it fires in both copies of a repeated hour
//!   and not at all in a skipped one.
//! - A step needs `*` or a range (`*/5`, `10-50/20`); `5/10` is rejected rather than guessed.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, Zoned};

/// How far [`Schedule::next_after`] looks. The Gregorian calendar repeats every 400 years
/// (146 097 days, a whole number of weeks), so an expression with no match in 400 years has
/// none at all (`0 0 31 2 *`); a shorter horizon would wrongly give up on rare but real ones
/// (`0 0 29 2 *` from March 2096 fires in 2104). The search skips non-matching months, so
/// even the full horizon takes well under a millisecond.
const HORIZON_YEARS: i32 = 400;

/// One of the five fields of a cron expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    /// The values a field accepts; day-of-week takes 7 as a second Sunday.
    fn bounds(self) -> (u8, u8) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// Names usable in place of numbers, lowercase; index + offset is the value.
    fn names(self) -> (&'static [&'static str], u8) {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        match self {
            Field::Month => (&MONTHS, 1),
            Field::DayOfWeek => (&DAYS, 0),
            _ => (&[], 0),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

/// What is wrong with one element of a field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldProblem {
    #[error("empty element")]
    Empty,
    #[error("{0:?} is not a number or a name")]
    NotANumber(String),
    #[error("{value} is outside {min}-{max}")]
    OutOfRange { value: u32, min: u8, max: u8 },
    #[error("range {start}-{end} runs backwards")]
    Backwards { start: u8, end: u8 },
    #[error("step {0:?} is not a number from 1 up")]
    BadStep(String),
    #[error("a step needs `*` or a range before it, as in `*/5` or `0-30/5`")]
    StepWithoutRange,
}

/// Why a cron expression did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    #[error("empty cron expression")]
    Empty,
    #[error(
        "cron expression {text:?} has {found} fields; \
         expected 5 (minute hour day-of-month month day-of-week) or a macro such as @daily"
    )]
    FieldCount { text: String, found: usize },
    #[error(
        "unknown cron macro {0:?}; expected @hourly, @daily, @midnight, @weekly, @monthly, \
         @yearly or @annually"
    )]
    UnknownMacro(String),
    /// `text` is the offending comma-separated element of the field, e.g. `1-32`.
    #[error("bad {field} {text:?} in cron expression: {problem}")]
    Field {
        field: Field,
        text: String,
        problem: FieldProblem,
    },
}

/// A parsed cron expression. `Display` gives back the expression (fields separated by one
/// space, macros as written), which parses to an equal `Schedule`; serde reads and writes it as
/// that string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule {
    source: String,
    /// Bit n set: value n matches. Day-of-week uses 0-6 (Sunday 0) after folding 7 into 0.
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Field starts with `*`: Vixie's test for the day-of-month/day-of-week rule and for which
    /// jobs follow real time across daylight-saving changes.
    minute_star: bool,
    hour_star: bool,
    dom_star: bool,
    dow_star: bool,
}

impl Schedule {
    /// Parses a five-field cron expression or a macro (`@hourly`, `@daily`, `@midnight`,
    /// `@weekly`, `@monthly`, `@yearly`, `@annually`).
    pub fn parse(s: &str) -> Result<Schedule, ScheduleError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if text.starts_with('@') {
            let fields = match text.to_ascii_lowercase().as_str() {
                "@hourly" => "0 * * * *",
                "@daily" | "@midnight" => "0 0 * * *",
                "@weekly" => "0 0 * * 0",
                "@monthly" => "0 0 1 * *",
                "@yearly" | "@annually" => "0 0 1 1 *",
                _ => return Err(ScheduleError::UnknownMacro(text.to_string())),
            };
            let mut schedule = Schedule::parse_fields(fields)?;
            schedule.source = text.to_ascii_lowercase();
            return Ok(schedule);
        }
        Schedule::parse_fields(text)
    }

    fn parse_fields(text: &str) -> Result<Schedule, ScheduleError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = parts[..] else {
            return Err(ScheduleError::FieldCount {
                text: text.to_string(),
                found: parts.len(),
            });
        };
        let mut bits = [0u64; 5];
        let fields = Field::ALL.into_iter().zip([minute, hour, dom, month, dow]);
        for ((field, part), slot) in fields.zip(&mut bits) {
            *slot = parse_field(field, part)?;
        }
        // 7 is Sunday too.
        let dow_bits = (bits[4] | (bits[4] >> 7)) & 0x7f;
        Ok(Schedule {
            source: parts.join(" "),
            minute: bits[0],
            hour: bits[1],
            dom: bits[2],
            month: bits[3],
            dow: dow_bits,
            minute_star: minute.starts_with('*'),
            hour_star: hour.starts_with('*'),
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
        })
    }

    /// Whether the expression matches this wall-clock minute (seconds are ignored).
    pub fn matches(&self, dt: DateTime) -> bool {
        has(self.minute, dt.minute())
            && has(self.hour, dt.hour())
            && has(self.month, dt.month())
            && self.day_matches(dt.date())
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.dom, date.day());
        let dow = has(self.dow, date.weekday().to_sunday_zero_offset());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first time strictly after `t`, in `t`'s time zone at second 0, when the schedule
    /// fires; `None` if it never does (`0 0 31 2 *`) or only beyond the year 9999. Daylight
    /// saving changes are handled as described in the module docs.
    pub fn next_after(&self, t: &Zoned) -> Option<Zoned> {
        let tz = t.time_zone();
        let now = t.timestamp();
        let start = t.datetime();
        let last_year = (i32::from(start.year()) + HORIZON_YEARS).min(9999);
        let ts = if self.minute_star || self.hour_star {
            // Real time: every instant whose local time matches. A civil time in a fold has two
            // instants; each search maps it to one of them, and each mapping is increasing, so
            // the answer is the smaller of the two searches.
            let early = self.first_after(start, last_year, now, |dt| real(tz, dt, false));
            // From inside the first pass of a fold, civil times before `start` still have a
            // later instant ahead of `t`: start where the second pass puts `t`.
            let late_start = match tz.to_ambiguous_timestamp(start).offset() {
                AmbiguousOffset::Fold { after, .. } => after.to_datetime(now).min(start),
                _ => start,
            };
            let late = self.first_after(late_start, last_year, now, |dt| real(tz, dt, true));
            match (early, late) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        } else {
            // Wall-clock time: each matching civil time fires once. This mapping never goes
            // backwards and maps `start` to `t` or earlier, so the search starts at `start`.
            self.first_after(start, last_year, now, |dt| wall_clock(tz, dt))
        }?;
        Some(ts.to_zoned(tz.clone()))
    }

    /// The first matching civil time after `from` whose instant (by `resolve`, which must not
    /// decrease with its argument) is after `now`.
    fn first_after(
        &self,
        from: DateTime,
        last_year: i32,
        now: Timestamp,
        resolve: impl Fn(DateTime) -> Option<Timestamp>,
    ) -> Option<Timestamp> {
        let mut civil = from;
        loop {
            civil = self.next_civil(civil, last_year)?;
            if let Some(ts) = resolve(civil) {
                if ts > now {
                    return Some(ts);
                }
            }
        }
    }

    /// The first matching civil minute strictly after `after`, up to the end of `last_year`.
    fn next_civil(&self, after: DateTime, last_year: i32) -> Option<DateTime> {
        let mut y = i32::from(after.year());
        let mut mo = after.month();
        let mut d = after.day();
        let mut h = after.hour();
        let mut mi = after.minute() + 1;
        loop {
            // Carry overflowed fields upwards (month skips leave d = 1, h = mi = 0).
            if mi > 59 {
                mi = 0;
                h += 1;
            }
            if h > 23 {
                h = 0;
                d += 1;
            }
            if mo > 12 {
                mo = 1;
                y += 1;
            }
            if d > days_in_month(y, mo) {
                d = 1;
                mo += 1;
                if mo > 12 {
                    mo = 1;
                    y += 1;
                }
            }
            if y > last_year {
                return None;
            }
            if !has(self.month, mo) {
                (mo, d, h, mi) = (mo + 1, 1, 0, 0);
                continue;
            }
            let date = Date::new(i16::try_from(y).ok()?, mo, d).ok()?;
            if !self.day_matches(date) {
                (d, h, mi) = (d + 1, 0, 0);
                continue;
            }
            match next_bit(self.hour, h) {
                None => {
                    (d, h, mi) = (d + 1, 0, 0);
                    continue;
                }
                Some(next) if next != h => (h, mi) = (next, 0),
                Some(_) => {}
            }
            match next_bit(self.minute, mi) {
                None => {
                    (h, mi) = (h + 1, 0);
                    continue;
                }
                Some(next) => mi = next,
            }
            return Some(date.at(h, mi, 0, 0));
        }
    }
}

/// Fixed-time jobs: a civil time in a gap fires when the gap ends (the jump), one in a fold
/// fires at its first occurrence.
fn wall_clock(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, after } => {
            let a = before.to_timestamp(dt).ok()?;
            let b = after.to_timestamp(dt).ok()?;
            Some(a.min(b))
        }
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the jump, `dt` is an instant before the jump, so the
            // next transition from there is the jump itself.
            let probe = after.to_timestamp(dt).ok()?;
            tz.following(probe).next().map(|tr| tr.timestamp())
        }
    }
}

/// Real-time jobs: a civil time in a gap never happens; one in a fold happens twice, and
/// `later` picks which occurrence.
fn real(tz: &TimeZone, dt: DateTime, later: bool) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, after } => {
            let a = before.to_timestamp(dt).ok()?;
            let b = after.to_timestamp(dt).ok()?;
            Some(if later { a.max(b) } else { a.min(b) })
        }
        AmbiguousOffset::Gap { .. } => None,
    }
}

fn has(bits: u64, value: i8) -> bool {
    u32::try_from(value)
        .ok()
        .and_then(|v| bits.checked_shr(v))
        .is_some_and(|b| b & 1 == 1)
}

/// The smallest set bit at `from` or above, if any.
fn next_bit(bits: u64, from: i8) -> Option<i8> {
    let from = u32::try_from(from).ok()?;
    let rest = bits.checked_shr(from)?.checked_shl(from)?;
    (rest != 0).then(|| rest.trailing_zeros() as i8)
}

fn days_in_month(year: i32, month: i8) -> i8 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses one field (a comma-separated list) into a bit set.
fn parse_field(field: Field, text: &str) -> Result<u64, ScheduleError> {
    let mut bits = 0u64;
    for element in text.split(',') {
        let error = |problem| ScheduleError::Field {
            field,
            text: element.to_string(),
            problem,
        };
        bits |= parse_element(field, element).map_err(error)?;
    }
    Ok(bits)
}

/// `*`, `n`, `a-b`, each optionally followed by `/step` (not after a single `n`).
fn parse_element(field: Field, element: &str) -> Result<u64, FieldProblem> {
    if element.is_empty() {
        return Err(FieldProblem::Empty);
    }
    let (range, step) = match element.split_once('/') {
        Some((range, step)) => {
            let n = step
                .parse::<u8>()
                .ok()
                .filter(|n| *n > 0 && step.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| FieldProblem::BadStep(step.to_string()))?;
            (range, Some(n))
        }
        None => (element, None),
    };
    let (min, max) = field.bounds();
    let (start, end) = if range == "*" {
        (min, max)
    } else if let Some((a, b)) = range.split_once('-') {
        let (a, b) = (parse_value(field, a)?, parse_value(field, b)?);
        if a > b {
            return Err(FieldProblem::Backwards { start: a, end: b });
        }
        (a, b)
    } else {
        if step.is_some() {
            return Err(FieldProblem::StepWithoutRange);
        }
        let v = parse_value(field, range)?;
        (v, v)
    };
    let step = usize::from(step.unwrap_or(1));
    Ok((start..=end)
        .step_by(step)
        .fold(0u64, |bits, v| bits | (1u64 << v)))
}

fn parse_value(field: Field, text: &str) -> Result<u8, FieldProblem> {
    let (min, max) = field.bounds();
    let value = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u32>()
            .map_err(|_| FieldProblem::NotANumber(text.to_string()))?
    } else {
        let (names, offset) = field.names();
        let index = names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
            .ok_or_else(|| FieldProblem::NotANumber(text.to_string()))?;
        u32::from(offset) + index as u32
    };
    match u8::try_from(value) {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(FieldProblem::OutOfRange { value, min, max }),
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse(s)
    }
}

impl TryFrom<String> for Schedule {
    type Error = ScheduleError;

    fn try_from(s: String) -> Result<Schedule, ScheduleError> {
        Schedule::parse(&s)
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        s.source
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    /// New York's rules as a POSIX TZ string, so the tests need no tz database.
    const NEW_YORK: &str = "EST5EDT,M3.2.0,M11.1.0";

    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Zoned {
        date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
    }

    fn next(expr: &str, t: &Zoned) -> Zoned {
        Schedule::parse(expr).unwrap().next_after(t).unwrap()
    }

    /// The next `n` fire times after `t`, as civil times.
    fn fires(expr: &str, t: &Zoned, n: usize) -> Vec<String> {
        let s = Schedule::parse(expr).unwrap();
        let mut t = t.clone();
        (0..n)
            .map(|_| {
                t = s.next_after(&t).unwrap();
                t.datetime().to_string()
            })
            .collect()
    }

    fn error(expr: &str) -> ScheduleError {
        Schedule::parse(expr).unwrap_err()
    }

    #[test]
    fn every_minute_is_strictly_after_and_drops_seconds() {
        let t = date(2025, 6, 1)
            .at(10, 20, 30, 5)
            .to_zoned(TimeZone::UTC)
            .unwrap();
        assert_eq!(next("* * * * *", &t), utc(2025, 6, 1, 10, 21));
        let on_the_minute = utc(2025, 6, 1, 10, 20);
        assert_eq!(next("* * * * *", &on_the_minute), utc(2025, 6, 1, 10, 21));
        assert_eq!(next("20 10 * * *", &on_the_minute), utc(2025, 6, 2, 10, 20));
    }

    #[test]
    fn numbers_lists_ranges_and_steps() {
        let t = utc(2025, 6, 1, 0, 0);
        assert_eq!(
            fires("5,10 * * * *", &t, 3),
            [
                "2025-06-01T00:05:00",
                "2025-06-01T00:10:00",
                "2025-06-01T01:05:00"
            ]
        );
        assert_eq!(
            fires("58-59 22-23 * * *", &t, 3),
            [
                "2025-06-01T22:58:00",
                "2025-06-01T22:59:00",
                "2025-06-01T23:58:00"
            ]
        );
        assert_eq!(
            fires("*/20 3 * * *", &t, 4),
            [
                "2025-06-01T03:00:00",
                "2025-06-01T03:20:00",
                "2025-06-01T03:40:00",
                "2025-06-02T03:00:00"
            ]
        );
        assert_eq!(
            fires("10-50/20 */12 * * *", &t, 4),
            [
                "2025-06-01T00:10:00",
                "2025-06-01T00:30:00",
                "2025-06-01T00:50:00",
                "2025-06-01T12:10:00"
            ]
        );
        // A step larger than the range keeps only its start; lists mix forms.
        assert_eq!(
            fires("0 1-3/5,7,20-23/2 * * *", &t, 4),
            [
                "2025-06-01T01:00:00",
                "2025-06-01T07:00:00",
                "2025-06-01T20:00:00",
                "2025-06-01T22:00:00"
            ]
        );
    }

    #[test]
    fn month_and_weekday_names() {
        // 2025-06-01 is a Sunday.
        let t = utc(2025, 6, 1, 12, 0);
        assert_eq!(
            fires("0 9 * * Mon-Wed,FRI", &t, 4),
            [
                "2025-06-02T09:00:00",
                "2025-06-03T09:00:00",
                "2025-06-04T09:00:00",
                "2025-06-06T09:00:00"
            ]
        );
        assert_eq!(
            fires("0 0 1 jan,jul-aug *", &t, 3),
            [
                "2025-07-01T00:00:00",
                "2025-08-01T00:00:00",
                "2026-01-01T00:00:00"
            ]
        );
        assert_eq!(
            Schedule::parse("0 0 * mar-may mon").unwrap(),
            Schedule::parse("0 0 * 3-5 1")
                .unwrap()
                .with_source("0 0 * mar-may mon")
        );
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        let t = utc(2025, 6, 2, 0, 0);
        let sunday = utc(2025, 6, 8, 0, 0);
        assert_eq!(next("0 0 * * 0", &t), sunday);
        assert_eq!(next("0 0 * * 7", &t), sunday);
        assert_eq!(next("0 0 * * sun", &t), sunday);
        assert_eq!(
            fires("0 0 * * 5-7", &t, 3),
            [
                "2025-06-06T00:00:00",
                "2025-06-07T00:00:00",
                "2025-06-08T00:00:00"
            ]
        );
    }

    #[test]
    fn macros() {
        let t = date(2025, 6, 4)
            .at(10, 20, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap(); // a Wednesday
        assert_eq!(next("@hourly", &t), utc(2025, 6, 4, 11, 0));
        assert_eq!(next("@daily", &t), utc(2025, 6, 5, 0, 0));
        assert_eq!(next("@midnight", &t), utc(2025, 6, 5, 0, 0));
        assert_eq!(next("@weekly", &t), utc(2025, 6, 8, 0, 0));
        assert_eq!(next("@monthly", &t), utc(2025, 7, 1, 0, 0));
        assert_eq!(next("@yearly", &t), utc(2026, 1, 1, 0, 0));
        assert_eq!(next("@annually", &t), utc(2026, 1, 1, 0, 0));
        assert_eq!(Schedule::parse(" @Daily ").unwrap().to_string(), "@daily");
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // The 13th or any Friday: 2025-06-06 is a Friday, the 13th is one too.
        let t = utc(2025, 6, 1, 0, 0);
        assert_eq!(
            fires("0 0 13 * fri", &t, 4),
            [
                "2025-06-06T00:00:00",
                "2025-06-13T00:00:00",
                "2025-06-20T00:00:00",
                "2025-06-27T00:00:00"
            ]
        );
        assert_eq!(
            fires("0 0 1,15 * mon", &t, 4),
            [
                "2025-06-02T00:00:00",
                "2025-06-09T00:00:00",
                "2025-06-15T00:00:00",
                "2025-06-16T00:00:00"
            ]
        );
        // One side starting with `*` makes it AND, as in Vixie cron: odd days that are Mondays.
        assert_eq!(
            fires("0 0 */2 * mon", &t, 2),
            ["2025-06-09T00:00:00", "2025-06-23T00:00:00"]
        );
        // Only day-of-week restricted.
        assert_eq!(next("0 0 * * fri", &t), utc(2025, 6, 6, 0, 0));
    }

    #[test]
    fn month_and_year_rollover() {
        assert_eq!(
            next("59 23 31 * *", &utc(2025, 4, 1, 0, 0)),
            utc(2025, 5, 31, 23, 59)
        );
        assert_eq!(
            next("0 0 * * *", &utc(2025, 12, 31, 23, 59)),
            utc(2026, 1, 1, 0, 0)
        );
        assert_eq!(
            next("30 4 1 1 *", &utc(2025, 1, 1, 4, 30)),
            utc(2026, 1, 1, 4, 30)
        );
        assert_eq!(
            next("0 0 30 * *", &utc(2025, 1, 30, 0, 1)),
            utc(2025, 3, 30, 0, 0)
        );
    }

    #[test]
    fn leap_day() {
        assert_eq!(
            next("0 0 29 2 *", &utc(2025, 1, 1, 0, 0)),
            utc(2028, 2, 29, 0, 0)
        );
        assert_eq!(
            next("0 0 29 2 *", &utc(2028, 2, 29, 0, 0)),
            utc(2032, 2, 29, 0, 0)
        );
        // 2100 is not a leap year: eight years between two February 29ths.
        assert_eq!(
            next("0 0 29 feb *", &utc(2096, 3, 1, 0, 0)),
            utc(2104, 2, 29, 0, 0)
        );
    }

    #[test]
    fn impossible_expressions_end() {
        let t = utc(2025, 1, 1, 0, 0);
        let started = std::time::Instant::now();
        for expr in [
            "0 0 31 2 *",
            "0 0 30 feb *",
            "0 0 31 4,6,9,11 *",
            "0 0 31 2 */2",
        ] {
            assert_eq!(
                Schedule::parse(expr).unwrap().next_after(&t),
                None,
                "{expr}"
            );
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Near the end of jiff's range there is simply no next time.
        assert_eq!(
            Schedule::parse("0 0 1 1 *")
                .unwrap()
                .next_after(&utc(9999, 6, 1, 0, 0)),
            None
        );
    }

    #[test]
    fn keeps_the_time_zone() {
        let tz = TimeZone::fixed(jiff::tz::offset(9));
        let t = date(2025, 6, 1)
            .at(23, 0, 0, 0)
            .to_zoned(tz.clone())
            .unwrap();
        let n = next("0 3 * * *", &t);
        assert_eq!(n.time_zone(), &tz);
        assert_eq!(n.datetime(), date(2025, 6, 2).at(3, 0, 0, 0));
    }

    #[test]
    fn fixed_time_in_a_skipped_hour_fires_at_the_jump() {
        let tz = TimeZone::posix(NEW_YORK).unwrap();
        // 2025-03-09: 02:00 EST jumps to 03:00 EDT.
        let t = date(2025, 3, 9)
            .at(0, 0, 0, 0)
            .to_zoned(tz.clone())
            .unwrap();
        let s = Schedule::parse("30 2 * * *").unwrap();
        let first = s.next_after(&t).unwrap();
        assert_eq!(first.datetime(), date(2025, 3, 9).at(3, 0, 0, 0));
        assert_eq!(first.offset(), jiff::tz::offset(-4));
        assert_eq!(first.time_zone(), &tz);
        let second = s.next_after(&first).unwrap();
        assert_eq!(second.datetime(), date(2025, 3, 10).at(2, 30, 0, 0));
        // Times on both sides of the gap are untouched.
        assert_eq!(next("59 1 * * *", &t).offset(), jiff::tz::offset(-5));
        assert_eq!(
            next("0 3 * * *", &t).timestamp(),
            first.timestamp(),
            "03:00 EDT is the jump itself"
        );
    }

    #[test]
    fn fixed_time_in_a_repeated_hour_fires_once() {
        let tz = TimeZone::posix(NEW_YORK).unwrap();
        // 2025-11-02: 02:00 EDT falls back to 01:00 EST; 01:00-01:59 happens twice.
        let t = date(2025, 11, 2)
            .at(0, 0, 0, 0)
            .to_zoned(tz.clone())
            .unwrap();
        let s = Schedule::parse("30 1 * * *").unwrap();
        let first = s.next_after(&t).unwrap();
        assert_eq!(first.datetime(), date(2025, 11, 2).at(1, 30, 0, 0));
        assert_eq!(first.offset(), jiff::tz::offset(-4));
        let second = s.next_after(&first).unwrap();
        assert_eq!(second.datetime(), date(2025, 11, 3).at(1, 30, 0, 0));
        // Asked during the second 01:10, the 01:30 of today has already happened.
        let repeat = tz
            .to_ambiguous_zoned(date(2025, 11, 2).at(1, 10, 0, 0))
            .later()
            .unwrap();
        assert_eq!(repeat.offset(), jiff::tz::offset(-5));
        assert_eq!(s.next_after(&repeat).unwrap(), second);
    }

    #[test]
    fn wildcard_jobs_follow_real_time_across_dst() {
        let tz = TimeZone::posix(NEW_YORK).unwrap();
        let fall = date(2025, 11, 2)
            .at(0, 50, 0, 0)
            .to_zoned(tz.clone())
            .unwrap();
        let s = Schedule::parse("*/30 * * * *").unwrap();
        let mut t = fall;
        let mut seen = Vec::new();
        for _ in 0..6 {
            t = s.next_after(&t).unwrap();
            seen.push(t.strftime("%H:%M%:z").to_string());
        }
        assert_eq!(
            seen,
            [
                "01:00-04:00",
                "01:30-04:00",
                "01:00-05:00",
                "01:30-05:00",
                "02:00-05:00",
                "02:30-05:00"
            ]
        );
        // From inside the first pass, the second pass comes next.
        let first_pass = date(2025, 11, 2)
            .at(1, 45, 0, 0)
            .to_zoned(tz.clone())
            .unwrap();
        assert_eq!(first_pass.offset(), jiff::tz::offset(-4));
        let n = next("0 * * * *", &first_pass);
        assert_eq!(n.strftime("%H:%M%:z").to_string(), "01:00-05:00");

        let spring = date(2025, 3, 9)
            .at(1, 15, 0, 0)
            .to_zoned(tz.clone())
            .unwrap();
        assert_eq!(
            fires("*/30 * * * *", &spring, 3),
            [
                "2025-03-09T01:30:00",
                "2025-03-09T03:00:00",
                "2025-03-09T03:30:00"
            ]
        );
        // A minute wildcard inside the skipped hour does not run that day.
        assert_eq!(
            next("*/15 2 * * *", &spring).datetime(),
            date(2025, 3, 10).at(2, 0, 0, 0)
        );
    }

    #[test]
    fn display_from_str_and_serde() {
        let s: Schedule = "  0   3 * *\tmon-fri ".parse().unwrap();
        assert_eq!(s.to_string(), "0 3 * * mon-fri");
        assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#""0 3 * * mon-fri""#);
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
        let bad = serde_json::from_str::<Schedule>(r#""0 3 * *""#).unwrap_err();
        assert!(bad.to_string().contains("has 4 fields"), "{bad}");
        #[derive(serde::Deserialize)]
        struct Config {
            scan: Schedule,
        }
        let c: Config = toml::from_str("scan = \"@weekly\"").unwrap();
        assert_eq!(c.scan.to_string(), "@weekly");
    }

    #[test]
    fn errors_name_the_field_and_the_text() {
        let field = |expr| match error(expr) {
            ScheduleError::Field {
                field,
                text,
                problem,
            } => (field, text, problem),
            other => panic!("{expr}: {other:?}"),
        };
        assert_eq!(
            field("0 0 1-32 * *"),
            (
                Field::DayOfMonth,
                "1-32".into(),
                FieldProblem::OutOfRange {
                    value: 32,
                    min: 1,
                    max: 31
                }
            )
        );
        assert_eq!(
            error("0 0 1-32 * *").to_string(),
            r#"bad day-of-month "1-32" in cron expression: 32 is outside 1-31"#
        );
        assert_eq!(field("60 * * * *").0, Field::Minute);
        assert_eq!(field("* 24 * * *").0, Field::Hour);
        assert_eq!(
            field("* * * 0 *"),
            (
                Field::Month,
                "0".into(),
                FieldProblem::OutOfRange {
                    value: 0,
                    min: 1,
                    max: 12
                }
            )
        );
        assert_eq!(
            field("* * * * 8").2,
            FieldProblem::OutOfRange {
                value: 8,
                min: 0,
                max: 7
            }
        );
        assert_eq!(
            field("* * * * mon,fry"),
            (
                Field::DayOfWeek,
                "fry".into(),
                FieldProblem::NotANumber("fry".into())
            )
        );
        // Names belong to their own field only.
        assert_eq!(field("* * * mon *").0, Field::Month);
        assert_eq!(field("* * * * jan").0, Field::DayOfWeek);
        assert_eq!(
            field("5-1 * * * *").2,
            FieldProblem::Backwards { start: 5, end: 1 }
        );
        assert_eq!(field("*/0 * * * *").2, FieldProblem::BadStep("0".into()));
        assert_eq!(field("*/x * * * *").2, FieldProblem::BadStep("x".into()));
        assert_eq!(field("*/+5 * * * *").2, FieldProblem::BadStep("+5".into()));
        assert_eq!(field("5/10 * * * *").2, FieldProblem::StepWithoutRange);
        assert_eq!(field("1,,2 * * * *").2, FieldProblem::Empty);
        assert_eq!(field("-1 * * * *").2, FieldProblem::NotANumber("".into()));
        assert_eq!(
            field("99999999999 * * * *").2,
            FieldProblem::NotANumber("99999999999".into())
        );
        assert_eq!(
            error("0 0 * *"),
            ScheduleError::FieldCount {
                text: "0 0 * *".into(),
                found: 4
            }
        );
        assert_eq!(
            error("0 0 * * * *"),
            ScheduleError::FieldCount {
                text: "0 0 * * * *".into(),
                found: 6
            }
        );
        assert_eq!(error("   "), ScheduleError::Empty);
        assert_eq!(
            error("@reboot"),
            ScheduleError::UnknownMacro("@reboot".into())
        );
        assert!(error("@reboot").to_string().contains("@daily"));
    }

    impl Schedule {
        fn with_source(mut self, source: &str) -> Schedule {
            self.source = source.to_string();
            self
        }
    }

    fn field_text(min: u8, max: u8) -> impl Strategy<Value = String> {
        let value = min..=max;
        let range = (value.clone(), value.clone()).prop_map(|(a, b)| (a.min(b), a.max(b)));
        prop_oneof![
            // Often unrestricted, so that many cases fire soon and get the brute-force check.
            3 => Just("*".to_string()),
            1 => (1u8..=max.max(2)).prop_map(|n| format!("*/{n}")),
            1 => value.clone().prop_map(|v| v.to_string()),
            1 => range.clone().prop_map(|(a, b)| format!("{a}-{b}")),
            1 => (range, 1u8..10).prop_map(|((a, b), n)| format!("{a}-{b}/{n}")),
            1 => proptest::collection::vec(value, 1..4)
                .prop_map(|vs| vs.iter().map(u8::to_string).collect::<Vec<_>>().join(",")),
        ]
    }

    fn expression() -> impl Strategy<Value = String> {
        (
            field_text(0, 59),
            field_text(0, 23),
            field_text(1, 31),
            field_text(1, 12),
            field_text(0, 7),
        )
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
    }

    fn zone() -> impl Strategy<Value = TimeZone> {
        prop_oneof![
            Just(TimeZone::UTC),
            Just(TimeZone::posix(NEW_YORK).unwrap()),
            // Southern hemisphere and a half-hour DST shift.
            Just(TimeZone::posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0").unwrap()),
            Just(TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn next_after_is_later_and_matches(
            expr in expression(),
            secs in 946_684_800i64..2_208_988_800, // 2000..2040
            tz in zone(),
        ) {
            let s = Schedule::parse(&expr).unwrap();
            prop_assert_eq!(Schedule::parse(&s.to_string()).unwrap(), s.clone());
            let t = Timestamp::from_second(secs).unwrap().to_zoned(tz.clone());
            let Some(n) = s.next_after(&t) else {
                // Only day-of-month/month combinations can be impossible.
                prop_assert!(!s.dom_star);
                return Ok(());
            };
            prop_assert!(n > t, "{} -> {}", t, n);
            prop_assert_eq!(n.second(), 0);
            prop_assert_eq!(n.subsec_nanosecond(), 0);
            prop_assert_eq!(n.time_zone(), &tz);
            let at_jump = tz
                .preceding(n.timestamp().checked_add(jiff::SignedDuration::from_secs(1)).unwrap())
                .next()
                .is_some_and(|tr| tr.timestamp() == n.timestamp());
            prop_assert!(
                s.matches(n.datetime()) || at_jump,
                "{} -> {} does not match {}", t, n, expr
            );
            // Nothing in between matches in real time (when that is cheap to check). Fixed-time
            // jobs may fire at a jump or skip a repeated hour, so only wildcard jobs qualify.
            let wildcard = s.minute_star || s.hour_star;
            if (wildcard || tz == TimeZone::UTC) && n.timestamp().as_second() - secs < 3 * 86_400 {
                let mut m = secs - secs.rem_euclid(60) + 60;
                while m < n.timestamp().as_second() {
                    let dt = Timestamp::from_second(m).unwrap().to_zoned(tz.clone()).datetime();
                    prop_assert!(!s.matches(dt), "{} matches {} before {}", dt, expr, n);
                    m += 60;
                }
            }
        }
    }
}
