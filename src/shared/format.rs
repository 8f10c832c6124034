//! The format of one block in Redis: a header naming exactly which bytes these are,
//! the bytes, and an HMAC-SHA256 over both, keyed by the tenant's MAC key.
//!
//! ```text
//! magic "VCCS" | format u16 | header length u16 | tenant [8] | content key [16]
//! | file size u64 | block size u64 | block index u64 | block length u64
//! | validator kind u8 (0 none, 1 ETag, 2 Last-Modified) | validator len u16 | validator
//! | guid len u16 | guid | key len u16 | key
//! | data [block length] | HMAC-SHA256 [32]
//! ```
//!
//! All integers little-endian. [`decode`] accepts a value only if it is whole, its MAC
//! verifies, and every identity field equals what the reader expects; anything else is
//! a [`Reject`] (a miss), never data.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::version::{ContentVersion, TenantId, Validator};

const MAGIC: &[u8; 4] = b"VCCS";
pub(super) const FORMAT: u16 = 1;
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Which block a value must be.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expect<'a> {
    pub tenant: TenantId,
    pub version: &'a ContentVersion,
    pub block_size: u64,
    pub index: u64,
    /// The block's length for this version's size.
    pub len: u64,
}

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reject {
    /// Shorter than its header or lengths say, or longer.
    Truncated,
    /// Not a block value of this format.
    Format,
    /// The MAC does not verify (tampered, or written with another key).
    Mac,
    /// Another tenant's block.
    Tenant,
    /// Another version, file, block size, index or length.
    Identity,
}

fn mac(key: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes a key of any length"),
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    // Fields longer than u16::MAX are cut; the reader compares them with its own, so a
    // cut field only ever makes a miss.
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&s[..n]);
}

/// The value for block `index` of `version`.
pub(super) fn encode(
    mac_key: &[u8; 32],
    tenant: TenantId,
    version: &ContentVersion,
    block_size: u64,
    index: u64,
    validator: Option<&Validator>,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 160 + MAC_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&[0, 0]); // header length, filled in below
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(version.id.as_bytes());
    for n in [version.size, block_size, index, data.len() as u64] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    let (kind, v) = match validator {
        None => (0u8, ""),
        Some(Validator::ETag(e)) => (1, e.as_str()),
        Some(Validator::LastModified(l)) => (2, l.as_str()),
    };
    out.push(kind);
    put_str(&mut out, v.as_bytes());
    put_str(&mut out, version.guid.as_bytes());
    put_str(&mut out, version.key.as_bytes());
    let header_len = out.len().min(u16::MAX as usize) as u16;
    out[6..8].copy_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(data);
    let mut m = mac(mac_key);
    m.update(&out);
    out.extend_from_slice(&m.finalize().into_bytes());
    out
}

/// A cursor over a header.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Reject> {
        let end = self.at.checked_add(n).ok_or(Reject::Truncated)?;
        let s = self.buf.get(self.at..end).ok_or(Reject::Truncated)?;
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, Reject> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    fn u64(&mut self) -> Result<u64, Reject> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn str(&mut self) -> Result<&'a [u8], Reject> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// The block in `value`, if it is exactly the block `expect` names, intact.
pub(super) fn decode(
    mac_key: &[u8; 32],
    value: Vec<u8>,
    expect: &Expect<'_>,
) -> Result<(Bytes, Option<Validator>), Reject> {
    let mut r = Reader { buf: &value, at: 0 };
    if r.take(4)? != MAGIC || r.u16()? != FORMAT {
        return Err(Reject::Format);
    }
    let header_len = r.u16()? as usize;
    let tenant = r.take(8)?;
    let content = r.take(16)?;
    let size = r.u64()?;
    let block_size = r.u64()?;
    let index = r.u64()?;
    let len = r.u64()?;
    let kind = r.take(1)?[0];
    let validator = r.str()?;
    let guid = r.str()?;
    let key = r.str()?;
    if r.at != header_len {
        return Err(Reject::Format);
    }
    let data_len = usize::try_from(len).map_err(|_| Reject::Truncated)?;
    let total = header_len
        .checked_add(data_len)
        .and_then(|n| n.checked_add(MAC_LEN))
        .ok_or(Reject::Truncated)?;
    if value.len() != total {
        return Err(Reject::Truncated);
    }
    let body_end = header_len + data_len;
    let mut m = mac(mac_key);
    m.update(&value[..body_end]);
    m.verify_slice(&value[body_end..])
        .map_err(|_| Reject::Mac)?;
    if tenant != expect.tenant.as_bytes() {
        return Err(Reject::Tenant);
    }
    let v = expect.version;
    let same = content == v.id.as_bytes()
        && size == v.size
        && block_size == expect.block_size
        && index == expect.index
        && len == expect.len
        && guid == v.guid.as_bytes()
        && key == v.key.as_bytes();
    if !same {
        return Err(Reject::Identity);
    }
    let validator = String::from_utf8(validator.to_vec()).map_err(|_| Reject::Format)?;
    let validator = match kind {
        0 if validator.is_empty() => None,
        1 => Some(Validator::ETag(validator)),
        2 => Some(Validator::LastModified(validator)),
        _ => return Err(Reject::Format),
    };
    let data = Bytes::from(value).slice(header_len..body_end);
    Ok((data, validator))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn tenant() -> TenantId {
        TenantId::new("http://mock/interaction-content", "test")
    }

    fn version(size: u64) -> ContentVersion {
        ContentVersion::new(tenant(), "g-1", "callRecording", size, None)
    }

    fn expect(v: &ContentVersion, index: u64, len: u64) -> Expect<'_> {
        Expect {
            tenant: tenant(),
            version: v,
            block_size: 4,
            index,
            len,
        }
    }

    fn value(v: &ContentVersion, index: u64, data: &[u8]) -> Vec<u8> {
        let etag = Validator::ETag("\"e\"".into());
        encode(&KEY, tenant(), v, 4, index, Some(&etag), data)
    }

    #[test]
    fn round_trip() {
        let v = version(10);
        let got = decode(&KEY, value(&v, 2, b"ij"), &expect(&v, 2, 2)).expect("decodes");
        assert_eq!(&got.0[..], b"ij");
        assert_eq!(got.1, Some(Validator::ETag("\"e\"".into())));
        let none = encode(&KEY, tenant(), &v, 4, 0, None, b"abcd");
        assert_eq!(decode(&KEY, none, &expect(&v, 0, 4)).expect("ok").1, None);
    }

    #[test]
    fn anything_but_the_exact_block_is_refused() {
        let v = version(10);
        let good = value(&v, 1, b"efgh");
        let e = expect(&v, 1, 4);
        // Every truncation, and one byte more.
        for n in 0..good.len() {
            assert!(decode(&KEY, good[..n].to_vec(), &e).is_err(), "cut at {n}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&KEY, longer, &e), Err(Reject::Truncated));
        // Every single flipped bit.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(decode(&KEY, bad, &e).is_err(), "flip at {i}");
        }
        assert_eq!(decode(&[8; 32], good.clone(), &e), Err(Reject::Mac));
        assert_eq!(decode(&KEY, b"garbage".to_vec(), &e), Err(Reject::Format));
        // Another tenant (with our key), another version, index, block size.
        let other = TenantId::new("http://other/interaction-content", "test");
        let theirs = encode(&KEY, other, &v, 4, 1, None, b"efgh");
        assert_eq!(decode(&KEY, theirs, &e), Err(Reject::Tenant));
        let v2 = version(11);
        assert_eq!(
            decode(&KEY, value(&v2, 1, b"efgh"), &e),
            Err(Reject::Identity)
        );
        assert_eq!(
            decode(&KEY, good.clone(), &expect(&v, 0, 4)),
            Err(Reject::Identity)
        );
        let e8 = Expect { block_size: 8, ..e };
        assert_eq!(decode(&KEY, good, &e8), Err(Reject::Identity));
    }
}
