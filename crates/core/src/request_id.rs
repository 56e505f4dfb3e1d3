//! The request id: one per HTTP request, chosen once at the edge (the
//! client's `X-Request-Id` when it is short and plain, else a fresh one) and
//! then only carried — by the log span of the request, the UI's error pages
//! and the EC2 front's `RequestId`. It is plain ASCII by construction, so it
//! can go into a header, a log field or an XML text unescaped.

/// Longest request id accepted from a client.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request's id: 1..=128 characters of `[A-Za-z0-9._:-]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A client's id, if it is acceptable (else the caller generates one).
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= MAX_REQUEST_ID_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(s.to_string()))
    }

    /// A fresh random id (32 lowercase hex digits).
    pub fn generate() -> Self {
        // 128 bits from the thread's RNG (no system call per request).
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert_eq!(RequestId::parse("abc-123_x.y:z").map(|r| r.0), Some("abc-123_x.y:z".into()));
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
        assert!(RequestId::parse(&"a".repeat(128)).is_some());
        for bad in ["a b", "a\nb", "a\"b", "é", "a/b", "<script>"] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(RequestId::generate().as_str().len(), 32);
        assert_ne!(RequestId::generate(), RequestId::generate());
    }
}
