//! `Describe*` filters (`Filter.N.Name` / `Filter.N.Value.M`): checked
//! against their limits, then each value compiled once per request into a
//! matcher whose cost is linear in the text it reads; large filtering jobs
//! run off the request workers.
//!
//! **Wildcards**, as the broker has always read them: `*` matches any run of
//! characters (the empty one included), `?` exactly one character; every
//! other character, `\` included, matches itself (there are no escapes).
//! Characters are Unicode scalar values, compared case-sensitively.
//!
//! **Limits**, checked before any work: at most [`MAX_FILTERS`] filters and
//! [`MAX_VALUES`] values per filter (EC2's own limit; both answer
//! `FilterLimitExceeded`), values of at most [`MAX_VALUE_CHARS`] characters
//! (`InvalidParameterValue` naming the filter: the longest thing a value can
//! equal is a 256-character tag value).
//!
//! **Cost.** A pattern is split on `*` into segments of literal characters
//! and `?`. Without a `*`, the text must match the one segment exactly.
//! Otherwise the first segment must match at the start of the text, the last
//! at its end, and each middle segment is placed at its leftmost occurrence
//! after the previous one. Greedy leftmost placement loses no match: in any
//! match, moving a middle segment to an earlier occurrence (still after the
//! previous segment) leaves at least as much text for the segments after
//! it, and a `*` absorbs whatever lies between. So each text character is
//! read by at most one search: the anchored prefix and suffix read at most
//! their own length, and each middle search reads from where the previous
//! one stopped to the end of its own occurrence. A segment without `?` is
//! found by `memchr::memmem` (worst case linear in the window plus the
//! segment, guaranteed by that crate); a segment with `?` by a bit-parallel
//! Shift-And automaton, one pass over the window at ceil(k/64) machine words
//! per character for a k-character segment, at most 4 words under
//! [`MAX_VALUE_CHARS`]. One match therefore costs at most 4n + 2m steps for
//! n bytes of text and m pattern characters: no backtracking, nothing
//! quadratic (the earlier two-pointer matcher backtracked to its last `*` and
//! was O(n·m); the unit tests count steps on the cases that made it slow).
//!
//! **Names.** Each action lists the filters it takes; [`check_names`]
//! refuses any other with `InvalidParameterValue` naming it, as EC2 does.
//! `tag:<key>`, `tag-key` and `tag-value` read the item's tags
//! ([`Filter::tags`]). **Pages**: [`Page`] is `MaxResults` within the
//! action's range and a `NextToken` this front gave out (the offset of the
//! next page in the answer's stable order).
//!
//! **Off the request workers.** [`retain`] filters a list inline when the
//! work (items × pattern characters) is small and otherwise on the blocking
//! thread pool, at most [`HEAVY_JOBS`] such jobs at once, so an expensive
//! `Describe*` never stalls the async workers that answer everything else.

use crate::error::Ec2Error;
use crate::ids::shown;
use crate::request::Params;
use memchr::memmem::Finder;

/// Filters one request may carry.
pub const MAX_FILTERS: usize = 50;
/// Values one filter may carry (EC2's limit).
pub const MAX_VALUES: usize = 200;
/// Characters one filter value may have.
pub const MAX_VALUE_CHARS: usize = 256;
/// Work (items × pattern characters) filtered inline on the request worker;
/// more goes to the blocking pool.
pub const INLINE_WORK: usize = 200_000;
/// Filtering jobs running on the blocking pool at once (others wait their turn).
pub const HEAVY_JOBS: usize = 2;

/// One pattern character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
}

impl Tok {
    fn accepts(self, c: char) -> bool {
        match self {
            Tok::Lit(l) => l == c,
            Tok::Any => true,
        }
    }
}

fn tokens(s: &str) -> Vec<Tok> {
    s.chars().map(|c| if c == '?' { Tok::Any } else { Tok::Lit(c) }).collect()
}

/// Shift-And tables of a segment with `?`: bit i of a character's mask is
/// set when the segment's i-th token accepts that character.
#[derive(Clone, Debug)]
struct Masks {
    /// The mask of a character no literal names (the `?` positions).
    any: Vec<u64>,
    /// Masks of the segment's literal characters (`?` bits included), by character.
    lits: Vec<(char, Vec<u64>)>,
}

impl Masks {
    fn new(toks: &[Tok]) -> Self {
        let words = toks.len().div_ceil(64);
        let mut any = vec![0u64; words];
        for (i, t) in toks.iter().enumerate() {
            if *t == Tok::Any {
                any[i / 64] |= 1 << (i % 64);
            }
        }
        let mut lits: Vec<(char, Vec<u64>)> = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            if let Tok::Lit(c) = *t {
                let at = match lits.binary_search_by_key(&c, |(l, _)| *l) {
                    Ok(at) => at,
                    Err(at) => {
                        lits.insert(at, (c, any.clone()));
                        at
                    }
                };
                lits[at].1[i / 64] |= 1 << (i % 64);
            }
        }
        Self { any, lits }
    }

    fn of(&self, c: char) -> &[u64] {
        match self.lits.binary_search_by_key(&c, |(l, _)| *l) {
            Ok(at) => &self.lits[at].1,
            Err(_) => &self.any,
        }
    }
}

/// A middle segment, with what finds it.
#[derive(Clone, Debug)]
enum Segment {
    /// No `?`: found by memmem (the needle is the segment's UTF-8 bytes;
    /// a valid UTF-8 needle found in valid UTF-8 text starts and ends on
    /// character boundaries).
    Literal(Box<Finder<'static>>),
    /// With `?`: found by Shift-And.
    Wild { len: usize, masks: Masks },
}

impl Segment {
    fn new(s: &str) -> Self {
        let toks = tokens(s);
        if toks.contains(&Tok::Any) {
            Segment::Wild { len: toks.len(), masks: Masks::new(&toks) }
        } else {
            Segment::Literal(Box::new(Finder::new(s.as_bytes()).into_owned()))
        }
    }

    /// The byte offset in `window` just after the segment's leftmost occurrence.
    fn find(&self, window: &str, steps: &mut u64) -> Option<usize> {
        match self {
            Segment::Literal(f) => {
                let needle = f.needle().len();
                let end = f.find(window.as_bytes()).map(|at| at + needle);
                // memmem's guarantee: linear in what it scanned plus the needle.
                *steps += (end.unwrap_or(window.len()) + needle) as u64;
                end
            }
            Segment::Wild { len, masks } => {
                let words = masks.any.len();
                let (top_word, top_bit) = ((len - 1) / 64, 1u64 << ((len - 1) % 64));
                let mut state = vec![0u64; words];
                for (at, c) in window.char_indices() {
                    *steps += words as u64;
                    let mask = masks.of(c);
                    let mut carry = 1u64;
                    for (w, m) in state.iter_mut().zip(mask) {
                        let out = *w >> 63;
                        *w = ((*w << 1) | carry) & m;
                        carry = out;
                    }
                    if state[top_word] & top_bit != 0 {
                        return Some(at + c.len_utf8());
                    }
                }
                None
            }
        }
    }
}

/// One filter value, compiled.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// Whether the value has a `*`; without one, `first` must match the whole text.
    star: bool,
    /// Anchored at the start of the text.
    first: Vec<Tok>,
    /// Found left to right between `first` and `last`.
    middle: Vec<Segment>,
    /// Anchored at the end of the text.
    last: Vec<Tok>,
    /// The value's length in characters (its share of a job's cost).
    chars: usize,
}

impl Pattern {
    /// Compiles a value.
    pub fn compile(value: &str) -> Self {
        let chars = value.chars().count();
        let mut parts = value.split('*');
        let first = tokens(parts.next().unwrap_or_default());
        let rest: Vec<&str> = parts.collect();
        match rest.split_last() {
            None => Self { star: false, first, middle: Vec::new(), last: Vec::new(), chars },
            Some((last, middle)) => Self {
                star: true,
                first,
                middle: middle.iter().filter(|s| !s.is_empty()).map(|s| Segment::new(s)).collect(),
                last: tokens(last),
                chars,
            },
        }
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_counting(text, &mut 0)
    }

    /// [`Pattern::matches`], adding the steps taken to `steps` (for tests:
    /// a character compared, a Shift-And word updated, a byte memmem may read).
    fn matches_counting(&self, text: &str, steps: &mut u64) -> bool {
        if !self.star {
            let mut chars = text.chars();
            for t in &self.first {
                *steps += 1;
                match chars.next() {
                    Some(c) if t.accepts(c) => {}
                    _ => return false,
                }
            }
            return chars.next().is_none();
        }
        let mut lo = 0;
        let mut chars = text.chars();
        for t in &self.first {
            *steps += 1;
            match chars.next() {
                Some(c) if t.accepts(c) => lo += c.len_utf8(),
                _ => return false,
            }
        }
        let mut hi = text.len();
        let mut back = text[lo..].chars().rev();
        for t in self.last.iter().rev() {
            *steps += 1;
            match back.next() {
                Some(c) if t.accepts(c) => hi -= c.len_utf8(),
                _ => return false,
            }
        }
        for seg in &self.middle {
            match seg.find(&text[lo..hi], steps) {
                Some(end) => lo += end,
                None => return false,
            }
        }
        true
    }
}

/// The values of one filter: as sent (for filters compared exactly) and compiled.
#[derive(Clone, Debug)]
pub struct Values {
    raw: Vec<String>,
    patterns: Vec<Pattern>,
}

impl Values {
    /// Compiles each value once.
    pub fn compile(raw: Vec<String>) -> Self {
        let patterns = raw.iter().map(|v| Pattern::compile(v)).collect();
        Self { raw, patterns }
    }

    /// Whether any value, as a pattern, matches `text`.
    pub fn any(&self, text: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(text))
    }

    /// Whether any value equals `text` (filters that take no wildcards).
    pub fn any_equal(&self, text: &str) -> bool {
        self.raw.iter().any(|v| v == text)
    }

    /// The values as sent.
    pub fn raw(&self) -> &[String] {
        &self.raw
    }

    /// Matching one text against these values costs at most this much (in
    /// pattern characters, plus one per value).
    pub fn cost(&self) -> usize {
        self.patterns.iter().map(|p| p.chars + 1).sum()
    }
}

/// One `Filter.N` of a request.
#[derive(Clone, Debug)]
pub struct Filter {
    pub name: String,
    pub values: Values,
}

/// The request's filters, their limits checked and their values compiled.
pub fn parse(params: &Params) -> Result<Vec<Filter>, Ec2Error> {
    let groups = params.filters()?;
    if groups.len() > MAX_FILTERS {
        return Err(Ec2Error::client(
            "FilterLimitExceeded",
            format!("The request has {} filters; at most {MAX_FILTERS} filters are allowed", groups.len()),
        ));
    }
    let mut out = Vec::with_capacity(groups.len());
    for (name, values) in groups {
        if values.len() > MAX_VALUES {
            return Err(Ec2Error::client(
                "FilterLimitExceeded",
                format!("The filter '{}' has {} values; at most {MAX_VALUES} values are allowed per filter", shown(&name), values.len()),
            ));
        }
        if let Some(long) = values.iter().map(|v| v.chars().count()).find(|n| *n > MAX_VALUE_CHARS) {
            return Err(Ec2Error::invalid(format!(
                "A value of the filter '{}' is {long} characters long; filter values are at most {MAX_VALUE_CHARS} characters",
                shown(&name)
            )));
        }
        out.push(Filter { name, values: Values::compile(values) });
    }
    Ok(out)
}

/// Refuses a filter whose name is not among `known` (nor `tag:<key>` when
/// `tags`, which also admits `tag-key` and `tag-value`), as EC2 does:
/// `InvalidParameterValue` naming the filter.
pub fn check_names(filters: &[Filter], known: &[&str], tags: bool) -> Result<(), Ec2Error> {
    for f in filters {
        let n = f.name.as_str();
        let tag = tags && (n == "tag-key" || n == "tag-value" || n.strip_prefix("tag:").is_some_and(|k| !k.is_empty()));
        if !tag && !known.contains(&n) {
            return Err(Ec2Error::invalid(format!("The filter '{}' is invalid", shown(n))));
        }
    }
    Ok(())
}

impl Filter {
    /// Whether this filter, when it is a tag filter (`tag:<key>`, `tag-key`,
    /// `tag-value`), accepts an item with `tags`; `None` for other filters.
    pub fn tags<'a, I>(&self, tags: I) -> Option<bool>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let n = self.name.as_str();
        if n == "tag-key" {
            Some(tags.into_iter().any(|(k, _)| self.values.any(k)))
        } else if n == "tag-value" {
            Some(tags.into_iter().any(|(_, v)| self.values.any(v)))
        } else {
            let key = n.strip_prefix("tag:").filter(|k| !k.is_empty())?;
            Some(tags.into_iter().any(|(k, v)| k == key && self.values.any(v)))
        }
    }

    /// Whether any value matches `text` (`None`: the item has no such field, no match).
    pub fn any(&self, text: Option<&str>) -> bool {
        text.is_some_and(|t| self.values.any(t))
    }
}

/// Where one page of a paginated `Describe*` starts and how long it is:
/// `MaxResults` (within the action's range) and `NextToken` (a token this
/// front gave out: the offset of the page in the answer's stable order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub start: usize,
    /// `None`: everything from `start` on, no token.
    pub max: Option<usize>,
}

/// The prefix of the front's page tokens.
const TOKEN_PREFIX: &str = "cbp1.";

impl Page {
    /// `MaxResults` within `range` and `NextToken`.
    pub fn parse(params: &Params, range: std::ops::RangeInclusive<i64>) -> Result<Self, Ec2Error> {
        let max = params.int("MaxResults", range)?.map(|m| m as usize);
        let start = match params.get("NextToken").filter(|t| !t.is_empty()) {
            None => 0,
            Some(t) => t
                .strip_prefix(TOKEN_PREFIX)
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| Ec2Error::invalid("The NextToken is not one this broker gave out"))?,
        };
        Ok(Self { start, max })
    }

    /// Whether the request asked for pages at all (`MaxResults` or `NextToken`).
    pub fn asked(&self) -> bool {
        self.max.is_some() || self.start > 0
    }

    /// This page of `items`, and the token of the next one if more remain.
    pub fn cut<T>(&self, items: Vec<T>) -> (Vec<T>, Option<String>) {
        let mut page: Vec<T> = items.into_iter().skip(self.start).collect();
        match self.max {
            Some(max) if page.len() > max => {
                page.truncate(max);
                (page, Some(format!("{TOKEN_PREFIX}{}", self.start + max)))
            }
            _ => (page, None),
        }
    }
}

/// What matching one item against all `filters` costs at most.
pub fn cost(filters: &[Filter]) -> usize {
    filters.iter().map(|f| f.values.cost()).sum()
}

/// Bounds the filtering jobs on the blocking pool.
static HEAVY: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HEAVY_JOBS);

/// The items `keep` accepts, in order. `cost` is what one call of `keep`
/// costs at most ([`cost`] of the filters it applies): a job within
/// [`INLINE_WORK`] runs here, a larger one on the blocking pool.
pub async fn retain<T, F>(items: Vec<T>, cost: usize, keep: F) -> Result<Vec<T>, Ec2Error>
where
    T: Send + 'static,
    F: Fn(&T) -> bool + Send + 'static,
{
    if items.len().saturating_mul(cost) <= INLINE_WORK {
        // In place: nothing moves while every item is kept.
        let mut items = items;
        items.retain(|i| keep(i));
        return Ok(items);
    }
    let _turn = HEAVY.acquire().await.map_err(|_| Ec2Error::new(503, "Unavailable", "The service is shutting down"))?;
    actix_web::web::block(move || items.into_iter().filter(|i| keep(i)).collect::<Vec<T>>()).await.map_err(|e| {
        tracing::error!(error = %e, "EC2 front: a filtering job failed");
        Ec2Error::new(500, "InternalError", "An internal error has occurred")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matcher this module replaced (`actions::images::glob` before),
    /// kept here as the reference for the semantics, with a step counter.
    /// One fix: it tried a pattern `*` as a literal first, so a `*` in the
    /// text could swallow it (`?*` did not match `?**x`); here a pattern `*`
    /// is always the wildcard, as EC2 reads it.
    fn old_glob(pattern: &str, text: &str, steps: &mut u64) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().take(256).collect(), text.chars().collect());
        let (mut i, mut j) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while j < t.len() {
            *steps += 1;
            if i < p.len() && p[i] == '*' {
                star = Some((i, j));
                i += 1;
            } else if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
                i += 1;
                j += 1;
            } else if let Some((si, sj)) = star {
                i = si + 1;
                j = sj + 1;
                star = Some((si, sj + 1));
            } else {
                return false;
            }
        }
        p[i..].iter().all(|c| *c == '*')
    }

    fn steps(pattern: &str, text: &str) -> (bool, u64) {
        let mut n = 0;
        let m = Pattern::compile(pattern).matches_counting(text, &mut n);
        (m, n)
    }

    #[test]
    fn semantics_equal_the_old_glob_on_a_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("ubuntu-*", "ubuntu-22.04", true),
            ("*22.0?", "ubuntu-22.04", true),
            ("debian*", "ubuntu-22.04", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("exactly", "exact", false),
            ("", "", true),
            ("", "x", false),
            ("*", "", true),
            ("*", "anything", true),
            ("**", "", true),
            ("?", "", false),
            ("?", "x", true),
            ("??", "x", false),
            ("*?", "", false),
            ("*?", "x", true),
            ("?*", "xy", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*ab*ab*", "abab", true),
            ("*ab*ab*", "aba", false),
            ("*a?c*", "xxabcxx", true),
            ("*a?c*", "xxacxx", false),
            ("*a?c*d", "abcd", true),
            ("*a?c*d", "abc", false),
            ("*aab", "aaab", true),
            ("*a?ab*", "aaaab", true),
            ("*?b?*", "ab", false),
            ("*?b?*", "abc", true),
            // `\` is an ordinary character: no escapes.
            ("a\\*", "a\\", true),
            ("a\\*", "a*", false),
            ("\\?", "\\x", true),
            ("\\?", "?", false),
            // A literal `?` or `*` in the text is matched by the wildcards too.
            ("?", "?", true),
            ("*", "*", true),
            // The earlier matcher's one divergence: its `*` could be taken as a literal.
            ("?*", "?**x", true),
            ("a*", "a*b", true),
            // Unicode: `?` is one character, not one byte.
            ("?", "é", true),
            ("??", "é", false),
            ("*é", "café", true),
            ("caf?", "café", true),
            ("*ü?*", "grüße", true),
            ("*ß?", "grüße", true),
            ("*ß", "grüße", false),
            ("日本*", "日本語", true),
            ("*本?", "日本語", true),
            ("Ubuntu*", "ubuntu-22.04", false),
        ];
        for (p, t, want) in cases {
            let mut n = 0;
            assert_eq!(old_glob(p, t, &mut n), *want, "the old glob on ({p:?}, {t:?})");
            assert_eq!(Pattern::compile(p).matches(t), *want, "({p:?}, {t:?})");
        }
    }

    #[test]
    fn semantics_equal_the_old_glob_on_generated_cases() {
        // A small deterministic generator over an alphabet that makes
        // near-misses likely: every pattern of up to 5 symbols against every
        // text of up to 5 characters would be 10^7 pairs; a fixed sample is plenty.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let pat_alphabet = ['a', 'b', 'é', '*', '?', '\\'];
        let text_alphabet = ['a', 'b', 'é', '*', '?', '\\'];
        for _ in 0..200_000 {
            let p: String = (0..next(8)).map(|_| pat_alphabet[next(pat_alphabet.len())]).collect();
            let t: String = (0..next(9)).map(|_| text_alphabet[next(text_alphabet.len())]).collect();
            let mut n = 0;
            assert_eq!(Pattern::compile(&p).matches(&t), old_glob(&p, &t, &mut n), "({p:?}, {t:?})");
        }
    }

    /// The case of the report: 254-character names, 255-character values
    /// `*aaa…ab`; and the other shapes that made the old matcher backtrack.
    #[test]
    fn pathological_cases_take_a_linear_number_of_steps() {
        let name = format!("{}0001", "a".repeat(250));
        let hostile = format!("*{}b", "a".repeat(253));
        let cases = [
            (hostile.clone(), name.clone()),
            // The old test's case: 100 stars, a text one `a` short.
            ("*a".repeat(100), "a".repeat(99)),
            ("*a".repeat(128), "a".repeat(255)),
            // A middle literal found late, a middle with `?` that never matches.
            (format!("*{}b*", "a".repeat(200)), "a".repeat(255)),
            (format!("*{}?b*", "a?".repeat(100)), "a".repeat(255)),
            (format!("*{}*", "?a".repeat(127)), format!("{}b", "a".repeat(254))),
            // Prefix and suffix fighting over the same characters.
            (format!("{}*{}", "a".repeat(128), "a".repeat(127)), "a".repeat(254)),
        ];
        for (p, t) in &cases {
            let (m, n) = steps(p, t);
            let mut old = 0;
            assert_eq!(m, old_glob(p, t, &mut old), "({p:?}, {t:?})");
            let bound = 4 * t.len() as u64 + 2 * p.chars().count() as u64;
            assert!(n <= bound, "{n} steps for a {}-character pattern on {} bytes (bound {bound})", p.len(), t.len());
        }
        // The old matcher on the report's case: quadratic.
        let mut old = 0;
        assert!(!old_glob(&hostile, &name, &mut old));
        assert!(old > 30_000, "the old glob took {old} steps");
        let (_, new) = steps(&hostile, &name);
        assert!(new * 50 < old, "{new} steps against the old glob's {old}");
    }

    #[test]
    fn steps_grow_linearly_with_the_text() {
        // Doubling the text doubles the steps (within a constant), for a
        // pattern whose middle segments all carry `?`.
        let p = format!("*{}*{}*", "a?".repeat(30), "b?".repeat(30));
        let (_, small) = steps(&p, &"a".repeat(10_000));
        let (_, large) = steps(&p, &"a".repeat(20_000));
        assert!(large <= 2 * small + 100, "{small} then {large}");
    }

    fn params(kv: &[(String, String)]) -> Params {
        Params::new(kv.to_vec()).unwrap()
    }

    #[test]
    fn limits_are_checked_with_ec2s_codes() {
        let mut kv = vec![("Filter.1.Name".to_string(), "key-name".to_string())];
        kv.extend((1..=MAX_VALUES).map(|i| (format!("Filter.1.Value.{i}"), format!("v{i}"))));
        let ok = parse(&params(&kv)).unwrap();
        assert_eq!(ok[0].values.raw().len(), MAX_VALUES);
        kv.push((format!("Filter.1.Value.{}", MAX_VALUES + 1), "x".into()));
        let e = parse(&params(&kv)).unwrap_err();
        assert_eq!(e.code, "FilterLimitExceeded");
        assert!(e.message.contains("'key-name'") && e.message.contains("201"), "{}", e.message);

        let long = vec![("Filter.1.Name".to_string(), "tag:team".to_string()), ("Filter.1.Value.1".into(), "x".repeat(257))];
        let e = parse(&params(&long)).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(e.message.contains("'tag:team'") && e.message.contains("257"), "{}", e.message);
        let fits = vec![("Filter.1.Name".to_string(), "tag:team".to_string()), ("Filter.1.Value.1".into(), "é".repeat(256))];
        assert!(parse(&params(&fits)).is_ok(), "the limit counts characters, not bytes");

        let many: Vec<(String, String)> = (1..=MAX_FILTERS + 1).map(|i| (format!("Filter.{i}.Name"), "key-name".into())).collect();
        let e = parse(&params(&many)).unwrap_err();
        assert_eq!(e.code, "FilterLimitExceeded");
    }

    fn kv(pairs: &[(&str, &str)]) -> Params {
        params(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
    }

    #[test]
    fn unknown_names_are_refused_naming_the_filter() {
        let f = parse(&kv(&[("Filter.1.Name", "tag:team"), ("Filter.1.Value.1", "a"), ("Filter.2.Name", "size")])).unwrap();
        assert!(check_names(&f, &["size"], true).is_ok());
        let e = check_names(&f, &["size"], false).unwrap_err();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("InvalidParameterValue", "The filter 'tag:team' is invalid"));
        let f = parse(&kv(&[("Filter.1.Name", "tag:"), ("Filter.1.Value.1", "a")])).unwrap();
        assert!(check_names(&f, &[], true).is_err(), "tag: without a key is no tag filter");
        for ok in ["tag-key", "tag-value"] {
            let f = parse(&kv(&[("Filter.1.Name", ok), ("Filter.1.Value.1", "a")])).unwrap();
            assert!(check_names(&f, &[], true).is_ok(), "{ok}");
        }
    }

    #[test]
    fn tag_filters_match_key_value_and_pairs() {
        let tags = [("team", "blue"), ("env", "prod")];
        let one = |name: &str, value: &str| Filter { name: name.into(), values: Values::compile(vec![value.into()]) };
        assert_eq!(one("tag:team", "bl*").tags(tags), Some(true));
        assert_eq!(one("tag:team", "prod").tags(tags), Some(false), "the value of another key");
        assert_eq!(one("tag-key", "e?v").tags(tags), Some(true));
        assert_eq!(one("tag-key", "blue").tags(tags), Some(false));
        assert_eq!(one("tag-value", "prod").tags(tags), Some(true));
        assert_eq!(one("tag-value", "team").tags(tags), Some(false));
        assert_eq!(one("size", "1").tags(tags), None);
        assert!(!one("size", "1").any(None));
    }

    #[test]
    fn pages_cut_and_tokens_round_trip() {
        let p = Page::parse(&kv(&[("MaxResults", "5")]), 5..=500).unwrap();
        let (first, token) = p.cut((0..12).collect::<Vec<_>>());
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        let token = token.unwrap();
        let p = Page::parse(&kv(&[("MaxResults", "5"), ("NextToken", &token)]), 5..=500).unwrap();
        let (second, token) = p.cut((0..12).collect::<Vec<_>>());
        assert_eq!(second, vec![5, 6, 7, 8, 9]);
        let p = Page::parse(&kv(&[("MaxResults", "5"), ("NextToken", &token.unwrap())]), 5..=500).unwrap();
        assert_eq!(p.cut((0..12).collect::<Vec<_>>()), (vec![10, 11], None));
        // Without MaxResults: everything, no token.
        assert_eq!(Page::parse(&kv(&[]), 5..=500).unwrap().cut(vec![1, 2, 3]), (vec![1, 2, 3], None));
        assert_eq!(Page::parse(&kv(&[("MaxResults", "4")]), 5..=500).unwrap_err().code, "InvalidParameterValue");
        assert_eq!(Page::parse(&kv(&[("MaxResults", "501")]), 5..=500).unwrap_err().code, "InvalidParameterValue");
        let e = Page::parse(&kv(&[("NextToken", "forged")]), 5..=500).unwrap_err();
        assert_eq!(e.message, "The NextToken is not one this broker gave out");
    }

    #[actix_web::test]
    async fn retain_keeps_order_inline_and_on_the_blocking_pool() {
        let values = Values::compile(vec!["*7".into()]);
        let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let small = retain(items.clone(), 1, {
            let v = values.clone();
            move |s: &String| v.any(s)
        })
        .await
        .unwrap();
        let large = retain(items, INLINE_WORK, move |s: &String| values.any(s)).await.unwrap();
        assert_eq!(small, large);
        assert_eq!(small.first().map(String::as_str), Some("7"));
        assert_eq!(small.len(), 10);
    }
}
