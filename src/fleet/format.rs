//! The format of one block in Redis (format 2): a short clear header naming which block
//! this is, then the block sealed with AES-256-GCM under the fleet's Redis key
//! ([`crate::seal`], `Purpose::Redis`), so whoever reads Redis (a `GET`, `MONITOR`, a
//! replica, an RDB file) learns nothing of the recording.
//!
//! ```text
//! magic "VCCS" | format u16 (2) | tenant [8] | content key [16]
//! | block size u64 | block index u64 | block length u64 | validator len u16
//! | nonce [12] | sealed( validator kind u8 (0 none, 1 ETag, 2 Last-Modified)
//!                       | validator | data [block length] ) | tag [16]
//! associated data: "vccfs-redis-block-v2" | Redis key (len u32) | clear header
//!                  | file size u64 | guid (len u16) | content key name (len u16)
//! ```
//!
//! All integers little-endian. The clear header holds nothing the key name does not
//! already say (tenant hash, content key, block size, index) but the lengths, so the
//! guid, the validator and the bytes are never in the clear.
//!
//! Invariants:
//! - [`decode`] builds the associated data from what the reader *expects* (the key it
//!   read, the tenant, the version, block size, index and length), never from what it
//!   read: a value copied under another key, of another tenant, version, key or block,
//!   truncated, extended, flipped or forged does not open, and is a [`Reject`] (a
//!   miss), never data. The clear fields are checked first only to say *why*.
//! - A value of another format (format 1's clear values included) is [`Reject::Format`].

use bytes::Bytes;

use crate::seal::{Sealer, OVERHEAD};
use crate::version::{ContentVersion, TenantId, Validator};

const MAGIC: &[u8; 4] = b"VCCS";
pub(super) const FORMAT: u16 = 2;
const AAD_LABEL: &[u8] = b"vccfs-redis-block-v2";
/// Bytes of the clear header.
const HEADER: usize = 4 + 2 + 8 + 16 + 8 * 3 + 2;
const NONCE: usize = 12;

/// Which block a value must be.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expect<'a> {
    /// The Redis key the value was read from.
    pub redis_key: &'a str,
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
    /// Does not open: tampered, moved to another key, or sealed with another key.
    Unsealed,
    /// Another tenant's block.
    Tenant,
    /// Another version, file, block size, index or length.
    Identity,
}

/// The clear header of block `index` (of `len` bytes) of `version`.
fn header(
    tenant: TenantId,
    version: &ContentVersion,
    block_size: u64,
    index: u64,
    len: u64,
    validator_len: u16,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(version.id.as_bytes());
    for n in [block_size, index, len] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&validator_len.to_le_bytes());
    out
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    // Fields longer than u16::MAX are cut; both sides cut alike.
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&s[..n]);
}

/// The associated data of a value: what it must be, built from what the reader asks.
fn aad(redis_key: &str, header: &[u8], version: &ContentVersion) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_LABEL.len() + redis_key.len() + header.len() + 96);
    out.extend_from_slice(AAD_LABEL);
    out.extend_from_slice(&(redis_key.len() as u32).to_le_bytes());
    out.extend_from_slice(redis_key.as_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(&version.size.to_le_bytes());
    put_str(&mut out, version.guid.as_bytes());
    put_str(&mut out, version.key.as_bytes());
    out
}

/// The longest value a block of `len` bytes can have (with a validator as long as its
/// length field allows). A read asks Redis for no more than this
/// ([`FleetStore`](super::FleetStore)'s `GETRANGE`), so a value planted under a
/// block's key costs a reader at most this much memory.
pub(super) fn max_len(len: u64) -> u64 {
    (HEADER + NONCE + OVERHEAD + 1 + u16::MAX as usize) as u64 + len
}

/// What is written under `redis_key` for block `index` of `version`.
#[allow(clippy::too_many_arguments)]
pub(super) fn encode(
    sealer: &Sealer,
    redis_key: &str,
    tenant: TenantId,
    version: &ContentVersion,
    block_size: u64,
    index: u64,
    validator: Option<&Validator>,
    data: &[u8],
) -> Vec<u8> {
    let (kind, v) = match validator {
        None => (0u8, ""),
        Some(Validator::ETag(e)) => (1, e.as_str()),
        Some(Validator::LastModified(l)) => (2, l.as_str()),
    };
    // A validator too long for its length field is left out: a value without one.
    let (kind, v) = if v.len() > u16::MAX as usize {
        (0, "")
    } else {
        (kind, v)
    };
    let head = header(
        tenant,
        version,
        block_size,
        index,
        data.len() as u64,
        v.len() as u16,
    );
    let mut plain = Vec::with_capacity(1 + v.len() + data.len());
    plain.push(kind);
    plain.extend_from_slice(v.as_bytes());
    plain.extend_from_slice(data);
    let mut out = Vec::with_capacity(HEADER + plain.len() + OVERHEAD);
    out.extend_from_slice(&head);
    sealer.seal_append(&aad(redis_key, &head, version), &plain, &mut out);
    out
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The block in `value`, if it is exactly the block `expect` names, intact.
pub(super) fn decode(
    sealer: &Sealer,
    mut value: Vec<u8>,
    expect: &Expect<'_>,
) -> Result<(Bytes, Option<Validator>), Reject> {
    if value.len() < 6 {
        return Err(if MAGIC.starts_with(&value[..value.len().min(4)]) {
            Reject::Truncated
        } else {
            Reject::Format
        });
    }
    if &value[..4] != MAGIC || value[4..6] != FORMAT.to_le_bytes() {
        return Err(Reject::Format);
    }
    if value.len() < HEADER {
        return Err(Reject::Truncated);
    }
    let tenant = &value[6..14];
    let content = &value[14..30];
    let (block_size, index, len) = (u64_at(&value, 30), u64_at(&value, 38), u64_at(&value, 46));
    let validator_len = u16::from_le_bytes([value[54], value[55]]) as usize;
    let total = usize::try_from(len)
        .ok()
        .and_then(|n| n.checked_add(HEADER + OVERHEAD + 1 + validator_len))
        .ok_or(Reject::Truncated)?;
    if value.len() != total {
        return Err(Reject::Truncated);
    }
    if tenant != expect.tenant.as_bytes() {
        return Err(Reject::Tenant);
    }
    let v = expect.version;
    let same = content == v.id.as_bytes()
        && block_size == expect.block_size
        && index == expect.index
        && len == expect.len;
    if !same {
        return Err(Reject::Identity);
    }
    // From here on only what the reader expects names the value.
    let head = header(
        expect.tenant,
        v,
        expect.block_size,
        expect.index,
        expect.len,
        validator_len as u16,
    );
    let aad = aad(expect.redis_key, &head, v);
    let plain_len = sealer
        .open_in_place(&aad, &mut value[HEADER..])
        .map_err(|_| Reject::Unsealed)?
        .len();
    let start = HEADER + NONCE;
    let kind = value[start];
    let validator = &value[start + 1..start + 1 + validator_len];
    let validator = String::from_utf8(validator.to_vec()).map_err(|_| Reject::Format)?;
    let validator = match kind {
        0 if validator.is_empty() => None,
        1 => Some(Validator::ETag(validator)),
        2 => Some(Validator::LastModified(validator)),
        _ => return Err(Reject::Format),
    };
    let data_start = start + 1 + validator_len;
    let data = Bytes::from(value).slice(data_start..start + plain_len);
    Ok((data, validator))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::{Purpose, RootKey};

    const KEY: &str = "vccfs:t:v2:b:g:k:4:1";

    fn tenant() -> TenantId {
        TenantId::new("http://mock/interaction-content", "test")
    }

    fn sealer(secret: &str) -> Sealer {
        RootKey::from_secret(secret.as_bytes(), tenant()).sealer(Purpose::Redis)
    }

    fn version(size: u64) -> ContentVersion {
        ContentVersion::new(tenant(), "g-1", "callRecording", size, None)
    }

    fn expect(v: &ContentVersion, index: u64, len: u64) -> Expect<'_> {
        Expect {
            redis_key: KEY,
            tenant: tenant(),
            version: v,
            block_size: 4,
            index,
            len,
        }
    }

    fn value(s: &Sealer, v: &ContentVersion, index: u64, data: &[u8]) -> Vec<u8> {
        let etag = Validator::ETag("\"e\"".into());
        encode(s, KEY, tenant(), v, 4, index, Some(&etag), data)
    }

    #[test]
    fn round_trip() {
        let s = sealer("secret");
        let v = version(10);
        let got = decode(&s, value(&s, &v, 2, b"ij"), &expect(&v, 2, 2)).expect("decodes");
        assert_eq!(&got.0[..], b"ij");
        assert_eq!(got.1, Some(Validator::ETag("\"e\"".into())));
        let none = encode(&s, KEY, tenant(), &v, 4, 0, None, b"abcd");
        assert_eq!(decode(&s, none, &expect(&v, 0, 4)).expect("ok").1, None);
        let lm = Validator::LastModified("Tue, 01 Apr 2025 10:00:00 GMT".into());
        let with_lm = encode(&s, KEY, tenant(), &v, 4, 1, Some(&lm), b"efgh");
        assert_eq!(
            decode(&s, with_lm, &expect(&v, 1, 4)).expect("ok").1,
            Some(lm)
        );
    }

    #[test]
    fn no_block_value_is_longer_than_max_len() {
        let s = sealer("k");
        let v = version(10);
        let longest = Validator::ETag("e".repeat(u16::MAX as usize));
        for (validator, data) in [(None, &b"abcd"[..]), (Some(&longest), &b"ab"[..])] {
            let value = encode(&s, KEY, tenant(), &v, 4, 2, validator, data);
            assert!(
                value.len() as u64 <= max_len(data.len() as u64),
                "{}",
                value.len()
            );
        }
        assert!(max_len(4) < 70_000 + 4, "a bound near the block's length");
    }

    #[test]
    fn anything_but_the_exact_block_is_refused() {
        let s = sealer("secret");
        let v = version(10);
        let good = value(&s, &v, 1, b"efgh");
        let e = expect(&v, 1, 4);
        // Every truncation, and one byte more.
        for n in 0..good.len() {
            assert!(decode(&s, good[..n].to_vec(), &e).is_err(), "cut at {n}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&s, longer, &e), Err(Reject::Truncated));
        // Every single flipped bit.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(decode(&s, bad, &e).is_err(), "flip at {i}");
        }
        assert_eq!(
            decode(&sealer("another secret"), good.clone(), &e),
            Err(Reject::Unsealed)
        );
        assert_eq!(decode(&s, b"garbage".to_vec(), &e), Err(Reject::Format));
        // Format 1's clear values are refused.
        let mut v1 = good.clone();
        v1[4..6].copy_from_slice(&1u16.to_le_bytes());
        assert_eq!(decode(&s, v1, &e), Err(Reject::Format));
        // Another tenant (with our key), another version, index, block size.
        let other = TenantId::new("http://other/interaction-content", "test");
        let theirs = encode(&s, KEY, other, &v, 4, 1, None, b"efgh");
        assert_eq!(decode(&s, theirs, &e), Err(Reject::Tenant));
        let v2 = version(11);
        assert_eq!(
            decode(&s, value(&s, &v2, 1, b"efgh"), &e),
            Err(Reject::Identity)
        );
        assert_eq!(
            decode(&s, good.clone(), &expect(&v, 0, 4)),
            Err(Reject::Identity)
        );
        let e8 = Expect { block_size: 8, ..e };
        assert_eq!(decode(&s, good.clone(), &e8), Err(Reject::Identity));
        // The same value under another Redis key does not open.
        let moved = Expect {
            redis_key: "vccfs:t:v2:b:g:k:4:2",
            ..e
        };
        assert_eq!(decode(&s, good.clone(), &moved), Err(Reject::Unsealed));
        // Nor for a version of the same content key but another guid or content name
        // (whose clear fields a forger could copy).
        let mut g2 = ContentVersion::new(tenant(), "g-2", "callRecording", 10, None);
        g2.id = v.id;
        assert_eq!(decode(&s, good, &expect(&g2, 1, 4)), Err(Reject::Unsealed));
    }

    #[test]
    fn no_run_of_the_block_is_stored_in_the_clear() {
        let s = sealer("secret");
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let v = version(1 << 20);
        let etag = Validator::ETag("\"etag-of-the-file\"".into());
        let stored = encode(&s, KEY, tenant(), &v, 4096, 3, Some(&etag), &data);
        for run in data.windows(64) {
            assert!(
                !stored.windows(64).any(|w| w == run),
                "plaintext in the value"
            );
        }
        let find = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
        assert!(!find(b"etag-of-the-file"), "the validator is sealed");
        assert!(!find(v.guid.as_bytes()), "the guid is not in the value");
        let e = Expect {
            redis_key: KEY,
            tenant: tenant(),
            version: &v,
            block_size: 4096,
            index: 3,
            len: 4096,
        };
        assert_eq!(&decode(&s, stored, &e).expect("opens").0[..], &data[..]);
    }
}
