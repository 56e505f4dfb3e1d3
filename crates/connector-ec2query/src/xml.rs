//! A small XML DOM over quick-xml, enough for EC2 Query API answers.
//!
//! Element names are kept without their namespace prefix (`ec2:item` and
//! `item` are the same), and namespace declarations are ignored, so answers
//! from clouds that use another (or no) `xmlns` parse the same way. Text is
//! unescaped and trimmed.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Deepest nesting accepted (EC2 answers are less than 15 levels deep).
const MAX_DEPTH: usize = 128;

/// One XML element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name (prefix removed).
    pub name: String,
    /// The element's own text (concatenated, trimmed).
    pub text: String,
    /// Child elements, in document order.
    pub children: Vec<Element>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(pub String);

impl Element {
    /// The first direct child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All direct children called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The non-empty text of the direct child `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str()).filter(|t| !t.is_empty())
    }

    /// Follows a path of direct children.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        let mut cur = self;
        for n in names {
            cur = cur.child(n)?;
        }
        Some(cur)
    }

    /// The `<item>` children of the direct child `set` (EC2's list encoding:
    /// `<instancesSet><item>..</item><item>..</item></instancesSet>`).
    pub fn items<'a>(&'a self, set: &str) -> impl Iterator<Item = &'a Element> + 'a {
        self.child(set).into_iter().flat_map(|s| s.children_named("item"))
    }

    /// The first element called `name` in a depth-first, document-order walk
    /// (this element included).
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// Like [`Element::find`], but only elements for which `pred` holds.
    pub fn find_where(&self, name: &str, pred: &dyn Fn(&Element) -> bool) -> Option<&Element> {
        if self.name == name && pred(self) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find_where(name, pred))
    }
}

fn local_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Parses a document and returns its root element.
pub fn parse(doc: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(doc);
    reader.config_mut().trim_text(true);
    // The element being built at each depth; stack[0] is a synthetic document node.
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if stack.len() > MAX_DEPTH {
                    return Err(XmlError(format!("nesting deeper than {MAX_DEPTH}")));
                }
                stack.push(Element { name: local_name(e.local_name().as_ref()), ..Element::default() });
            }
            Ok(Event::Empty(e)) => {
                let el = Element { name: local_name(e.local_name().as_ref()), ..Element::default() };
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(el);
                }
            }
            Ok(Event::End(_)) => {
                if stack.len() < 2 {
                    return Err(XmlError("unbalanced end tag".into()));
                }
                if let Some(mut done) = stack.pop() {
                    let trimmed = done.text.trim();
                    if trimmed.len() != done.text.len() {
                        done.text = trimmed.to_string();
                    }
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(done);
                    }
                }
            }
            Ok(Event::Text(t)) => {
                let s = t.unescape().map_err(|e| XmlError(e.to_string()))?;
                if let Some(cur) = stack.last_mut() {
                    cur.text.push_str(&s);
                }
            }
            Ok(Event::CData(c)) => {
                let s = c.decode().map_err(|e| XmlError(e.to_string()))?;
                if let Some(cur) = stack.last_mut() {
                    cur.text.push_str(&s);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {} // declaration, comments, processing instructions, doctype
            Err(e) => return Err(XmlError(format!("at byte {}: {e}", reader.error_position()))),
        }
    }
    if stack.len() != 1 {
        return Err(XmlError("document ends inside an element".into()));
    }
    let mut doc_node = stack.pop().unwrap_or_default();
    match doc_node.children.len() {
        0 => Err(XmlError("no root element".into())),
        1 => Ok(doc_node.children.remove(0)),
        _ => Err(XmlError("more than one root element".into())),
    }
}

/// The `(code, message)` of an EC2 error document: the first `<Error>` with a
/// `<Code>` (`<Response><Errors><Error>` for EC2, `<ErrorResponse><Error>`
/// for some compatible clouds). `None` if the document is not one.
pub fn error_code(root: &Element) -> Option<(String, String)> {
    let err = root.find_where("Error", &|e| e.child_text("Code").is_some())?;
    let code = err.child_text("Code")?.to_string();
    let message = err.child_text("Message").unwrap_or("").to_string();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_namespaces() {
        let a = parse(r#"<?xml version="1.0"?><R xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><x>1</x><set><item><v> a &amp; b </v></item><item><v/></item></set></R>"#).unwrap();
        let b = parse(r#"<ec2:R xmlns:ec2="urn:x"><ec2:x>1</ec2:x><ec2:set><ec2:item><ec2:v>a &amp; b</ec2:v></ec2:item><ec2:item><ec2:v></ec2:v></ec2:item></ec2:set></ec2:R>"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.name, "R");
        assert_eq!(a.child_text("x"), Some("1"));
        let vs: Vec<_> = a.items("set").map(|i| i.child("v").map(|v| v.text.clone())).collect();
        assert_eq!(vs, vec![Some("a & b".to_string()), Some(String::new())]);
        assert_eq!(a.items("set").nth(1).and_then(|i| i.child_text("v")), None);
        assert_eq!(a.path(&["set", "item", "v"]).map(|e| e.text.as_str()), Some("a & b"));
    }

    #[test]
    fn cdata_and_comments() {
        let e = parse("<a><!-- c --><b><![CDATA[<x>]]></b></a>").unwrap();
        assert_eq!(e.child_text("b"), Some("<x>"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("").is_err());
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a></a><b></b>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("<html><body>Bad Gateway").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 5) + &"</a>".repeat(MAX_DEPTH + 5);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn finds_error_codes() {
        let ec2 = parse(
            "<Response><Errors><Error><Code>AuthFailure</Code><Message>no</Message></Error></Errors><RequestID>r</RequestID></Response>",
        )
        .unwrap();
        assert_eq!(error_code(&ec2), Some(("AuthFailure".into(), "no".into())));
        let other =
            parse("<ErrorResponse xmlns=\"x\"><Error><Type>Sender</Type><Code>InvalidAction</Code></Error></ErrorResponse>").unwrap();
        assert_eq!(error_code(&other), Some(("InvalidAction".into(), String::new())));
        let ok = parse("<DescribeRegionsResponse><regionInfo/></DescribeRegionsResponse>").unwrap();
        assert_eq!(error_code(&ok), None);
    }
}
