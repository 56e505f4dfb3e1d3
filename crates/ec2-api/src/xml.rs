//! A minimal streaming XML writer for EC2 answers: elements are opened and
//! closed in order and every text is escaped, so no answer can be broken
//! (or extended) by a value a user chose (a tag, a VM name).

use std::fmt::Write;

/// The namespace of EC2 answers.
pub const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// An XML document being written.
pub struct Xml {
    buf: String,
}

/// Whether a byte needs escaping or dropping (all such are ASCII).
#[inline]
fn special(b: u8) -> bool {
    matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'') || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
}

/// Appends `text` escaped for element content. Runs of plain text are
/// copied whole (most values need no escaping at all).
pub fn escape_into(buf: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
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
}
