//! A minimal streaming XML writer for EC2 answers: elements are opened and
//! closed in order and every text is escaped, so no answer can be broken
//! (or extended) by a value a user chose (a tag, a VM name).

use std::fmt::Write;

use cloudbroker_core::domain::time::{push_rfc3339, Fraction};

/// The namespace of EC2 answers.
pub const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// An XML document being written.
pub struct Xml {
    buf: String,
}

/// Whether a byte needs escaping or dropping (all such are ASCII).
#[inline]
fn special(b: u8) -> bool {
    SPECIAL[usize::from(b)]
}

/// [`special`] as a table (one load per byte; the scan is most of an
/// answer's cost, its values rarely having anything to escape).
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = !matches!(b as u8, b'\t' | b'\n' | b'\r');
        b += 1;
    }
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[b'"' as usize] = true;
    t[b'\'' as usize] = true;
    t
};

/// Appends `text` escaped for element content. Runs of plain text are
/// copied whole (most values need no escaping at all).
pub fn escape_into(buf: &mut String, text: &str) {
    let bytes = text.as_bytes();
    // Most values: nothing to escape, one copy.
    let Some(first) = bytes.iter().position(|&b| special(b)) else {
        buf.push_str(text);
        return;
    };
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        if !special(b) {
            continue;
        }
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        buf.push_str(&text[start..i]);
        match b {
            b'<' => buf.push_str("&lt;"),
            b'>' => buf.push_str("&gt;"),
            b'&' => buf.push_str("&amp;"),
            b'"' => buf.push_str("&quot;"),
            b'\'' => buf.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped: drop them.
            _ => {}
        }
        start = i + 1;
    }
    buf.push_str(&text[start..]);
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`: the broker's one RFC 3339
/// writer with EC2's millisecond fraction.
pub fn push_time(buf: &mut String, t: &chrono::DateTime<chrono::Utc>) {
    push_rfc3339(buf, t, Fraction::Millis);
}

impl Xml {
    /// A document whose root is `<{root} xmlns=NS>` with a `requestId`.
    pub fn response(root: &str, request_id: &str) -> Self {
        let mut x = Self { buf: String::with_capacity(1024) };
        let _ = write!(x.buf, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NS}\">");
        x.leaf("requestId", request_id);
        x
    }

    /// A document with a bare root (error answers).
    pub fn bare(root: &str) -> Self {
        let mut x = Self { buf: String::with_capacity(256) };
        let _ = write!(x.buf, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root}>");
        x
    }

    /// Opens an element.
    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
        self
    }

    /// Closes an element.
    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
        self
    }

    /// `<tag>text</tag>`, text escaped.
    pub fn leaf(&mut self, tag: &str, text: &str) -> &mut Self {
        self.open(tag);
        escape_into(&mut self.buf, text);
        self.close(tag)
    }

    /// `<tag>value</tag>` for a value whose text needs no escaping (numbers,
    /// dates), formatted straight into the document.
    pub fn leaf_display(&mut self, tag: &str, value: impl std::fmt::Display) -> &mut Self {
        self.open(tag);
        let _ = write!(self.buf, "{value}");
        self.close(tag)
    }

    /// `<tag>` + the parts, each escaped + `</tag>` (an id and its prefix,
    /// without building the joined text first).
    pub fn leaf_parts(&mut self, tag: &str, parts: &[&str]) -> &mut Self {
        self.open(tag);
        for p in parts {
            escape_into(&mut self.buf, p);
        }
        self.close(tag)
    }

    /// `<tag>2024-05-01T12:00:00.000Z</tag>`: EC2's timestamp form (UTC,
    /// milliseconds), written digit by digit.
    pub fn leaf_time(&mut self, tag: &str, t: &chrono::DateTime<chrono::Utc>) -> &mut Self {
        self.open(tag);
        push_time(&mut self.buf, t);
        self.close(tag)
    }

    /// Reserves room for `additional` more bytes (a caller that knows the size of what follows).
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// A leaf only when there is a value.
    pub fn opt(&mut self, tag: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(tag, t);
        }
        self
    }

    /// Closes the root and returns the text.
    pub fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_break_out_of_their_element() {
        let mut x = Xml::response("R", "req-1");
        x.leaf("name", "</name><evil attr=\"1\">&\u{1}");
        let doc = x.finish("R");
        assert!(doc.contains("<name>&lt;/name&gt;&lt;evil attr=&quot;1&quot;&gt;&amp;</name>"), "{doc}");
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>req-1</requestId>"));
        assert!(doc.ends_with("</R>"));
    }

    #[test]
    fn escaping_keeps_multibyte_text_and_drops_control_characters() {
        let mut out = String::new();
        escape_into(&mut out, "héllo \u{1F600}<b>&'\u{0}\tend");
        assert_eq!(out, "héllo \u{1F600}&lt;b&gt;&amp;&apos;\tend");
        let mut plain = String::from("x");
        escape_into(&mut plain, "plain-text_123");
        assert_eq!(plain, "xplain-text_123");
        let mut x = Xml::bare("R");
        x.leaf_display("code", 16u8);
        assert_eq!(x.finish("R"), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R><code>16</code></R>");
    }

    #[test]
    fn the_table_marks_exactly_the_bytes_xml_forbids_or_escapes() {
        for b in 0..=255u8 {
            let rule = matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'') || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'));
            assert_eq!(special(b), rule, "byte {b:#04x}");
        }
        // The special byte first, last, alone, and after a long plain run.
        for (text, want) in [
            ("<", "&lt;"),
            ("a&", "a&amp;"),
            ("&a", "&amp;a"),
            ("\u{7}", ""),
            ("plain and long -----------'", "plain and long -----------&apos;"),
        ] {
            let mut out = String::new();
            escape_into(&mut out, text);
            assert_eq!(out, want, "{text:?}");
        }
    }

    #[test]
    fn times_match_chronos_format_everywhere() {
        use chrono::TimeZone;
        let format = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let mut seen = 0;
        for ms in [0i64, 1, 999, 1_000, 59_999, 86_399_999, 951_782_400_000, 1_709_251_199_999, 1_733_312_345_678, 253_402_300_799_999] {
            let t = chrono::Utc.timestamp_millis_opt(ms).unwrap();
            let mut out = String::new();
            push_time(&mut out, &t);
            assert_eq!(out, format(&t), "{ms}");
            seen += 1;
        }
        // A pseudo-random sweep of instants between 1970 and 2100.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = chrono::Utc.timestamp_millis_opt((x % 4_102_444_800_000) as i64).unwrap();
            let mut out = String::new();
            push_time(&mut out, &t);
            assert_eq!(out, format(&t));
            seen += 1;
        }
        // Outside four-digit years: chrono's own form.
        let far = chrono::Utc.with_ymd_and_hms(12_345, 1, 2, 3, 4, 5).unwrap();
        let mut out = String::new();
        push_time(&mut out, &far);
        assert_eq!(out, format(&far));
        assert_eq!(seen, 10_010);
    }
}
