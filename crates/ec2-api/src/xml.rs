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

/// Appends `text` escaped for element content.
pub fn escape_into(buf: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => buf.push_str("&lt;"),
            '>' => buf.push_str("&gt;"),
            '&' => buf.push_str("&amp;"),
            '"' => buf.push_str("&quot;"),
            '\'' => buf.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped: drop them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => buf.push(c),
        }
    }
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
}
