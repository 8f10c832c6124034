//! Wire types of the Interaction Content API (`../shared/api.md` §3–§4), shared by the
//! client (which parses them) and the emulator (which serves them).
//!
//! Unknown fields are kept in `extra` so that `.interaction.json` shows what the API sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// `Accept` header value every API request sends (v3: continuation-token paging).
pub const ACCEPT_V3: &str = "application/vnd.newvoicemedia.v3+json";
/// `Accept` header value of API version 2 (page-number paging).
pub const ACCEPT_V2: &str = "application/vnd.newvoicemedia.v2+json";
/// OAuth2 scope needed to read interaction content.
pub const SCOPE_READ: &str = "interaction-content:read";
/// Largest page the search endpoint serves.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Longest `start..end` span one search request may cover.
pub const MAX_SEARCH_WINDOW: time::Duration = time::Duration::days(7);

/// A reference to an agent or another entity by id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IdRef {
    pub id: String,
}

/// One interaction (call, chat, ...) with the content attached to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Interaction {
    pub guid: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default)]
    pub handling_agents: Vec<IdRef>,
    #[serde(default)]
    pub content: Vec<ContentItem>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Interaction {
    /// The content item whose key matches `key` exactly (the API's own spelling).
    pub fn item(&self, key: &str) -> Option<&ContentItem> {
        self.content.iter().find(|c| c.content_key == key)
    }

    /// Which content items are files of the interaction: the first of each usable key
    /// (`is_content_key`), in order. One rule for the catalog's entries and the saved
    /// day's index.
    pub fn shown(&self) -> Vec<bool> {
        let mut seen: Vec<&str> = Vec::with_capacity(self.content.len());
        self.content
            .iter()
            .map(|c| {
                let key = c.content_key.as_str();
                let shown = is_content_key(key) && !seen.contains(&key);
                if shown {
                    seen.push(key);
                }
                shown
            })
            .collect()
    }
}

/// One piece of content of an interaction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContentItem {
    pub content_key: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Size in bytes. The docs never show it missing; a missing one is treated as unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
    /// The docs' IVR example has no `lastModified`; callers fall back to the interaction start.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_modified: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owning_agent: Option<IdRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owning_interaction_plan: Option<IdRef>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_content_type() -> String {
    "application/octet-stream".to_string()
}

/// `meta` of a v3 search page.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SearchMeta {
    #[serde(default)]
    pub next_continuation_token: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One page of `GET /interactions`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SearchPage {
    pub items: Vec<Interaction>,
    #[serde(default)]
    pub meta: SearchMeta,
}

/// Body of a successful token request.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    pub token_type: String,
}

/// `{"message": "..."}`, the API's error body.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ErrorBody {
    pub message: String,
}

/// True when `s` has the 8-4-4-4-12 hex shape of a GUID.
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The 16 bytes of `s` when it is a GUID spelled canonically (8-4-4-4-12, lowercase
/// hex: how the API writes them), so [`guid_text`] gives `s` back exactly.
pub fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0usize;
    for (i, &c) in b.iter().enumerate() {
        let v = match (i, c) {
            (8 | 13 | 18 | 23, b'-') => continue,
            (8 | 13 | 18 | 23, _) => return None,
            (_, b'0'..=b'9') => c - b'0',
            (_, b'a'..=b'f') => c - b'a' + 10,
            _ => return None,
        };
        out[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
        nibbles += 1;
    }
    Some(out)
}

/// The canonical spelling of a GUID's 16 bytes (the inverse of [`guid_bytes`]).
pub fn guid_text(b: &[u8; 16]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut at = 0usize;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 15)];
        at += 2;
    }
    out
}

/// True when `s` can be a content key (`^[0-9a-zA-Z!\-_.,*'()]{1,36}$`, api.md §5).
pub fn is_content_key(s: &str) -> bool {
    (1..=36).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!-_.,*'()".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_example() {
        let json = r#"{
          "guid": "2480fc2c-bbd7-427c-9439-02f76583aef5",
          "start": "2020-02-16T14:11:56Z",
          "connectFrom": "+14154204204", "connectTo": "22222", "direction": "inbound",
          "handlingAgents": [ { "id": "1342" } ],
          "content": [
            { "contentKey": "callRecording", "type": "callRecording", "contentType": "audio/wav",
              "contentLength": 359, "lastModified": "2020-02-16T14:19:35Z", "properties": {} },
            { "contentKey": "ad76a807-3e21-41c6-992e-dc9865ffcc9d", "type": "ivrAudioRecording",
              "contentType": "audio/wav", "contentLength": 100,
              "owningInteractionPlan": { "id": "816f1144" } }
          ]
        }"#;
        let i: Interaction = serde_json::from_str(json).expect("parse");
        assert_eq!(i.content.len(), 2);
        assert_eq!(i.content[0].content_length, Some(359));
        assert!(i.content[1].last_modified.is_none());
        assert_eq!(
            i.item("callRecording").map(|c| c.kind.as_str()),
            Some("callRecording")
        );
    }

    #[test]
    fn guid_and_key_shapes() {
        assert!(is_guid("2480fc2c-bbd7-427c-9439-02f76583aef5"));
        assert!(!is_guid("2480fc2c-bbd7-427c-9439-02f76583aef"));
        assert!(!is_guid("2480fc2cxbbd7-427c-9439-02f76583aef5"));
        let g = "2480fc2c-bbd7-427c-9439-02f76583aef5";
        let b = guid_bytes(g).expect("canonical");
        assert_eq!(&guid_text(&b)[..], g.as_bytes());
        assert!(guid_bytes("2480FC2C-bbd7-427c-9439-02f76583aef5").is_none());
        assert!(guid_bytes("2480fc2c-bbd7-427c-9439-02f76583aef").is_none());
        assert!(guid_bytes("2480fc2cxbbd7-427c-9439-02f76583aef5").is_none());
        assert!(is_content_key("voicemail-123"));
        assert!(!is_content_key("a/b"));
        assert!(!is_content_key(""));
        assert!(!is_content_key(".."));
    }
}
