//! Dates and UTC timestamps written in `range` bounds, as microseconds since 2000-01-01 00:00
//! UTC (the unit `grant_core::key::time_bound` converts from).

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (Howard Hinnant's
/// `days_from_civil`, howardhinnant.github.io/date_algorithms.html).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(text: &str, what: &str, range: std::ops::RangeInclusive<i64>) -> Result<i64, String> {
    let v: i64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a {what}"))?;
    if !text.bytes().all(|b| b.is_ascii_digit()) || !range.contains(&v) {
        return Err(format!("`{text}` is not a {what}"));
    }
    Ok(v)
}

/// `YYYY-MM-DD`, optionally followed by `T` (or a space) `HH:MM[:SS[.fraction]]` and `Z` or
/// `+00:00`, as microseconds since 2000-01-01 00:00 UTC.
pub(crate) fn micros_since_2000(text: &str) -> Result<i64, String> {
    let (date, time) = match text.find(['T', ' ']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err("the date is not YYYY-MM-DD".to_owned());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err("the date is not YYYY-MM-DD".to_owned());
    }
    let (y, m) = (number(y, "year", 0..=9999)?, number(m, "month", 1..=12)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let d = number(d, "day of that month", 1..=month_days[(m - 1) as usize])?;
    let days = days_from_civil(y, m, d) - days_from_civil(2000, 1, 1);
    let mut micros = days * 86_400_000_000;
    if let Some(time) = time {
        let time = time
            .strip_suffix('Z')
            .or_else(|| time.strip_suffix("+00:00"))
            .ok_or("a timestamp bound is in UTC: end it with `Z`")?;
        let (clock, fraction) = match time.split_once('.') {
            Some((c, f)) => (c, Some(f)),
            None => (time, None),
        };
        let fields: Vec<&str> = clock.split(':').collect();
        let (h, mi, s) = match fields.as_slice() {
            [h, mi] => (*h, *mi, "00"),
            [h, mi, s] => (*h, *mi, *s),
            _ => return Err("the time is not HH:MM[:SS]".to_owned()),
        };
        let h = number(h, "hour", 0..=23)?;
        let mi = number(mi, "minute", 0..=59)?;
        let s = number(s, "second", 0..=59)?;
        micros += ((h * 60 + mi) * 60 + s) * 1_000_000;
        if let Some(f) = fraction {
            if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err("the fraction of a second has 1 to 6 digits".to_owned());
            }
            micros += f.parse::<i64>().unwrap_or(0) * 10_i64.pow(6 - f.len() as u32);
        }
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::micros_since_2000;

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        const DAY: i64 = 86_400_000_000;
        assert_eq!(micros_since_2000("2000-01-01"), Ok(0));
        assert_eq!(micros_since_2000("2000-01-02"), Ok(DAY));
        assert_eq!(micros_since_2000("1999-12-31"), Ok(-DAY));
        assert_eq!(micros_since_2000("2025-03-01"), Ok(9191 * DAY));
        assert_eq!(micros_since_2000("2000-01-01T00:00:01.5Z"), Ok(1_500_000));
        assert_eq!(
            micros_since_2000("2000-01-01 06:00+00:00"),
            Ok(6 * 3_600_000_000)
        );
        assert!(micros_since_2000("2025-02-29").is_err());
        assert!(micros_since_2000("2025-1-01").is_err());
        assert!(micros_since_2000("2025-01-01T10:00:00+02:00").is_err());
    }
}
