//! Price lists: per connector instance, a price per instance type (per
//! hour), per volume type (per GiB-month) and per Elastic IP (per hour),
//! each effective from a time, and a markup per instance (Scalr's markups);
//! one currency per broker. Read from drop-in files
//! `connectors.d/prices/*.conf` in SlipStream's properties style:
//!
//! ```text
//! currency = USD
//! aws-eu.markup = 10
//! aws-eu.price.instance.t3.micro = 0.0104
//! aws-eu.price.instance.t3.micro @ 2027-01-01T00:00:00Z = 0.0110
//! aws-eu.price.volume.gp3 = 0.08
//! aws-eu.price.address = 0.005
//! ```
//!
//! A price without `@ time` is effective from the beginning. A bad line is
//! reported with its file and line and skipped; the good lines of the same
//! file still load. Files are read in name order; a price or markup given
//! twice is an error at the second place (naming the first), which is
//! skipped. Every entry keeps its origin (`file:line`), which reports show.

use crate::domain::money::{Markup, Micros};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What a price is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum PriceItem {
    /// An instance type, per hour.
    Instance(String),
    /// A volume type, per GiB-month.
    Volume(String),
    /// An Elastic IP, per hour.
    Address,
}

impl std::fmt::Display for PriceItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Instance(t) => write!(f, "instance.{t}"),
            Self::Volume(t) => write!(f, "volume.{t}"),
            Self::Address => f.write_str("address"),
        }
    }
}

/// One price, effective from a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceEntry {
    pub instance: String,
    pub item: PriceItem,
    /// The list price, per hour (instances, addresses) or per GiB-month (volumes).
    pub price: Micros,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub effective: DateTime<Utc>,
    /// Where it was read (`file:line`).
    pub origin: String,
}

/// A line of a price file that was not loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for PriceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The broker's currency when no file names one.
pub const DEFAULT_CURRENCY: &str = "USD";

/// Every price and markup known, with where each came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceBook {
    /// Per (instance, item): its prices, oldest effective first.
    prices: BTreeMap<(String, PriceItem), Vec<PriceEntry>>,
    markups: BTreeMap<String, (Markup, String)>,
    currency: Option<(String, String)>,
}

impl PriceBook {
    /// Reads every `*.conf` file of `dir` in name order (a missing
    /// directory: an empty book). Returns the book and what was skipped.
    pub fn load_dir(dir: &Path) -> (Self, Vec<PriceError>) {
        let mut book = Self::default();
        let mut errors = Vec::new();
        let Ok(rd) = std::fs::read_dir(dir) else { return (book, errors) };
        let mut files: Vec<_> =
            rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "conf")).collect();
        files.sort();
        for path in files {
            let name = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => book.read(&name, &text, &mut errors),
                Err(e) => errors.push(PriceError { file: name, line: 0, message: format!("cannot read: {e}") }),
            }
        }
        (book, errors)
    }

    /// Adds the entries of one file's text (`file` names it in origins and errors).
    pub fn read(&mut self, file: &str, text: &str, errors: &mut Vec<PriceError>) {
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            if let Err(message) = self.read_line(file, line, t) {
                errors.push(PriceError { file: file.to_string(), line, message });
            }
        }
    }

    fn read_line(&mut self, file: &str, line: usize, t: &str) -> Result<(), String> {
        let origin = format!("{file}:{line}");
        let (key, value) = t.split_once('=').ok_or("expected `key = value`")?;
        let (key, value) = (key.trim(), value.trim());
        if key == "currency" {
            if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("currency '{}' is not a three-letter code such as USD or EUR", clip(value)));
            }
            if let Some((c, at)) = &self.currency {
                if c != value {
                    return Err(format!("currency {value} conflicts with {c} given at {at}"));
                }
            }
            self.currency = Some((value.to_string(), origin));
            return Ok(());
        }
        let (key, effective) = match key.split_once('@') {
            Some((k, at)) => {
                let at = DateTime::parse_from_rfc3339(at.trim())
                    .map_err(|e| format!("'{}' is not an RFC 3339 time (e.g. 2027-01-01T00:00:00Z): {e}", clip(at.trim())))?;
                (k.trim(), at.with_timezone(&Utc))
            }
            None => (key, DateTime::<Utc>::UNIX_EPOCH),
        };
        let (instance, rest) =
            key.split_once('.').ok_or_else(|| format!("'{}' is not <instance>.price.<item> or <instance>.markup", clip(key)))?;
        crate::domain::InstanceName::parse(instance).map_err(|e| format!("'{}': {e}", clip(instance)))?;
        if rest == "markup" {
            let m = Markup::parse(value)?;
            if let Some((_, at)) = self.markups.get(instance) {
                return Err(format!("the markup of '{instance}' is already given at {at}"));
            }
            self.markups.insert(instance.to_string(), (m, origin));
            return Ok(());
        }
        let item = match rest.strip_prefix("price.") {
            Some("address") => PriceItem::Address,
            Some(r) => match (r.strip_prefix("instance."), r.strip_prefix("volume.")) {
                (Some(t), _) if valid_type(t) => PriceItem::Instance(t.to_string()),
                (_, Some(t)) if valid_type(t) => PriceItem::Volume(t.to_string()),
                _ => return Err(format!("'{}': the item is instance.<type>, volume.<type> or address", clip(key))),
            },
            None => return Err(format!("'{}' is not <instance>.price.<item> or <instance>.markup", clip(key))),
        };
        let price = Micros::parse(value)?;
        let list = self.prices.entry((instance.to_string(), item.clone())).or_default();
        if let Some(e) = list.iter().find(|e| e.effective == effective) {
            return Err(format!("the price of {instance} {item} from {effective} is already given at {}", e.origin));
        }
        list.push(PriceEntry { instance: instance.to_string(), item, price, effective, origin });
        list.sort_by_key(|e| e.effective);
        Ok(())
    }

    /// The currency (`USD` unless a file names another).
    pub fn currency(&self) -> &str {
        self.currency.as_ref().map_or(DEFAULT_CURRENCY, |(c, _)| c.as_str())
    }

    /// The prices of `item` on `instance`, oldest effective first (empty: unpriced).
    pub fn schedule(&self, instance: &str, item: &PriceItem) -> &[PriceEntry] {
        self.prices.get(&(instance.to_string(), item.clone())).map_or(&[], Vec::as_slice)
    }

    /// The markup of `instance` (0 when none is given) and where it was given.
    pub fn markup(&self, instance: &str) -> (Markup, Option<&str>) {
        self.markups.get(instance).map_or((Markup(0), None), |(m, o)| (*m, Some(o.as_str())))
    }

    /// Every price entry, by instance and item.
    pub fn entries(&self) -> impl Iterator<Item = &PriceEntry> {
        self.prices.values().flatten()
    }
}

/// An instance or volume type as priced: 1-64 printable characters, no `=` or `@`.
fn valid_type(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_graphic() && b != b'=' && b != b'@')
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn good_lines_load_and_bad_ones_name_their_line() {
        let mut book = PriceBook::default();
        let mut errors = Vec::new();
        let text = "# prices\ncurrency = EUR\nsb.markup = 10\nsb.price.instance.t3.micro = 0.0104\n\
                    sb.price.instance.t3.micro @ 2027-01-01T00:00:00Z = 0.0110\nsb.price.volume.gp3 = 0.08\nsb.price.address = 0.005\n\
                    sb.price.instance.t3.micro = 0.2\nsb.price.gpu.x = 1\nsb.price.instance.big = lots\nBad_Name.price.address = 1\nno equals\n\
                    sb.price.instance.m5 @ yesterday = 1\ncurrency = usd\n";
        book.read("p.conf", text, &mut errors);
        let lines: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(lines.len(), 7, "{lines:?}");
        assert!(lines[0].0 == 8 && lines[0].1.contains("already given at p.conf:4"), "{lines:?}");
        assert!(lines[1].0 == 9 && lines[1].1.contains("instance.<type>"), "{lines:?}");
        assert!(lines[2].0 == 10 && lines[2].1.contains("'lots' is not an amount"), "{lines:?}");
        assert_eq!(lines[3].0, 11);
        assert!(lines[4].0 == 12 && lines[4].1.contains("key = value"));
        assert!(lines[5].0 == 13 && lines[5].1.contains("RFC 3339"));
        assert!(lines[6].0 == 14 && lines[6].1.contains("three-letter"));
        assert_eq!(
            errors[0].to_string(),
            "p.conf:8: the price of sb instance.t3.micro from 1970-01-01 00:00:00 UTC is already given at p.conf:4"
        );
        assert_eq!(book.currency(), "EUR");
        assert_eq!(book.markup("sb"), (Markup(1000), Some("p.conf:3")));
        assert_eq!(book.markup("other"), (Markup(0), None));
        let s = book.schedule("sb", &PriceItem::Instance("t3.micro".into()));
        assert_eq!(s.iter().map(|e| e.price).collect::<Vec<_>>(), vec![Micros(10_400), Micros(11_000)]);
        assert_eq!(s[1].origin, "p.conf:5");
        assert_eq!(book.schedule("sb", &PriceItem::Volume("gp3".into()))[0].price, Micros(80_000));
        assert_eq!(book.schedule("sb", &PriceItem::Address)[0].price, Micros(5_000));
        assert!(book.schedule("sb", &PriceItem::Instance("m5".into())).is_empty());
        assert_eq!(book.entries().count(), 4);
    }

    #[test]
    fn a_directory_loads_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("20-b.conf"), "sb.price.address = 0.002\n").unwrap();
        std::fs::write(dir.path().join("10-a.conf"), "sb.price.address = 0.001\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not read").unwrap();
        let (book, errors) = PriceBook::load_dir(dir.path());
        assert_eq!(book.schedule("sb", &PriceItem::Address)[0].price, Micros(1_000));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].file.ends_with("20-b.conf") && errors[0].message.contains("10-a.conf:1"), "{errors:?}");
        let (empty, none) = PriceBook::load_dir(&dir.path().join("missing"));
        assert!(empty.entries().next().is_none() && none.is_empty());
    }
}
