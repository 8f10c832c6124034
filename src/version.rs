//! What a read is pinned to: one version of one content item, named so that every
//! tier — memory, disk, a shared Redis, the API — agrees on it.
//!
//! Invariants:
//! - A [`ContentKey`] is derived only from what the listing says: the tenant (API base
//!   URL and client id, hashed), the guid, the content key, the size and
//!   `lastModified`. Two hosts, or two mounts a month apart, that list the same version
//!   compute the same key; a new `lastModified` or size is a new key, so nothing
//!   fetched for one version is ever served for another. The key is 32 lowercase hex
//!   digits: a file name, and a Redis key segment, as it is.
//! - A [`ContentVersion`] carries the key and a *pin*: the HTTP validator of the first
//!   response that served bytes of it. Once pinned, every later request carries it in
//!   `If-Range` and every response (and every block a cache tier returns) must match
//!   it, so bytes of two versions can never be mixed. A tier that keeps blocks keeps
//!   the validator with them and seeds the pin from it ([`ContentVersion::pin`]).

use std::fmt;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// `Display` as lowercase hex of the bytes, `Debug` as `Name(hex)`.
macro_rules! hex_named {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

/// Which tenant (API and account) content belongs to: a hash of the API base URL and
/// the client id, so keys of two tenants never collide and name neither.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantId([u8; 8]);

impl TenantId {
    /// The tenant of `api_url` (trailing slashes ignored) as `client_id`.
    pub fn new(api_url: &str, client_id: &str) -> TenantId {
        let d = hash(&[
            b"vccfs-tenant-v1",
            api_url.trim_end_matches('/').as_bytes(),
            client_id.as_bytes(),
        ]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        TenantId(id)
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

hex_named!(TenantId);

/// The stable name of one content version (see the module essay).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentKey([u8; 16]);

impl ContentKey {
    pub fn new(
        tenant: TenantId,
        guid: &str,
        key: &str,
        size: u64,
        last_modified: Option<OffsetDateTime>,
    ) -> ContentKey {
        let lm = last_modified
            .map(|t| t.unix_timestamp_nanos().to_string())
            .unwrap_or_default();
        let d = hash(&[
            b"vccfs-content-v1",
            &tenant.0,
            guid.as_bytes(),
            key.as_bytes(),
            &size.to_le_bytes(),
            lm.as_bytes(),
        ]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        ContentKey(id)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

hex_named!(ContentKey);

/// SHA-256 over length-prefixed parts (so `("ab", "c")` and `("a", "bc")` differ).
fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// An HTTP validator that pins a version's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validator {
    /// A strong ETag, quotes included.
    ETag(String),
    /// A `Last-Modified` date exactly as the serving host sent it (used when it sends
    /// no strong ETag).
    LastModified(String),
}

impl Validator {
    /// The value sent in `If-Range`.
    pub fn header_value(&self) -> &str {
        match self {
            Validator::ETag(e) | Validator::LastModified(e) => e,
        }
    }
}

/// One version of one content item, as listed: reads are pinned to it.
#[derive(Debug)]
pub struct ContentVersion {
    pub guid: String,
    pub key: String,
    /// `contentLength` from the metadata.
    pub size: u64,
    /// `lastModified` from the metadata.
    pub last_modified: Option<OffsetDateTime>,
    /// The stable name of this version.
    pub id: ContentKey,
    /// The validator of the first response, which later reads must match.
    pinned: OnceLock<Validator>,
}

impl ContentVersion {
    pub fn new(
        tenant: TenantId,
        guid: &str,
        key: &str,
        size: u64,
        last_modified: Option<OffsetDateTime>,
    ) -> Self {
        ContentVersion {
            guid: guid.to_string(),
            key: key.to_string(),
            size,
            last_modified,
            id: ContentKey::new(tenant, guid, key, size, last_modified),
            pinned: OnceLock::new(),
        }
    }

    /// The pinned validator, if any response (or tier) has pinned one yet.
    pub fn pinned(&self) -> Option<&Validator> {
        self.pinned.get()
    }

    /// Pin `v` if nothing is pinned yet; true if `v` is (now) the pin, false if another
    /// validator was pinned first (then the bytes `v` came with are another version's).
    pub fn pin(&self, v: &Validator) -> bool {
        self.pinned.get_or_init(|| v.clone()) == v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn tenant() -> TenantId {
        TenantId::new(
            "https://emea.api.newvoicemedia.com/interaction-content/",
            "id",
        )
    }

    #[test]
    fn keys_are_pinned_and_follow_every_listed_field() {
        let g = "2480fc2c-bbd7-427c-9439-02f76583aef5";
        let t = Some(datetime!(2020-02-16 14:19:35 UTC));
        let k = ContentKey::new(tenant(), g, "callRecording", 100, t);
        // Pinned: a key names data on disk and in Redis, so it must never change.
        assert_eq!(tenant().to_string(), "95e830d471bbe57e");
        assert_eq!(k.to_string(), "d26da7d944c02b64a1d21b7dfff3970e");
        let others = [
            ContentKey::new(
                TenantId::new("https://x/interaction-content", "id"),
                g,
                "callRecording",
                100,
                t,
            ),
            ContentKey::new(tenant(), g, "transcript", 100, t),
            ContentKey::new(tenant(), g, "callRecording", 101, t),
            ContentKey::new(tenant(), g, "callRecording", 100, None),
            ContentKey::new(
                tenant(),
                g,
                "callRecording",
                100,
                Some(datetime!(2020-02-16 14:19:36 UTC)),
            ),
        ];
        for o in others {
            assert_ne!(o, k);
        }
        assert_eq!(
            TenantId::new(
                "https://emea.api.newvoicemedia.com/interaction-content",
                "id"
            ),
            tenant(),
            "a trailing slash is the same API"
        );
    }

    #[test]
    fn the_first_validator_pins_the_version() {
        let v = ContentVersion::new(tenant(), "g", "k", 10, None);
        assert!(v.pinned().is_none());
        assert!(v.pin(&Validator::ETag("\"a\"".into())));
        assert!(v.pin(&Validator::ETag("\"a\"".into())));
        assert!(!v.pin(&Validator::ETag("\"b\"".into())));
        assert_eq!(v.pinned(), Some(&Validator::ETag("\"a\"".into())));
    }
}
