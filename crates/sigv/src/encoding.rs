//! RFC 3986 percent-encoding as AWS uses it, and query/form parsing.

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::SigError;

/// Everything except the RFC 3986 unreserved set `A-Z a-z 0-9 - _ . ~`.
const ENCODE_ALL: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Like [`ENCODE_ALL`] but keeps `/` (for whole paths).
const ENCODE_KEEP_SLASH: &AsciiSet = &ENCODE_ALL.remove(b'/');

/// Percent-encodes `s` the way both AWS signature versions require.
///
/// The RFC 3986 unreserved characters `A-Z a-z 0-9 - _ . ~` are kept; every
/// other byte of the UTF-8 encoding becomes `%XX` with uppercase hex. In
/// particular a space becomes `%20` (never `+`), `*` becomes `%2A` and `%`
/// itself becomes `%25`. `/` is kept when `encode_slash` is false (used for
/// paths) and becomes `%2F` otherwise (query keys and values).
///
/// ```
/// use cloudbroker_sigv::uri_encode;
/// assert_eq!(uri_encode("a b*~/ሴ", true), "a%20b%2A~%2F%E1%88%B4");
/// assert_eq!(uri_encode("/a b/", false), "/a%20b/");
/// ```
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    uri_encode_bytes(s.as_bytes(), encode_slash)
}

/// [`uri_encode`] for raw bytes (which need not be UTF-8).
pub(crate) fn uri_encode_bytes(bytes: &[u8], encode_slash: bool) -> String {
    let set = if encode_slash { ENCODE_ALL } else { ENCODE_KEEP_SLASH };
    percent_encode(bytes, set).to_string()
}

/// Encodes `pairs` as `k=v&k=v` (in the given order) with [`uri_encode`].
///
/// Use it to put presigned parameters (or a SigV2 parameter list) on a URL or
/// in a form body; because the encoding is the canonical one, what the server
/// decodes is exactly what was signed.
pub fn encode_query(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&uri_encode(k, true));
        out.push('=');
        out.push_str(&uri_encode(v, true));
    }
    out
}

/// Decodes a raw URL query string (`a=1&b=%20x`) into `(key, value)` pairs.
///
/// `%XX` escapes are decoded; `+` is kept as a literal `+` (AWS SDKs always
/// send a space as `%20` in URLs, and SigV4 canonicalizes what was decoded).
/// Empty segments (`a=1&&b=2`) are skipped; a segment without `=` yields an
/// empty value. The leading `?` must not be included.
///
/// # Errors
///
/// [`SigError::InvalidEncoding`] if an escape decodes to invalid UTF-8.
pub fn parse_query(raw: &str) -> Result<Vec<(String, String)>, SigError> {
    parse_pairs(raw, false)
}

/// Decodes an `application/x-www-form-urlencoded` body into pairs.
///
/// Same as [`parse_query`] except that `+` decodes to a space, as the HTML form
/// encoding prescribes. EC2 Query API clients POST their parameters this way.
///
/// # Errors
///
/// [`SigError::InvalidEncoding`] if an escape decodes to invalid UTF-8.
pub fn parse_form_urlencoded(raw: &str) -> Result<Vec<(String, String)>, SigError> {
    parse_pairs(raw, true)
}

fn parse_pairs(raw: &str, plus_is_space: bool) -> Result<Vec<(String, String)>, SigError> {
    let mut out = Vec::new();
    for segment in raw.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = segment.split_once('=').unwrap_or((segment, ""));
        out.push((decode(k, plus_is_space)?, decode(v, plus_is_space)?));
    }
    Ok(out)
}

fn decode(s: &str, plus_is_space: bool) -> Result<String, SigError> {
    let replaced;
    let s = if plus_is_space && s.contains('+') {
        replaced = s.replace('+', " ");
        replaced.as_str()
    } else {
        s
    };
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| SigError::InvalidEncoding(format!("`{s}` is not UTF-8 once decoded")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_kept_everything_else_encoded() {
        let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        assert_eq!(uri_encode(unreserved, true), unreserved);
        assert_eq!(uri_encode(" ", true), "%20");
        assert_eq!(uri_encode("+", true), "%2B");
        assert_eq!(uri_encode("*", true), "%2A");
        assert_eq!(uri_encode("%", true), "%25");
        assert_eq!(uri_encode("=&", true), "%3D%26");
        assert_eq!(uri_encode("/", true), "%2F");
        assert_eq!(uri_encode("/", false), "/");
        assert_eq!(uri_encode("\u{e9}", true), "%C3%A9");
        assert_eq!(uri_encode("ሴ", true), "%E1%88%B4");
    }

    #[test]
    fn query_and_form_parsing() {
        let q = parse_query("a=1&b=x%20y+z&&c&%E1%88%B4=bar").unwrap();
        assert_eq!(
            q,
            vec![("a".into(), "1".into()), ("b".into(), "x y+z".into()), ("c".into(), String::new()), ("ሴ".into(), "bar".into()),]
        );
        let f = parse_form_urlencoded("Action=Run+It&V=a%2Bb").unwrap();
        assert_eq!(f, vec![("Action".into(), "Run It".into()), ("V".into(), "a+b".into())]);
        assert!(matches!(parse_query("a=%FF"), Err(SigError::InvalidEncoding(_))));
    }

    #[test]
    fn encode_query_round_trips() {
        let pairs = vec![("k y".to_string(), "v/a+l*".to_string()), ("z".to_string(), String::new())];
        let s = encode_query(&pairs);
        assert_eq!(s, "k%20y=v%2Fa%2Bl%2A&z=");
        assert_eq!(parse_query(&s).unwrap(), pairs);
    }
}
