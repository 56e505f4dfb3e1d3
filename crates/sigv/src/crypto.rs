//! Hash and MAC primitives, all infallible.
//!
//! HMAC-SHA256 and HMAC-SHA1 (the latter needed only by the legacy SigV2
//! `SignatureMethod=HmacSHA1`) both come from the `hmac` crate, over `sha2`
//! and `sha1`; nothing here implements a hash itself. The tests below pin
//! them to the FIPS 180, RFC 2202 and RFC 4231 vectors.

use hmac::digest::{Digest, Key, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// Lowercase hex SHA-256 of `data` (the SigV4 payload hash).
///
/// ```
/// assert_eq!(
///     cloudbroker_sigv::sha256_hex(b""),
///     cloudbroker_sigv::EMPTY_PAYLOAD_SHA256,
/// );
/// ```
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// HMAC-SHA256.
///
/// The key is pre-processed exactly as RFC 2104 prescribes (hashed when longer
/// than the 64-byte block, then zero-padded to the block size), which lets us
/// use the infallible `KeyInit::new` instead of the `Result`-returning
/// `new_from_slice`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = Key::<Hmac<Sha256>>::default();
    if key.len() > block.len() {
        let hashed = Sha256::digest(key);
        block[..hashed.len()].copy_from_slice(&hashed);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA1 (SigV2 `HmacSHA1` only), the key prepared as for
/// [`hmac_sha256`] (SHA-1's block is 64 bytes too).
pub(crate) fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut block = Key::<Hmac<Sha1>>::default();
    if key.len() > block.len() {
        let hashed = Sha1::digest(key);
        block[..hashed.len()].copy_from_slice(&hashed);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha1> as KeyInit>::new(&block);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sha1(data: &[u8]) -> [u8; 20] {
        Sha1::digest(data).into()
    }

    // Expected values: FIPS 180 / RFC 4231 / RFC 2202 examples, cross-checked
    // with Python's hashlib/hmac (`hashlib.sha1(b'x'*n).hexdigest()` etc.).
    #[test]
    fn sha1_known_answers() {
        assert_eq!(hex::encode(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex::encode(sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex::encode(sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        // Padding boundaries.
        for (n, want) in [
            (55, "cef734ba81a024479e09eb5a75b6ddae62e6abf1"),
            (56, "901305367c259952f4e7af8323f480d59f81335b"),
            (63, "0ddc4e0cccd9a12850deb5abb0853a4425559fec"),
            (64, "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163"),
            (65, "78c741ddc482e4cdf8c474a0876347a0905b6233"),
        ] {
            assert_eq!(hex::encode(sha1(&vec![b'x'; n])), want, "len {n}");
        }
        assert_eq!(hex::encode(sha1(&vec![b'a'; 1_000_000])), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    }

    #[test]
    fn hmac_sha1_rfc2202() {
        assert_eq!(hex::encode(hmac_sha1(&[0x0b; 20], b"Hi There")), "b617318655057264e28bc0b6fb378c8ef146be00");
        assert_eq!(
            hex::encode(hmac_sha1(&[0xaa; 80], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
        assert_eq!(hex::encode(hmac_sha1(&[0xaa; 64], b"exactly one block of key")), "839d3f2e2be5f44414a97eb3c2e057e0fbce044d");
    }

    #[test]
    fn hmac_sha256_rfc4231() {
        assert_eq!(hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        // Key longer than the block size: must be hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Must agree with the crate's own variable-length key handling.
        for len in [0usize, 1, 32, 63, 64, 65, 200] {
            let key = vec![0x5a; len];
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
            mac.update(b"data");
            let want: [u8; 32] = mac.finalize().into_bytes().into();
            assert_eq!(hmac_sha256(&key, b"data"), want, "key len {len}");
        }
    }
}
