//! RFC 3339 timestamps without a date-time crate: the Worker only needs to print UTC
//! instants and to read `expires_at` values, and both are a few lines of civil-calendar
//! arithmetic (Howard Hinnant's algorithms).

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// `2026-06-15T12:00:00Z` for a Unix time in milliseconds (sub-seconds dropped).
pub fn format_rfc3339(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix seconds of an RFC 3339 date-time such as `2027-01-01T00:00:00Z` or
/// `2027-01-01T01:00:00.5+01:00`. Fractions are truncated. `None` if it is not one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || !text.is_ascii() {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = &text[range];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // Leap second 60 is allowed by RFC 3339 and folded into the next second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let r = rest.as_bytes();
            if r.len() != 6 || !matches!(r[0], b'+' | b'-') || r[3] != b':' {
                return None;
            }
            let hours = num(text.len() - 5..text.len() - 3)?;
            let minutes = num(text.len() - 2..text.len())?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let sign = if r[0] == b'-' { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(local - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_781_524_800_000), "2026-06-15T12:00:00Z");
        assert_eq!(format_rfc3339(951_782_400_999), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("2026-06-15T12:00:00Z"), Some(1_781_524_800));
        assert_eq!(
            parse_rfc3339("2026-06-15T14:00:00.999+02:00"),
            Some(1_781_524_800)
        );
        assert_eq!(
            parse_rfc3339("2026-06-15T07:30:00-04:30"),
            Some(1_781_524_800)
        );
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-06-15",
            "2026-06-15 12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-06-15T24:00:00Z",
            "2026-06-15T12:00:00",
            "2026-06-15T12:00:00.Z",
            "2026-06-15T12:00:00+0200",
            "+2026-06-15T12:00:00Z",
            "2026-06-15T12:00:00Zjunk",
            "２０２６-06-15T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0i64..253_402_300_799) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(secs * 1000)), Some(secs));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = parse_rfc3339(&text);
        }
    }
}
