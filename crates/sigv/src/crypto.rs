//! Hash and MAC primitives, all infallible.
//!
//! HMAC-SHA256 comes from the `hmac`/`sha2` crates. HMAC-SHA1 (needed only by
//! the legacy SigV2 `SignatureMethod=HmacSHA1`) is implemented here because
//! the workspace does not depend on a SHA-1 crate; it is checked against the
//! FIPS 180 and RFC 2202 test vectors below. If the workspace ever gains the
//! `sha1` crate, [`hmac_sha1`] can become a three-line wrapper like
//! [`hmac_sha256`].

use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

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

/// HMAC-SHA1 (RFC 2104 over the local [`sha1`]).
pub(crate) fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&sha1(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Vec::with_capacity(BLOCK + data.len());
    inner.extend(k.iter().map(|b| b ^ 0x36));
    inner.extend_from_slice(data);
    let inner_hash = sha1(&inner);

    let mut outer = Vec::with_capacity(BLOCK + inner_hash.len());
    outer.extend(k.iter().map(|b| b ^ 0x5c));
    outer.extend_from_slice(&inner_hash);
    sha1(&outer)
}

/// SHA-1 (FIPS 180-4). Only ever used inside HMAC for SigV2 compatibility.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];

    // Padding: 0x80, zeros, then the 64-bit big-endian bit length.
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());

    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }

    let mut out = [0u8; 20];
    for (dst, word) in out.chunks_exact_mut(4).zip(h) {
        dst.copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
