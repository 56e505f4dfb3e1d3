//! Money as integers: amounts in millionths of the broker's currency
//! ([`Micros`]), markups in hundredths of a percent ([`Markup`]). Parsed
//! exactly from decimal text (never through a float), summed exactly, and
//! rounded once, to the nearest micro, when a cost is computed.

use serde::Serialize;

/// An amount in millionths of the currency (0.0104 USD = 10_400).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Micros(pub i64);

/// Most digits after the decimal point a price may have.
const MAX_DECIMALS: usize = 6;

impl Micros {
    /// Parses a non-negative decimal amount (`0.0104`, `12`, `3.5`), at most six decimals.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let shown: String = t.chars().take(32).collect();
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("'{shown}' is not an amount (write e.g. 0.0104)"));
        }
        if frac.len() > MAX_DECIMALS {
            return Err(format!("'{shown}' has more than {MAX_DECIMALS} decimals"));
        }
        if int.len() > 9 {
            return Err(format!("'{shown}' is too large an amount"));
        }
        let int: i64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| format!("'{shown}' is not an amount"))? };
        let frac_micros: i64 = format!("{frac:0<6}").parse().map_err(|_| format!("'{shown}' is not an amount"))?;
        Ok(Self(int * 1_000_000 + frac_micros))
    }

    /// As decimal text with `decimals` digits (rounded half away from zero).
    pub fn to_decimal(self, decimals: u32) -> String {
        let decimals = decimals.min(6);
        let unit = 10i64.pow(6 - decimals);
        let v = self.0;
        let rounded = if v >= 0 { (v + unit / 2) / unit } else { (v - unit / 2) / unit };
        let scale = 10i64.pow(decimals);
        let sign = if rounded < 0 { "-" } else { "" };
        let a = rounded.abs();
        if decimals == 0 {
            format!("{sign}{a}")
        } else {
            format!("{sign}{}.{:0width$}", a / scale, a % scale, width = decimals as usize)
        }
    }

    /// `self` with a markup applied (rounded to the nearest micro).
    pub fn with_markup(self, m: Markup) -> Self {
        Self(div_round(i128::from(self.0) * i128::from(10_000 + m.0), 10_000))
    }
}

impl std::ops::Add for Micros {
    type Output = Micros;
    fn add(self, o: Micros) -> Micros {
        Micros(self.0.saturating_add(o.0))
    }
}

impl std::iter::Sum for Micros {
    fn sum<I: Iterator<Item = Micros>>(iter: I) -> Micros {
        iter.fold(Micros(0), |a, b| a + b)
    }
}

/// A markup in hundredths of a percent: 1000 is +10%, -500 a 5% discount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Markup(pub i64);

impl Markup {
    /// Parses a percentage (`10`, `-5`, `12.5`), at most two decimals, between -100 and 1000.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let shown: String = t.chars().take(32).collect();
        let (neg, body) = match t.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() || int.len() > 4 || frac.len() > 2 || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(format!("'{shown}' is not a percentage (write e.g. 10, -5 or 12.5)"));
        }
        let v: i64 = format!("{int}{frac:0<2}").parse().map_err(|_| format!("'{shown}' is not a percentage"))?;
        let v = if neg { -v } else { v };
        if !(-10_000..=100_000).contains(&v) {
            return Err(format!("'{shown}' is out of range (a markup is between -100 and 1000 percent)"));
        }
        Ok(Self(v))
    }

    /// As a percentage (`10%`, `-5%`, `12.5%`).
    pub fn to_percent(self) -> String {
        let (sign, a) = if self.0 < 0 { ("-", -self.0) } else { ("", self.0) };
        match a % 100 {
            0 => format!("{sign}{}%", a / 100),
            f if f % 10 == 0 => format!("{sign}{}.{}%", a / 100, f / 10),
            f => format!("{sign}{}.{f:02}%", a / 100),
        }
    }
}

/// `n / d` rounded half away from zero (`d` > 0).
pub fn div_round(n: i128, d: i128) -> i64 {
    let q = if n >= 0 { (n + d / 2) / d } else { (n - d / 2) / d };
    i64::try_from(q).unwrap_or(if q > 0 { i64::MAX } else { i64::MIN })
}

/// The cost of `seconds` at `per_hour`, in micros (rounded once).
pub fn cost_of(seconds: i64, per_hour: Micros) -> Micros {
    Micros(div_round(i128::from(seconds) * i128::from(per_hour.0), 3_600))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(Micros::parse("0.0104").unwrap(), Micros(10_400));
        assert_eq!(Micros::parse("12").unwrap(), Micros(12_000_000));
        assert_eq!(Micros::parse(".5").unwrap(), Micros(500_000));
        assert_eq!(Micros::parse("0.000001").unwrap(), Micros(1));
        for bad in ["", ".", "-1", "1e3", "0.0000001", "abc", "1.2.3", "9999999999"] {
            assert!(Micros::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Micros(10_400).to_decimal(4), "0.0104");
        assert_eq!(Micros(1_234_567).to_decimal(2), "1.23");
        assert_eq!(Micros(1_235_000).to_decimal(2), "1.24");
        assert_eq!(Micros(-1_235_000).to_decimal(2), "-1.24");
        assert_eq!(Micros(5_000_000).to_decimal(0), "5");
    }

    #[test]
    fn markups_and_costs() {
        assert_eq!(Markup::parse("10").unwrap(), Markup(1000));
        assert_eq!(Markup::parse("-5").unwrap(), Markup(-500));
        assert_eq!(Markup::parse("12.5").unwrap(), Markup(1250));
        assert_eq!(Markup::parse("12.5").unwrap().to_percent(), "12.5%");
        assert_eq!(Markup(-1234).to_percent(), "-12.34%");
        for bad in ["", "x", "1.234", "-101", "1001", "--1"] {
            assert!(Markup::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Micros(1_000_000).with_markup(Markup(1000)), Micros(1_100_000));
        assert_eq!(Micros(1_000_000).with_markup(Markup(-500)), Micros(950_000));
        // One hour at 0.0104/h; one second of it; 60 s minimum of it.
        assert_eq!(cost_of(3600, Micros(10_400)), Micros(10_400));
        assert_eq!(cost_of(1, Micros(10_400)), Micros(3));
        assert_eq!(cost_of(60, Micros(10_400)), Micros(173));
    }
}
