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
//!
//! Prices and markups set by an admin through the UI or the JSON API
//! (stored, migration 0026) are merged in by [`PriceBook::merge_stored`]
//! with the precedence of connector parameters: **files win**. An item
//! (an instance type, a volume type or the addresses of an instance) that a
//! file prices is managed by that file: its whole schedule comes from the
//! files, and prices stored for it are kept but shown as overridden; the
//! same for a markup. Other items take their schedule from the stored
//! prices, whose origin reads `set by admin NAME at TIME`.

use crate::domain::money::{Markup, Micros};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
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

impl PriceItem {
    /// The item from its stored kind (`instance`, `volume`, `address`) and
    /// name (the type; empty or `-` for an address).
    pub fn from_parts(kind: &str, name: &str) -> Result<Self, String> {
        match kind {
            "instance" if valid_type(name) => Ok(Self::Instance(name.to_string())),
            "volume" if valid_type(name) => Ok(Self::Volume(name.to_string())),
            "instance" | "volume" => Err(format!("'{}' is not a {kind} type (1-64 printable characters, no '=' or '@')", clip(name))),
            "address" if name.is_empty() || name == "-" => Ok(Self::Address),
            "address" => Err(format!("an address price has no name (use '-'), not '{}'", clip(name))),
            _ => Err(format!("'{}' is not an item kind: use instance, volume or address", clip(kind))),
        }
    }

    /// The stored kind: `instance`, `volume` or `address`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Instance(_) => "instance",
            Self::Volume(_) => "volume",
            Self::Address => "address",
        }
    }

    /// The stored name: the type, empty for an address.
    pub fn name(&self) -> &str {
        match self {
            Self::Instance(t) | Self::Volume(t) => t,
            Self::Address => "",
        }
    }
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

/// The default of `billing.minimum.seconds`: the least running time billed
/// per start, as AWS bills Linux.
pub const DEFAULT_MINIMUM_SECONDS: i64 = 60;

/// The broker's currency when no file names one.
pub const DEFAULT_CURRENCY: &str = "USD";

/// Every price and markup known, with where each came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceBook {
    /// Per (instance, item): its prices, oldest effective first.
    prices: BTreeMap<(String, PriceItem), Vec<PriceEntry>>,
    markups: BTreeMap<String, (Markup, String)>,
    currency: Option<(String, String)>,
    /// The items and markups whose values were set by an admin (the others
    /// come from files).
    admin_items: BTreeSet<(String, PriceItem)>,
    admin_markups: BTreeSet<String>,
    /// Stored prices and markups hidden by a file's (files win).
    overridden: Vec<PriceEntry>,
    overridden_markups: Vec<(String, Markup, String)>,
}

/// The origin of a value set by an admin.
pub fn admin_origin(by: &str, at: DateTime<Utc>) -> String {
    format!("set by admin {by} at {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
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

    /// Merges the prices and markups set through the UI/API (files win:
    /// see the module's documentation). Returns the stored values that
    /// could not be used, as messages.
    pub fn merge_stored(
        &mut self,
        prices: &[cloudbroker_store::prices::StoredPrice],
        markups: &[cloudbroker_store::prices::StoredMarkup],
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let file_items: BTreeSet<(String, PriceItem)> = self.prices.keys().cloned().collect();
        for p in prices {
            let item = match PriceItem::from_parts(&p.item_kind, &p.item_name) {
                Ok(i) => i,
                Err(e) => {
                    errors.push(format!("stored price of '{}': {e}", p.instance));
                    continue;
                }
            };
            let entry = PriceEntry {
                instance: p.instance.clone(),
                item: item.clone(),
                price: Micros(p.price),
                effective: p.effective_at,
                origin: admin_origin(&p.set_by, p.set_at),
            };
            let key = (p.instance.clone(), item);
            if file_items.contains(&key) {
                self.overridden.push(entry);
                continue;
            }
            let list = self.prices.entry(key.clone()).or_default();
            list.retain(|e| e.effective != entry.effective);
            list.push(entry);
            list.sort_by_key(|e| e.effective);
            self.admin_items.insert(key);
        }
        for m in markups {
            let origin = admin_origin(&m.set_by, m.set_at);
            if self.markups.contains_key(&m.instance) && !self.admin_markups.contains(&m.instance) {
                self.overridden_markups.push((m.instance.clone(), Markup(m.markup), origin));
                continue;
            }
            self.markups.insert(m.instance.clone(), (Markup(m.markup), origin));
            self.admin_markups.insert(m.instance.clone());
        }
        errors
    }

    /// Where a file manages the price of `item` on `instance` (the first
    /// file line pricing it); `None` when the UI/API may set it.
    pub fn price_file(&self, instance: &str, item: &PriceItem) -> Option<&str> {
        let key = (instance.to_string(), item.clone());
        if self.admin_items.contains(&key) {
            return None;
        }
        self.prices.get(&key).and_then(|l| l.first()).map(|e| e.origin.as_str())
    }

    /// Where a file gives the markup of `instance`; `None` when the UI/API may set it.
    pub fn markup_file(&self, instance: &str) -> Option<&str> {
        if self.admin_markups.contains(instance) {
            return None;
        }
        self.markups.get(instance).map(|(_, o)| o.as_str())
    }

    /// Every markup given: (instance, markup, origin).
    pub fn markups(&self) -> impl Iterator<Item = (&str, Markup, &str)> {
        self.markups.iter().map(|(i, (m, o))| (i.as_str(), *m, o.as_str()))
    }

    /// Prices set through the UI/API that a file's hide (files win).
    pub fn overridden(&self) -> &[PriceEntry] {
        &self.overridden
    }

    /// Markups set through the UI/API that a file's hides: (instance, markup, origin).
    pub fn overridden_markups(&self) -> &[(String, Markup, String)] {
        &self.overridden_markups
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

    #[test]
    fn stored_prices_merge_under_the_files() {
        use cloudbroker_store::prices::{StoredMarkup, StoredPrice};
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let mut book = PriceBook::default();
        let mut errors = Vec::new();
        book.read("f.conf", "sb.price.instance.small = 0.01\nsb.markup = 5\n", &mut errors);
        let stored = |kind: &str, name: &str, eff: &str, price: i64| StoredPrice {
            instance: "sb".into(),
            item_kind: kind.into(),
            item_name: name.into(),
            effective_at: at(eff),
            price,
            set_by: "alice".into(),
            set_at: at("2026-12-07T07:00:00Z"),
        };
        let prices = [
            stored("instance", "small", "2027-01-01T00:00:00Z", 99),
            stored("instance", "large", "2026-12-07T07:00:00Z", 40_000),
            stored("instance", "large", "2027-01-01T00:00:00Z", 50_000),
            stored("address", "", "2026-12-07T07:00:00Z", 5_000),
            stored("gpu", "x", "2026-12-07T07:00:00Z", 1),
        ];
        let markups = [
            StoredMarkup { instance: "sb".into(), markup: 2000, set_by: "alice".into(), set_at: at("2026-12-07T07:00:00Z") },
            StoredMarkup { instance: "other".into(), markup: -500, set_by: "bob".into(), set_at: at("2026-12-07T08:00:00Z") },
        ];
        let errs = book.merge_stored(&prices, &markups);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("not an item kind"), "{errs:?}");
        // The file manages `small` and the markup of `sb`: the stored ones are overridden.
        let small = book.schedule("sb", &PriceItem::Instance("small".into()));
        assert_eq!(small.iter().map(|e| e.price).collect::<Vec<_>>(), vec![Micros(10_000)]);
        assert_eq!(book.price_file("sb", &PriceItem::Instance("small".into())), Some("f.conf:1"));
        assert_eq!(book.overridden().len(), 1);
        assert_eq!(book.markup("sb"), (Markup(500), Some("f.conf:2")));
        assert_eq!(book.overridden_markups()[0].1, Markup(2000));
        assert_eq!(book.markup_file("sb"), Some("f.conf:2"));
        // Items no file prices come from the store, with their admin origin.
        let large = book.schedule("sb", &PriceItem::Instance("large".into()));
        assert_eq!(large.iter().map(|e| e.price).collect::<Vec<_>>(), vec![Micros(40_000), Micros(50_000)]);
        assert_eq!(large[0].origin, "set by admin alice at 2026-12-07T07:00:00Z");
        assert_eq!(book.price_file("sb", &PriceItem::Instance("large".into())), None);
        assert_eq!(book.schedule("sb", &PriceItem::Address)[0].price, Micros(5_000));
        assert_eq!(book.markup("other"), (Markup(-500), Some("set by admin bob at 2026-12-07T08:00:00Z")));
        assert_eq!(book.markup_file("other"), None);
        assert_eq!(book.markups().count(), 2);
    }

    #[test]
    fn items_parse_from_their_parts() {
        assert_eq!(PriceItem::from_parts("instance", "t3.micro"), Ok(PriceItem::Instance("t3.micro".into())));
        assert_eq!(PriceItem::from_parts("volume", "gp3"), Ok(PriceItem::Volume("gp3".into())));
        assert_eq!(PriceItem::from_parts("address", "-"), Ok(PriceItem::Address));
        assert_eq!(PriceItem::from_parts("address", ""), Ok(PriceItem::Address));
        assert!(PriceItem::from_parts("address", "x").is_err());
        assert!(PriceItem::from_parts("instance", "").unwrap_err().contains("instance type"));
        assert!(PriceItem::from_parts("gpu", "x").unwrap_err().contains("instance, volume or address"));
        let i = PriceItem::Volume("gp3".into());
        assert_eq!((i.kind(), i.name()), ("volume", "gp3"));
        assert_eq!((PriceItem::Address.kind(), PriceItem::Address.name()), ("address", ""));
    }
}
