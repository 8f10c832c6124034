//! `--redirect`: the API content route answers 302 to a signed, expiring URL on a
//! second listener (another host name, by default `127.0.0.2`), like a presigned
//! object-store URL. The storage host serves the same bytes, ranges and headers without
//! a bearer token, refuses bad or expired signatures with 403, and counts any
//! `Authorization` header it receives in `auth_leaked`.
//!
//! With `--storage-validators own` it sends the stored object's validators instead of
//! the API's ([`object_validators`]), and checks `If-Range` and the other conditionals
//! against those, as a real object store does.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Extension;
use http::{HeaderMap, Method, StatusCode};
use time::OffsetDateTime;

use super::auth::json_utf8;
use super::content::{self, Validators};
use super::record::{Fnv, ItemView};
use super::server::ConnCtx;
use super::{App, StorageValidators};
use crate::model::ErrorBody;

/// Signs and checks storage URLs.
#[derive(Debug)]
pub(crate) struct Signer {
    /// `http://HOST:PORT` of the storage listener.
    pub base_url: String,
    /// Random per-process key of the signature (a keyed SipHash).
    key: std::hash::RandomState,
    ttl_secs: u64,
}

impl Signer {
    pub fn new(base_url: String, ttl_secs: u64) -> Self {
        Self {
            base_url,
            key: std::hash::RandomState::new(),
            ttl_secs,
        }
    }

    fn signature(&self, guid: &str, key: &str, expires: i64) -> String {
        format!("{:016x}", self.key.hash_one((guid, key, expires)))
    }

    /// A URL for `guid`/`key` valid for the configured time.
    pub fn url(&self, guid: &str, key: &str) -> String {
        let expires = OffsetDateTime::now_utc().unix_timestamp() + self.ttl_secs as i64;
        format!(
            "{}/storage/{guid}/{key}?expires={expires}&signature={}",
            self.base_url,
            self.signature(guid, key, expires)
        )
    }

    /// Checks a URL's query; the message says why it is refused.
    pub fn verify(
        &self,
        guid: &str,
        key: &str,
        query: &HashMap<String, String>,
    ) -> Result<(), &'static str> {
        let expires = query
            .get("expires")
            .and_then(|e| e.parse::<i64>().ok())
            .ok_or("Missing or malformed expiry")?;
        let sig = query.get("signature").ok_or("Missing signature")?;
        if *sig != self.signature(guid, key, expires) {
            return Err("The request signature does not match");
        }
        if OffsetDateTime::now_utc().unix_timestamp() >= expires {
            return Err("Request has expired");
        }
        Ok(())
    }
}

/// The stored object's validators (`--storage-validators own`), as an object store
/// sets them when the bytes are written:
/// - Last-Modified: the upload, 5 to 304 seconds after the item's `lastModified`; the
///   delay is fixed per object, so it moves forward with every new version;
/// - ETag: strong, 32 hex digits (MD5-sized, so never equal to the API's 16), a hash
///   of the API's ETag, so it is deterministic per version and changes with it.
pub(crate) fn object_validators(view: &ItemView) -> Validators {
    let mut object = Fnv::new();
    object.write(b"stored object ");
    object.write(view.guid.as_bytes());
    object.write(b"/");
    object.write(view.key.as_bytes());
    let upload_delay = 5 + (object.finish() % 300) as i64;
    let api = view.etag();
    let mut hi = Fnv::new();
    hi.write(b"object etag ");
    hi.write(api.as_bytes());
    let mut lo = Fnv::new();
    lo.write(api.as_bytes());
    lo.write(b" object etag");
    Validators {
        etag: format!("\"{:016x}{:016x}\"", hi.finish(), lo.finish()),
        last_modified: view.state.last_modified.unix_timestamp() + upload_delay,
    }
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    json_utf8(
        status,
        &ErrorBody {
            message: msg.to_string(),
        },
    )
}

/// `GET /storage/{guid}/{key}?expires=..&signature=..` on the storage host.
pub(crate) async fn download(
    State(app): State<Arc<App>>,
    Path((guid, key)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    conn: Option<Extension<Arc<ConnCtx>>>,
) -> Response {
    let Some(signer) = &app.storage else {
        return refuse(StatusCode::NOT_FOUND, "Not found");
    };
    if let Err(msg) = signer.verify(&guid, &key, &query) {
        return refuse(StatusCode::FORBIDDEN, msg);
    }
    match app.tenant.view(&guid, &key) {
        Some(view) => {
            let validators = match app.args.storage_validators {
                StorageValidators::Api => Validators::api(&view),
                StorageValidators::Own => object_validators(&view),
            };
            content::serve(&app, view, validators, &method, &headers, conn.map(|c| c.0))
        }
        None => refuse(StatusCode::NOT_FOUND, "The object does not exist"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::record::ItemState;
    use crate::emulator::source::ContentSource;

    fn view(version: u32, lm: i64, bytes: &'static [u8]) -> ItemView {
        ItemView {
            guid: "2480fc2c-bbd7-427c-9439-02f76583aef5".into(),
            key: "callRecording".into(),
            kind: "callRecording".into(),
            content_type: "audio/wav".into(),
            state: ItemState {
                version,
                seed: 7,
                last_modified: OffsetDateTime::from_unix_timestamp(lm).expect("ts"),
                source: ContentSource::Memory(bytes::Bytes::from_static(bytes)),
            },
        }
    }

    #[test]
    fn object_validators_are_their_own_and_follow_the_version() {
        let v0 = view(0, 1_700_000_000, b"abc");
        let (api, own) = (Validators::api(&v0), object_validators(&v0));
        assert_ne!(own.etag, api.etag);
        assert!(own.etag.starts_with('"') && own.etag.ends_with('"') && own.etag.len() == 34);
        let delay = own.last_modified - api.last_modified;
        assert!((5..=304).contains(&delay), "{delay}");
        assert_eq!(object_validators(&v0), own, "deterministic");
        // A new version (as `mutate` makes it): new ETag, later Last-Modified.
        let v1 = view(1, 1_700_000_001, b"abd");
        let own1 = object_validators(&v1);
        assert_ne!(own1.etag, own.etag);
        assert_eq!(own1.last_modified, own.last_modified + 1);
    }

    #[test]
    fn signatures_bind_path_and_expiry() {
        let s = Signer::new("http://127.0.0.2:1".into(), 60);
        let url = s.url("g", "k");
        let query: HashMap<String, String> = url
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(s.verify("g", "k", &query), Ok(()));
        assert!(s.verify("g", "other", &query).is_err());
        let mut expired = query.clone();
        expired.insert("expires".into(), "1".into());
        assert!(s.verify("g", "k", &expired).is_err());
        let past = OffsetDateTime::now_utc().unix_timestamp() - 1;
        let mut old = HashMap::new();
        old.insert("expires".to_string(), past.to_string());
        old.insert("signature".to_string(), s.signature("g", "k", past));
        assert_eq!(s.verify("g", "k", &old), Err("Request has expired"));
    }
}
