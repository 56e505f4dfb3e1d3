//! Pagination: a caller asks for at most `limit` items after an opaque
//! cursor; the answer carries the cursor of the next page, if any. A cursor
//! encodes the sort key of the last item returned (keyset pagination), so a
//! page costs the same wherever it is in a long list, and items inserted
//! meanwhile neither repeat nor shift a page.

use super::InvalidValue;
use serde::Serialize;

/// The default page size.
pub const DEFAULT_PAGE: u32 = 100;
/// The largest page size.
pub const MAX_PAGE: u32 = 1000;

/// The sort key of the last item of a page: a number (a time in ms, an id)
/// and a string (a name or id) breaking ties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub num: i64,
    pub key: String,
}

impl Cursor {
    /// A cursor after an item.
    pub fn new(num: i64, key: impl Into<String>) -> Self {
        Self { num, key: key.into() }
    }

    /// The opaque form given to callers: `<num>.<hex of key>`. Callers must
    /// not build cursors, but every string of this shape ([`CURSOR_PATTERN`])
    /// is one, so a well-formed cursor always names a position in the list.
    pub fn encode(&self) -> String {
        let mut s = format!("{}.", self.num);
        for b in self.key.bytes() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Parses the opaque form.
    pub fn decode(s: &str) -> Result<Self, InvalidValue> {
        let bad = || InvalidValue::new("cursor", "the cursor is not one this API gave out (use next_cursor as it was returned)");
        if s.len() > MAX_CURSOR_LEN {
            return Err(bad());
        }
        let (num, hex) = s.split_once('.').ok_or_else(bad)?;
        let digits = num.strip_prefix('-').unwrap_or(num);
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) || hex.len() % 2 != 0 {
            return Err(bad());
        }
        let num = num.parse().map_err(|_| bad())?;
        let mut key = Vec::with_capacity(hex.len() / 2);
        for pair in hex.as_bytes().chunks(2) {
            let digit = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            };
            key.push(digit(pair[0]).zip(digit(pair[1])).map(|(h, l)| h << 4 | l).ok_or_else(bad)?);
        }
        // A key is only a position to start after: bytes that are not UTF-8
        // (never given out) still name one.
        Ok(Self { num, key: String::from_utf8_lossy(&key).into_owned() })
    }
}

/// The longest cursor accepted.
pub const MAX_CURSOR_LEN: usize = 512;
/// The shape of a cursor (for the API's document): every string of this
/// shape is accepted.
pub const CURSOR_PATTERN: &str = "^-?[0-9]{1,18}\\.([0-9a-f]{2}){0,240}$";

/// Which page a caller wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: DEFAULT_PAGE, after: None }
    }
}

impl PageRequest {
    /// Parses `limit` and `cursor` as given by a caller.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, InvalidValue> {
        let limit = match limit {
            None | Some("") => DEFAULT_PAGE,
            Some(l) => match l.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => return Err(InvalidValue::new("limit", format!("limit must be a whole number from 1 to {MAX_PAGE}"))),
            },
        };
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(Cursor::decode(c)?),
        };
        Ok(Self { limit, after })
    }

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { limit: limit.clamp(1, MAX_PAGE), after: None }
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` items fetched in order: the extra
    /// item, if present, only says that another page exists.
    pub fn from_fetched(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = if more { items.last().map(|l| key(l).encode()) } else { None };
        Self { items, next_cursor }
    }

    /// Maps the items.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor::new(1_700_000_000_123, "vm-abc:def");
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert_eq!(Cursor::decode(&Cursor::new(-5, "").encode()), Ok(Cursor::new(-5, "")));
        for bad in ["", "%%%", "bm90IGEgY3Vyc29y", "1.abc", "1.AB", ".00", "1234567890123456789.", &"A".repeat(600)] {
            assert_eq!(Cursor::decode(bad).map_err(|e| e.field), Err("cursor"), "{bad}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(PageRequest::parse(None, None).map(|p| p.limit), Ok(100));
        assert_eq!(PageRequest::parse(Some("1000"), None).map(|p| p.limit), Ok(1000));
        for bad in ["0", "1001", "-1", "ten"] {
            assert_eq!(PageRequest::parse(Some(bad), None).unwrap_err().field, "limit");
        }
    }

    #[test]
    fn pages() {
        let p = Page::from_fetched(vec![1, 2, 3], 2, |i| Cursor::new(*i, ""));
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next_cursor.map(|c| Cursor::decode(&c).map(|c| c.num)), Some(Ok(2)));
        assert_eq!(Page::from_fetched(vec![1, 2], 2, |i| Cursor::new(*i, "")).next_cursor, None);
    }
}
