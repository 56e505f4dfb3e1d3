//! Timestamps as the JSON API writes them: RFC 3339 in UTC, exactly as
//! chrono's own serializer writes them (`SecondsFormat::AutoSi`, `Z`), but
//! written digit by digit for the millisecond-precise times the store holds
//! (a page of VMs writes two per VM); anything else goes through chrono.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// Serializes `t` as chrono does (`2026-12-04T15:13:58.840Z`, no fraction
/// when it is zero).
pub fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let nanos = t.nanosecond();
    let year = t.year();
    if !nanos.is_multiple_of(1_000_000) || nanos >= 1_000_000_000 || !(0..=9999).contains(&year) {
        return s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
    let ms = nanos / 1_000_000;
    let mut out = [0u8; 24];
    let mut at = 0;
    let mut put = |v: u32, width: usize, sep: Option<u8>| {
        let mut v = v;
        for k in (0..width).rev() {
            out[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        at += width;
        if let Some(c) = sep {
            out[at] = c;
            at += 1;
        }
    };
    put(year as u32, 4, Some(b'-'));
    put(t.month(), 2, Some(b'-'));
    put(t.day(), 2, Some(b'T'));
    put(t.hour(), 2, Some(b':'));
    put(t.minute(), 2, Some(b':'));
    if ms == 0 {
        put(t.second(), 2, Some(b'Z'));
    } else {
        put(t.second(), 2, Some(b'.'));
        put(ms, 3, Some(b'Z'));
    }
    // Every byte is an ASCII digit or separator.
    s.serialize_str(std::str::from_utf8(&out[..at]).unwrap_or_default())
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
}
