//! Go duration strings (`"30s"`, `"1h30m"`, `"1.5h"`, `"300ms"`), the format Terraform users
//! already know from `timeouts` blocks of Go providers.
//!
//! This module only converts between text and [`std::time::Duration`]; it does not decide what a
//! duration means (timeouts, intervals): that belongs to the caller. Negative durations are
//! rejected because nothing in the provider can wait a negative time.

use std::time::Duration;

/// The sentence every parse error ends with: what the accepted format looks like.
const FORMAT_HINT: &str =
    "use a number with a unit such as \"30s\", \"10m\" or \"1h30m\" (units: ns, us, ms, s, m, h)";

/// Largest duration Go can represent (`math.MaxInt64` nanoseconds, about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

fn err(s: &str, why: &str) -> String {
    format!("{s:?} is not a duration ({why}): {FORMAT_HINT}")
}

/// Parses a Go duration string: a sequence of decimal numbers, each with an optional fraction
/// and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `"2h45m30.5s"`. `"0"` alone needs no
/// unit. A leading `+` is accepted as in Go; a leading `-` is rejected.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(err(s, "it is empty"));
    }
    let mut rest = trimmed;
    if let Some(r) = rest.strip_prefix('-') {
        if r == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(err(s, "it is negative"));
    }
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err(s, "it has no number"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, after) = term(s, rest)?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(|| err(s, "it is too long"))?;
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err(s, "it is too long"))?;
    // The remainder is below 10^9, so it fits a u32.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// One `<number>[.<fraction>]<unit>` term at the start of `rest` (of the whole input `s`, for
/// messages): its nanoseconds and what follows it.
fn term<'a>(s: &str, rest: &'a str) -> Result<(u128, &'a str), String> {
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int_part, after_int) = rest.split_at(int_len);
    let (frac_part, after_frac) = match after_int.strip_prefix('.') {
        Some(f) => {
            let n = f.bytes().take_while(u8::is_ascii_digit).count();
            f.split_at(n)
        }
        None => ("", after_int),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err(s, "expected a number"));
    }
    // Unit: everything up to the next digit or '.'.
    let unit_len = after_frac
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit() || *c == '.')
        .map(|(i, _)| i)
        .unwrap_or(after_frac.len());
    let (unit, after_unit) = after_frac.split_at(unit_len);
    if unit.is_empty() {
        return Err(err(s, "a number has no unit"));
    }
    let Some(scale) = unit_nanos(unit) else {
        return Err(err(s, &format!("unknown unit {unit:?}")));
    };
    let too_long = || err(s, "it is too long");
    let mut value: u128 = 0;
    for b in int_part.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(b - b'0')))
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(too_long)?;
    }
    value = value.checked_mul(scale).ok_or_else(too_long)?;
    // Fraction: keep enough digits for nanosecond precision, truncate the rest (as Go).
    let mut frac_num: u128 = 0;
    let mut frac_den: u128 = 1;
    for b in frac_part.bytes().take(30) {
        frac_num = frac_num * 10 + u128::from(b - b'0');
        frac_den *= 10;
    }
    let value = value
        .checked_add(frac_num * scale / frac_den)
        .ok_or_else(too_long)?;
    Ok((value, after_unit))
}

/// Formats a duration the way Go prints it (`"1h30m0s"`, `"2.5s"`, `"300ms"`, `"0s"`), so
/// messages echo the syntax users write in `timeouts`.
pub fn format_go_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".into();
    }
    if total < 1_000_000_000 {
        let (div, unit) = if total < 1_000 {
            (1, "ns")
        } else if total < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", fraction(total, div));
    }
    let hours = total / 3_600_000_000_000;
    let minutes = (total / 60_000_000_000) % 60;
    let sec_nanos = total % 60_000_000_000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", fraction(sec_nanos, 1_000_000_000)));
    out
}

/// `n / div` as a decimal without trailing zeros.
fn fraction(n: u128, div: u128) -> String {
    let int = n / div;
    let rem = n % div;
    if rem == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_go_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepts_go_syntax() {
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("2h45m30.5s"), Duration::from_millis(9_930_500));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("10\u{3bc}s"), Duration::from_micros(10));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("+5m"), Duration::from_secs(300));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("1m1m"), Duration::from_secs(120));
        assert_eq!(ok("20m"), Duration::from_secs(1200));
        assert_eq!(ok(" 20m "), Duration::from_secs(1200));
    }

    #[test]
    fn rejects_garbage_with_a_message_naming_the_format() {
        for bad in [
            "", "-5s", "45x", "10", "1.5", "s", ".s", "1h 30m", "1e3s", "abc", "-", "+", "5S",
        ] {
            let e = parse_go_duration(bad).expect_err(bad);
            assert!(e.contains("is not a duration"), "{bad:?}: {e}");
            assert!(e.contains("\"30s\""), "{bad:?}: {e}");
        }
        let e = parse_go_duration("45x").expect_err("45x");
        assert_eq!(
            e,
            "\"45x\" is not a duration (unknown unit \"x\"): use a number with a unit such as \"30s\", \"10m\" or \"1h30m\" (units: ns, us, ms, s, m, h)"
        );
        assert!(parse_go_duration("-5s")
            .expect_err("neg")
            .contains("negative"));
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_go_duration("3000000h").is_err());
        assert!(parse_go_duration("99999999999999999999999999999s").is_err());
        assert!(parse_go_duration("2562047h").is_ok());
    }

    #[test]
    fn formats_like_go_and_round_trips() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format_go_duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(format_go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(format_go_duration(Duration::from_micros(10)), "10µs");
        assert_eq!(format_go_duration(Duration::from_secs(1200)), "20m0s");
        for s in ["1h30m0s", "2.5s", "300ms", "10µs", "20m0s", "2h45m30.5s"] {
            assert_eq!(format_go_duration(ok(s)), s);
        }
    }
}
