//! The block file: a fixed header, the identity's variable parts, a checksum of the
//! header, then the block's bytes.
//!
//! ```text
//! off  len  field (integers little-endian)
//!   0    8  magic "VCCFSBLK"
//!   8    2  format version (1)
//!  10    1  validator kind: 0 none, 1 ETag, 2 Last-Modified
//!  11    1  lastModified present: 0 / 1
//!  12    8  tenant
//!  20   16  content key (the version's ContentKey)
//!  36    8  size of the content
//!  44   16  lastModified, unix nanoseconds (i128; 0 when absent)
//!  60    8  block index
//!  68    8  block length (bytes of data that follow the header)
//!  76    8  block size
//!  84    4  CRC32C of the data
//!  88    2  guid length       90  2  content key string length
//!  92    2  validator length  94  2  reserved (0)
//!  96    …  guid, content key string, validator bytes
//!   …    4  CRC32C of every header byte before it
//!   …    …  data
//! ```
//!
//! A file is intact only if its length is exactly the header's length (from its own
//! length fields) plus the block length, the header checksum matches, every field is
//! in range and the data checksum matches. CRC32C detects every burst error of up to
//! 32 bits, so any single damaged byte is caught deterministically: in a length
//! field by the file-length rule, anywhere else in the header by the header checksum,
//! in the data by the data checksum (which the header checksum covers in turn).

use crate::version::Validator;

pub(super) const MAGIC: [u8; 8] = *b"VCCFSBLK";
pub(super) const FORMAT: u16 = 1;
/// Bytes of the fixed part of the header.
pub(super) const FIXED: usize = 96;
/// Longest guid, content key string or validator a block file carries.
pub(super) const MAX_FIELD: usize = 1024;
/// The longest header there can be.
pub(super) const MAX_HEADER: usize = FIXED + 3 * MAX_FIELD + 4;

const KIND_NONE: u8 = 0;
const KIND_ETAG: u8 = 1;
const KIND_LAST_MODIFIED: u8 = 2;

/// Which block of which version a file holds: everything it must match to be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity<'a> {
    pub tenant: [u8; 8],
    pub id: [u8; 16],
    pub guid: &'a str,
    pub key: &'a str,
    pub size: u64,
    /// `lastModified` as unix nanoseconds.
    pub last_modified: Option<i128>,
    pub index: u64,
    pub block_size: u64,
}

/// Why a file is not an intact block file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Corrupt {
    #[error("shorter than a header")]
    Short,
    #[error("bad magic")]
    Magic,
    #[error("unknown format version {0}")]
    Version(u16),
    #[error("file length does not match its header")]
    Length,
    #[error("header checksum mismatch")]
    HeaderSum,
    #[error("header field out of range")]
    Field,
    #[error("data checksum mismatch")]
    DataSum,
}

/// A field too long to store (the block is then not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} longer than {MAX_FIELD} bytes")]
pub(super) struct TooLong(pub &'static str);

/// An intact block file, borrowed from its bytes.
#[derive(Debug)]
pub(super) struct Decoded<'a> {
    pub identity: Identity<'a>,
    pub validator: Option<Validator>,
    pub data: &'a [u8],
}

/// The header of a block file for `data` (which follows it in the file).
pub(super) fn encode(
    who: &Identity<'_>,
    validator: Option<&Validator>,
    data: &[u8],
) -> Result<Vec<u8>, TooLong> {
    let (kind, v) = match validator {
        None => (KIND_NONE, ""),
        Some(Validator::ETag(s)) => (KIND_ETAG, s.as_str()),
        Some(Validator::LastModified(s)) => (KIND_LAST_MODIFIED, s.as_str()),
    };
    let len16 = |s: &str, what| {
        (s.len() <= MAX_FIELD)
            .then_some(s.len() as u16)
            .ok_or(TooLong(what))
    };
    let (g, k, vl) = (
        len16(who.guid, "guid")?,
        len16(who.key, "content key")?,
        len16(v, "validator")?,
    );
    let mut h = Vec::with_capacity(header_len(g, k, vl));
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&FORMAT.to_le_bytes());
    h.push(kind);
    h.push(u8::from(who.last_modified.is_some()));
    h.extend_from_slice(&who.tenant);
    h.extend_from_slice(&who.id);
    h.extend_from_slice(&who.size.to_le_bytes());
    h.extend_from_slice(&who.last_modified.unwrap_or(0).to_le_bytes());
    h.extend_from_slice(&who.index.to_le_bytes());
    h.extend_from_slice(&(data.len() as u64).to_le_bytes());
    h.extend_from_slice(&who.block_size.to_le_bytes());
    h.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    for n in [g, k, vl, 0] {
        h.extend_from_slice(&n.to_le_bytes());
    }
    debug_assert_eq!(h.len(), FIXED);
    h.extend_from_slice(who.guid.as_bytes());
    h.extend_from_slice(who.key.as_bytes());
    h.extend_from_slice(v.as_bytes());
    let sum = crc32c::crc32c(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    Ok(h)
}

fn header_len(guid: u16, key: u16, validator: u16) -> usize {
    FIXED + usize::from(guid) + usize::from(key) + usize::from(validator) + 4
}

/// Reads fixed-size fields at increasing offsets; callers checked the length.
struct Fields<'a>(&'a [u8], usize);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(s) = self.0.get(self.1..self.1 + N) {
            out.copy_from_slice(s);
        }
        self.1 += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn str(&mut self, len: u16) -> Result<&'a str, Corrupt> {
        let end = self.1 + usize::from(len);
        let s = self.0.get(self.1..end).ok_or(Corrupt::Short)?;
        self.1 = end;
        std::str::from_utf8(s).map_err(|_| Corrupt::Field)
    }
}

/// The block file `file`, if intact (see the module essay for what that means).
pub(super) fn decode(file: &[u8]) -> Result<Decoded<'_>, Corrupt> {
    if file.len() < FIXED + 4 {
        return Err(Corrupt::Short);
    }
    let mut f = Fields(file, 0);
    if f.take::<8>() != MAGIC {
        return Err(Corrupt::Magic);
    }
    let format = f.u16();
    if format != FORMAT {
        return Err(Corrupt::Version(format));
    }
    let (kind, has_lm) = (f.u8(), f.u8());
    let tenant = f.take::<8>();
    let id = f.take::<16>();
    let size = f.u64();
    let lm = i128::from_le_bytes(f.take());
    let index = f.u64();
    let data_len = f.u64();
    let block_size = f.u64();
    let data_sum = f.u32();
    let (g, k, vl, reserved) = (f.u16(), f.u16(), f.u16(), f.u16());
    // The length rule first: a damaged length field can never move the checksums.
    let hlen = header_len(g, k, vl);
    if (file.len() as u64).checked_sub(hlen as u64) != Some(data_len) {
        return Err(Corrupt::Length);
    }
    let stored_sum = u32::from_le_bytes(Fields(file, hlen - 4).take());
    if crc32c::crc32c(&file[..hlen - 4]) != stored_sum {
        return Err(Corrupt::HeaderSum);
    }
    let (guid, key, v) = (f.str(g)?, f.str(k)?, f.str(vl)?);
    let validator = match kind {
        KIND_NONE if v.is_empty() => None,
        KIND_ETAG => Some(Validator::ETag(v.to_string())),
        KIND_LAST_MODIFIED => Some(Validator::LastModified(v.to_string())),
        _ => return Err(Corrupt::Field),
    };
    let last_modified = match has_lm {
        0 if lm == 0 => None,
        1 => Some(lm),
        _ => return Err(Corrupt::Field),
    };
    if reserved != 0 || g as usize > MAX_FIELD || k as usize > MAX_FIELD || vl as usize > MAX_FIELD
    {
        return Err(Corrupt::Field);
    }
    let data = &file[hlen..];
    if crc32c::crc32c(data) != data_sum {
        return Err(Corrupt::DataSum);
    }
    Ok(Decoded {
        identity: Identity {
            tenant,
            id,
            guid,
            key,
            size,
            last_modified,
            index,
            block_size,
        },
        validator,
        data,
    })
}

impl Decoded<'_> {
    /// Is this block `want`, of the length `want` implies? `Err` names the first field
    /// that differs.
    pub fn matches(&self, want: &Identity<'_>) -> Result<(), &'static str> {
        let got = &self.identity;
        let field = if got.tenant != want.tenant {
            "tenant"
        } else if got.id != want.id {
            "content key"
        } else if got.guid != want.guid {
            "guid"
        } else if got.key != want.key {
            "content key string"
        } else if got.size != want.size {
            "size"
        } else if got.last_modified != want.last_modified {
            "lastModified"
        } else if got.index != want.index {
            "block index"
        } else if got.block_size != want.block_size {
            "block size"
        } else if Some(self.data.len() as u64) != block_len(want) {
            "block length"
        } else {
            return Ok(());
        };
        Err(field)
    }
}

/// The length of block `who.index` of its version, `None` past the end or for a
/// block size of 0.
pub(super) fn block_len(who: &Identity<'_>) -> Option<u64> {
    let start = who.index.checked_mul(who.block_size)?;
    (start < who.size && who.block_size > 0).then(|| who.block_size.min(who.size - start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn who() -> Identity<'static> {
        Identity {
            tenant: *b"tenant01",
            id: *b"0123456789abcdef",
            guid: "2480fc2c-bbd7-427c-9439-02f76583aef5",
            key: "callRecording",
            size: 1000,
            last_modified: Some(1_700_000_000_123_456_789),
            index: 3,
            block_size: 64,
        }
    }

    fn file(who: &Identity<'_>, v: Option<&Validator>, data: &[u8]) -> Vec<u8> {
        let mut f = encode(who, v, data).expect("encode");
        f.extend_from_slice(data);
        f
    }

    fn data() -> Vec<u8> {
        (0..64u8).map(|i| i.wrapping_mul(37)).collect()
    }

    #[test]
    fn a_block_file_round_trips_with_every_validator_kind() {
        let validators = [
            None,
            Some(Validator::ETag("\"abc\"".into())),
            Some(Validator::LastModified(
                "Sun, 16 Feb 2020 14:19:35 GMT".into(),
            )),
        ];
        for v in validators {
            for lm in [None, Some(-5), Some(i128::MAX)] {
                let w = Identity {
                    last_modified: lm,
                    ..who()
                };
                let f = file(&w, v.as_ref(), &data());
                let d = decode(&f).expect("intact");
                assert_eq!(d.identity, w);
                assert_eq!(d.validator, v);
                assert_eq!(d.data, &data()[..]);
                assert_eq!(d.matches(&w), Ok(()));
            }
        }
    }

    #[test]
    fn every_damaged_byte_is_detected() {
        let f = file(&who(), Some(&Validator::ETag("\"e\"".into())), &data());
        for at in 0..f.len() {
            for mask in [0x01u8, 0x10, 0x80, 0xff] {
                let mut bad = f.clone();
                bad[at] ^= mask;
                assert!(decode(&bad).is_err(), "byte {at} ^ {mask:#x} not detected");
            }
        }
    }

    #[test]
    fn every_truncation_and_extension_is_detected() {
        let f = file(&who(), None, &data());
        for len in 0..f.len() {
            assert!(decode(&f[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = f.clone();
        longer.push(0);
        assert_eq!(decode(&longer).err(), Some(Corrupt::Length));
    }

    #[test]
    fn a_file_of_another_identity_is_intact_but_does_not_match() {
        let f = file(&who(), None, &data());
        let d = decode(&f).expect("intact");
        let others = [
            (
                "tenant",
                Identity {
                    tenant: *b"tenant02",
                    ..who()
                },
            ),
            (
                "content key",
                Identity {
                    id: [7; 16],
                    ..who()
                },
            ),
            (
                "guid",
                Identity {
                    guid: "other",
                    ..who()
                },
            ),
            (
                "content key string",
                Identity {
                    key: "transcript",
                    ..who()
                },
            ),
            ("size", Identity { size: 999, ..who() }),
            (
                "lastModified",
                Identity {
                    last_modified: None,
                    ..who()
                },
            ),
            ("block index", Identity { index: 4, ..who() }),
            (
                "block size",
                Identity {
                    block_size: 32,
                    ..who()
                },
            ),
        ];
        for (field, w) in others {
            assert_eq!(d.matches(&w), Err(field));
        }
        // Right identity, but the last block of a 200-byte file is 8 bytes, not 64.
        let tail = Identity { size: 200, ..who() };
        let f = file(&tail, None, &data());
        assert_eq!(
            decode(&f).expect("intact").matches(&tail),
            Err("block length")
        );
    }

    #[test]
    fn fields_too_long_are_refused() {
        let long = "x".repeat(MAX_FIELD + 1);
        let w = Identity {
            guid: &long,
            ..who()
        };
        assert_eq!(encode(&w, None, b"").err(), Some(TooLong("guid")));
        let v = Validator::ETag(long.clone());
        assert_eq!(
            encode(&who(), Some(&v), b"").err(),
            Some(TooLong("validator"))
        );
        let longest = "y".repeat(MAX_FIELD);
        let w = Identity {
            guid: &longest,
            key: &longest,
            ..who()
        };
        let v = Validator::LastModified(longest.clone());
        assert_eq!(encode(&w, Some(&v), b"").expect("fits").len(), MAX_HEADER);
    }

    #[test]
    fn block_lengths() {
        let at = |index, size| {
            block_len(&Identity {
                index,
                size,
                ..who()
            })
        };
        assert_eq!(at(0, 1000), Some(64));
        assert_eq!(at(15, 1000), Some(40));
        assert_eq!(at(16, 1000), None);
        assert_eq!(at(u64::MAX, 1000), None);
        assert_eq!(
            block_len(&Identity {
                block_size: 0,
                ..who()
            }),
            None
        );
    }

    proptest! {
        #[test]
        fn random_files_round_trip_and_any_damage_is_caught(
            guid in "[a-f0-9-]{0,40}",
            key in "[a-zA-Z]{1,20}",
            etag in proptest::option::of("\"[ -~]{0,30}\""),
            lm in proptest::option::of(any::<i128>()),
            data in proptest::collection::vec(any::<u8>(), 0..300),
            flip in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let w = Identity { guid: &guid, key: &key, last_modified: lm, ..who() };
            let v = etag.map(Validator::ETag);
            let f = file(&w, v.as_ref(), &data);
            let d = decode(&f).expect("intact");
            prop_assert_eq!(&d.identity, &w);
            prop_assert_eq!(&d.validator, &v);
            prop_assert_eq!(d.data, &data[..]);
            let mut bad = f.clone();
            bad[flip.index(f.len())] ^= mask;
            prop_assert!(decode(&bad).is_err());
            prop_assert!(decode(&f[..flip.index(f.len())]).is_err());
        }
    }
}
