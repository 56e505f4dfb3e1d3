//! The one RFC 3339 writer: every timestamp the broker prints (the JSON
//! API, EC2 answers) is UTC with `Z`, byte for byte what chrono's
//! `to_rfc3339_opts(.., true)` writes. The common case (a year in 0..=9999,
//! millisecond precision, which is all the store holds; a page of VMs writes
//! two per VM) is written digit by digit; anything else goes through chrono.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// The fraction of a second written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// None when zero, else as many digits as needed (chrono's
    /// `SecondsFormat::AutoSi`): the JSON API.
    Auto,
    /// Always three digits (`SecondsFormat::Millis`): EC2 answers.
    Millis,
}

/// Appends `t` as RFC 3339 in UTC: `2026-12-04T15:13:58.840Z`
/// ([`Fraction::Millis`] writes `.000` for a whole second, [`Fraction::Auto`]
/// nothing).
pub fn push_rfc3339(buf: &mut String, t: &DateTime<Utc>, fraction: Fraction) {
    let mut out = [0u8; 24];
    match digits(t, fraction, &mut out) {
        Some(text) => buf.push_str(text),
        None => buf.push_str(&slow(t, fraction)),
    }
}

/// [`push_rfc3339`] into a new string.
pub fn rfc3339_string(t: &DateTime<Utc>, fraction: Fraction) -> String {
    let mut s = String::with_capacity(24);
    push_rfc3339(&mut s, t, fraction);
    s
}

/// Serializes `t` as chrono does (`2026-12-04T15:13:58.840Z`, no fraction
/// when it is zero): [`push_rfc3339`] with [`Fraction::Auto`], without
/// allocating in the common case.
pub fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut out = [0u8; 24];
    match digits(t, Fraction::Auto, &mut out) {
        Some(text) => s.serialize_str(text),
        None => s.serialize_str(&slow(t, Fraction::Auto)),
    }
}

/// [`rfc3339`] for an optional time (`null` when absent).
pub fn rfc3339_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// chrono's own writer: the reference, and the way for the rare times
/// [`digits`] leaves alone.
fn slow(t: &DateTime<Utc>, fraction: Fraction) -> String {
    let format = match fraction {
        Fraction::Auto => SecondsFormat::AutoSi,
        Fraction::Millis => SecondsFormat::Millis,
    };
    t.to_rfc3339_opts(format, true)
}

/// Writes `t` into `out` digit by digit when the year is in 0..=9999, the
/// time is no leap second, and the fraction is whole milliseconds (or is to
/// be cut to them); `None` otherwise.
fn digits<'a>(t: &DateTime<Utc>, fraction: Fraction, out: &'a mut [u8; 24]) -> Option<&'a str> {
    let nanos = t.nanosecond();
    let year = t.year();
    let fast = (0..=9999).contains(&year) && nanos < 1_000_000_000 && (fraction == Fraction::Millis || nanos.is_multiple_of(1_000_000));
    if !fast {
        return None;
    }
    let ms = nanos / 1_000_000;
    let mut at = 0;
    let mut put = |v: u32, width: usize, sep: u8| {
        let mut v = v;
        for k in (0..width).rev() {
            out[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        at += width;
        out[at] = sep;
        at += 1;
    };
    put(year as u32, 4, b'-');
    put(t.month(), 2, b'-');
    put(t.day(), 2, b'T');
    put(t.hour(), 2, b':');
    put(t.minute(), 2, b':');
    if ms == 0 && fraction == Fraction::Auto {
        put(t.second(), 2, b'Z');
    } else {
        put(t.second(), 2, b'.');
        put(ms, 3, b'Z');
    }
    // Every byte is an ASCII digit or separator.
    std::str::from_utf8(&out[..at]).ok()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "super::rfc3339")] chrono::DateTime<chrono::Utc>);

    fn same(t: chrono::DateTime<chrono::Utc>) {
        assert_eq!(serde_json::to_string(&Ours(t)).unwrap(), serde_json::to_string(&t).unwrap(), "{t:?}");
    }

    #[test]
    fn writes_exactly_what_chrono_writes() {
        for ms in [0i64, 1, 10, 100, 999, 1_000, 59_999, 86_399_999, 951_782_400_000, 1_733_312_345_000, 253_402_300_799_999] {
            same(chrono::Utc.timestamp_millis_opt(ms).unwrap());
        }
        // A pseudo-random sweep of millisecond instants between 1970 and 2100.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            same(chrono::Utc.timestamp_millis_opt((x % 4_102_444_800_000) as i64).unwrap());
        }
        // Finer than milliseconds, and years past 9999: chrono's own way.
        same(chrono::Utc.timestamp_opt(1_733_312_345, 123_456_789).unwrap());
        same(chrono::Utc.timestamp_opt(1_733_312_345, 123_456_000).unwrap());
        same(chrono::Utc.with_ymd_and_hms(12_345, 1, 2, 3, 4, 5).unwrap());
    }

    #[test]
    fn millis_are_chronos_millis() {
        use super::{rfc3339_string, Fraction};
        use chrono::SecondsFormat;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut times = vec![chrono::Utc.timestamp_millis_opt(0).unwrap(), chrono::Utc.timestamp_opt(1_733_312_345, 123_456_789).unwrap()];
        times.push(chrono::Utc.with_ymd_and_hms(12_345, 1, 2, 3, 4, 5).unwrap());
        for _ in 0..1_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            times.push(chrono::Utc.timestamp_millis_opt((x % 4_102_444_800_000) as i64).unwrap());
        }
        for t in times {
            assert_eq!(rfc3339_string(&t, Fraction::Millis), t.to_rfc3339_opts(SecondsFormat::Millis, true), "{t:?}");
            assert_eq!(rfc3339_string(&t, Fraction::Auto), t.to_rfc3339_opts(SecondsFormat::AutoSi, true), "{t:?}");
        }
    }
}
