//! Go's duration syntax (`300ms`, `1m30s`, `1.5h`, `10us`), parsed and printed exactly as Go's
//! `time.ParseDuration` and `Duration.String` do, because ContainerPilot configs are written in
//! it and error messages should print durations the way users wrote them.

use std::fmt;

/// A signed duration in nanoseconds, like Go's `time.Duration`. Configs may hold negative values
/// (which validation then rejects or interprets), so this is not `std::time::Duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub i64);

pub const NANOSECOND: i64 = 1;
pub const MICROSECOND: i64 = 1_000;
pub const MILLISECOND: i64 = 1_000_000;
pub const SECOND: i64 = 1_000_000_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;

impl GoDuration {
    pub fn from_secs(secs: i64) -> Option<GoDuration> {
        secs.checked_mul(SECOND).map(GoDuration)
    }

    /// Fractional seconds, rounded to the nanosecond; `None` when out of range or not finite.
    pub fn from_secs_f64(secs: f64) -> Option<GoDuration> {
        let nanos = (secs * SECOND as f64).round();
        // i64::MAX as f64 rounds up to 2^63, which is already out of range.
        (nanos.is_finite() && nanos >= i64::MIN as f64 && nanos < i64::MAX as f64)
            .then_some(GoDuration(nanos as i64))
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// The duration as `std::time::Duration`, zero when negative.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }
}

/// Why a duration string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    Invalid,
    MissingUnit,
    UnknownUnit(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Invalid => f.write_str("invalid duration"),
            DurationError::MissingUnit => f.write_str("missing unit"),
            DurationError::UnknownUnit(unit) => write!(f, "unknown unit {unit:?}"),
        }
    }
}

/// The largest magnitude of a duration: `1 << 63` nanoseconds (only as a negative one).
const LIMIT: u64 = 1 << 63;

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`.
pub fn parse(text: &str) -> Result<GoDuration, DurationError> {
    let mut s = text.as_bytes();
    let mut negative = false;
    if let Some(&c @ (b'-' | b'+')) = s.first() {
        negative = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(GoDuration(0));
    }
    if s.is_empty() {
        return Err(DurationError::Invalid);
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        total = total
            .checked_add(component(&mut s)?)
            .filter(|&v| v <= LIMIT)
            .ok_or(DurationError::Invalid)?;
    }
    if negative {
        // -(1<<63) is the one value whose magnitude does not fit in i64 positively.
        return Ok(GoDuration(0i64.wrapping_sub_unsigned(total)));
    }
    i64::try_from(total)
        .map(GoDuration)
        .map_err(|_| DurationError::Invalid)
}

/// One `<number><unit>` of a duration, in nanoseconds; `s` moves past it.
fn component(s: &mut &[u8]) -> Result<u64, DurationError> {
    if !(s[0] == b'.' || s[0].is_ascii_digit()) {
        return Err(DurationError::Invalid);
    }
    let (mut value, pre) = integer(s)?;
    let (fraction, scale, post) = if s.first() == Some(&b'.') {
        *s = &s[1..];
        fraction(s)
    } else {
        (0, 1.0, false)
    };
    if !pre && !post {
        return Err(DurationError::Invalid);
    }
    let unit = unit(s)?;
    if value > LIMIT / unit {
        return Err(DurationError::Invalid);
    }
    value *= unit;
    if fraction > 0 {
        value = value
            .checked_add((fraction as f64 * (unit as f64 / scale)) as u64)
            .filter(|&v| v <= LIMIT)
            .ok_or(DurationError::Invalid)?;
    }
    Ok(value)
}

/// The leading digits of `s` as an integer, and whether there were any.
fn integer(s: &mut &[u8]) -> Result<(u64, bool), DurationError> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut value: u64 = 0;
    for &d in &s[..digits] {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .filter(|&v| v <= LIMIT)
            .ok_or(DurationError::Invalid)?;
    }
    *s = &s[digits..];
    Ok((value, digits > 0))
}

/// The digits after a decimal point: their value, `10^n` for the `n` of them taken, and whether
/// there were any. Digits past what fits are ignored, as Go does.
fn fraction(s: &mut &[u8]) -> (u64, f64, bool) {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut fraction: u64 = 0;
    let mut scale: f64 = 1.0;
    for &d in &s[..digits] {
        match fraction
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .filter(|&v| v <= LIMIT)
        {
            Some(v) => {
                fraction = v;
                scale *= 10.0;
            }
            None => break,
        }
    }
    *s = &s[digits..];
    (fraction, scale, digits > 0)
}

/// The unit at the start of `s` (everything up to the next digit or dot), in nanoseconds.
fn unit(s: &mut &[u8]) -> Result<u64, DurationError> {
    let len = s
        .iter()
        .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
        .count();
    if len == 0 {
        return Err(DurationError::MissingUnit);
    }
    let text = String::from_utf8_lossy(&s[..len]).into_owned();
    *s = &s[len..];
    let nanos = match text.as_str() {
        "ns" => NANOSECOND,
        "us" | "µs" | "μs" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        _ => return Err(DurationError::UnknownUnit(text)),
    };
    Ok(nanos as u64)
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String`: `1h2m3.5s`, `1.5ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&go_string(self.0 < 0, u128::from(self.0.unsigned_abs())))
    }
}

/// A duration as Go's `time.Duration.String()` writes it (`1h30m0s`, `1.5s`, `300ms`): what
/// Consul parses in `DeregisterCriticalServiceAfter` and `wait`.
pub fn go_duration(d: std::time::Duration) -> String {
    go_string(false, d.as_nanos())
}

/// Go's `Duration.String` of `nanos` nanoseconds, negative or not.
fn go_string(negative: bool, nanos: u128) -> String {
    const SECOND: u128 = self::SECOND as u128;
    const MINUTE: u128 = self::MINUTE as u128;
    let sign = if negative { "-" } else { "" };
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < SECOND {
        // Below a second Go picks the largest unit that keeps a non-zero integer part.
        let (unit, precision) = if nanos < MICROSECOND as u128 {
            ("ns", 0)
        } else if nanos < MILLISECOND as u128 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        return format!("{sign}{}{unit}", fraction_text(nanos, precision));
    }
    let seconds = fraction_text(nanos % MINUTE, 9);
    let minutes = (nanos / MINUTE) % 60;
    let hours = nanos / (60 * MINUTE);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, _) => format!("{sign}{minutes}m{seconds}s"),
        _ => format!("{sign}{hours}h{minutes}m{seconds}s"),
    }
}

/// `value / 10^precision` with the trailing zeros of the fraction (and a bare dot) removed.
fn fraction_text(value: u128, precision: u32) -> String {
    let divisor = 10u128.pow(precision);
    let whole = value / divisor;
    let fraction = value % divisor;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("300ms", 300 * MILLISECOND),
            ("1m30s", 90 * SECOND),
            ("1.5h", 90 * MINUTE),
            ("10us", 10 * MICROSECOND),
            ("10µs", 10 * MICROSECOND),
            ("10μs", 10 * MICROSECOND),
            ("5ns", 5),
            ("-1s", -SECOND),
            ("+2m", 2 * MINUTE),
            (".5s", SECOND / 2),
            ("5.s", 5 * SECOND),
            (
                "1h2m3s4ms5us6ns",
                HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5_006,
            ),
            ("0.000000001s", 1),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ];
        for &(text, nanos) in cases {
            assert_eq!(parse(text), Ok(GoDuration(nanos)), "{text}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        let cases: &[(&str, DurationError)] = &[
            ("", DurationError::Invalid),
            ("-", DurationError::Invalid),
            ("s", DurationError::Invalid),
            (".s", DurationError::Invalid),
            ("xx", DurationError::Invalid),
            ("1", DurationError::MissingUnit),
            ("1.5", DurationError::MissingUnit),
            ("10", DurationError::MissingUnit),
            ("1h5", DurationError::MissingUnit),
            ("1d", DurationError::UnknownUnit("d".into())),
            ("1 s", DurationError::UnknownUnit(" s".into())),
            ("9223372036854775808ns", DurationError::Invalid),
            ("2562047h47m16.854775808s", DurationError::Invalid),
            ("99999999999999999999h", DurationError::Invalid),
        ];
        for (text, error) in cases {
            assert_eq!(parse(text).as_ref(), Err(error), "{text}");
        }
    }

    #[test]
    fn prints_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * MINUTE + 5 * SECOND, "4m5s"),
            (4 * MINUTE + 5_001 * MILLISECOND, "4m5.001s"),
            (5 * HOUR + 6 * MINUTE + 7_001 * MILLISECOND, "5h6m7.001s"),
            (8 * MINUTE + 1, "8m0.000000001s"),
            (HOUR, "1h0m0s"),
            (-SECOND, "-1s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for &(nanos, text) in cases {
            assert_eq!(GoDuration(nanos).to_string(), text, "{nanos}");
        }
    }

    #[test]
    fn std_durations_print_like_go() {
        use std::time::Duration;
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_micros(15), "15µs"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(600), "10m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3 * 3600 + 5), "3h0m5s"),
            (
                Duration::from_secs(72 * 3600 + 3 * 60) + Duration::from_millis(500),
                "72h3m0.5s",
            ),
            // Past Go's range (292 years) the same form goes on.
            (Duration::from_secs(u64::MAX), "5124095576030431h0m15s"),
        ] {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn seconds_conversions() {
        assert_eq!(GoDuration::from_secs(5), Some(GoDuration(5 * SECOND)));
        assert_eq!(GoDuration::from_secs(i64::MAX), None);
        assert_eq!(
            GoDuration::from_secs_f64(1.5),
            Some(GoDuration(1_500_000_000))
        );
        assert_eq!(GoDuration::from_secs_f64(f64::NAN), None);
        assert_eq!(GoDuration::from_secs_f64(1e300), None);
        assert_eq!(GoDuration(-5).to_std(), std::time::Duration::ZERO);
    }
}
