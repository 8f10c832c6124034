//! The API emulator over real loopback HTTP (issue 2, fault switches of issue 6).
//! Every test starts its own emulator on an ephemeral port.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use vccfs::emulator::{self, EmulatorArgs, RunningEmulator};
use vccfs::model::{Interaction, ACCEPT_V2, ACCEPT_V3};

const TWO_VERSIONS: &str = "Invalid api-version! Valid values: 'application/vnd.newvoicemedia.v2+json', 'application/vnd.newvoicemedia.v3+json'";
const V3_ONLY: &str = "Invalid api-version! Valid values: 'application/vnd.newvoicemedia.v3+json'";

/// Emulator options from command-line flags (so the CLI parsing is tested too).
fn args(extra: &[&str]) -> EmulatorArgs {
    let mut flags = vec!["--listen", "127.0.0.1:0"];
    if !extra.contains(&"--interactions") {
        flags.extend(["--interactions", "120"]);
    }
    flags.extend_from_slice(extra);
    EmulatorArgs::from_flags(&flags).expect("flags parse")
}

async fn start(extra: &[&str]) -> RunningEmulator {
    emulator::start(args(extra)).await.expect("emulator starts")
}

fn http() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // No connection reuse: fault tests break connections on purpose, and a request
    // sent on a connection the server just closed would fail for the wrong reason.
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

fn fmt(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

/// A client with a token, talking v3.
struct Api {
    http: Client,
    api: String,
    base: String,
    token: String,
}

impl Api {
    async fn new(emu: &RunningEmulator) -> Self {
        let http = http();
        let token = token(&http, emu, "interaction-content:read").await;
        Self {
            http,
            api: emu.api_url.clone(),
            base: format!("http://{}", emu.addr),
            token,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .header(header::ACCEPT, ACCEPT_V3)
    }

    async fn json(&self, path: &str, query: &[(&str, String)]) -> (StatusCode, Value) {
        let r = self.get(path).query(query).send().await.expect("send");
        let status = r.status();
        (status, r.json().await.expect("json body"))
    }

    fn content(&self, guid: &str, key: &str) -> reqwest::RequestBuilder {
        self.get(&format!("/interactions/{guid}/content/{key}"))
    }

    async fn stats(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/_emulator/stats", self.base))
            .send()
            .await
            .expect("stats");
        r.json().await.expect("stats json")
    }

    async fn reset_stats(&self) {
        let r = self
            .http
            .delete(format!("{}/_emulator/stats", self.base))
            .send()
            .await
            .expect("reset");
        assert_eq!(r.status(), StatusCode::OK);
    }

    async fn faults(&self, patch: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/_emulator/faults", self.base))
            .json(&patch)
            .send()
            .await
            .expect("faults");
        assert_eq!(r.status(), StatusCode::OK, "faults patch {patch}");
        r.json().await.expect("faults json")
    }
}

async fn token(http: &Client, emu: &RunningEmulator, scope: &str) -> String {
    let r = http
        .post(&emu.auth_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_id", emu.client_id()),
            ("client_secret", emu.client_secret()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("token json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn hdr(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(&name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .expect("ascii header")
}

/// A content item of `kind`, with its interaction.
fn find(emu: &RunningEmulator, kind: &str) -> (Interaction, String, u64) {
    emu.tenant()
        .interactions()
        .into_iter()
        .find_map(|i| {
            let c = i.content.iter().find(|c| c.kind == kind)?.clone();
            Some((i, c.content_key, c.content_length.expect("len")))
        })
        .unwrap_or_else(|| panic!("no {kind}"))
}

async fn body_of(r: Response) -> Vec<u8> {
    r.bytes().await.expect("body").to_vec()
}

/// All pages of a v3 search.
async fn walk(api: &Api, mut query: Vec<(&'static str, String)>) -> Vec<Value> {
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let (s, v) = api.json("/interactions", &query).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        pages += 1;
        assert!(pages < 1000, "paging does not end");
        let page = v["items"].as_array().expect("items");
        items.extend(page.iter().cloned());
        match &v["meta"]["nextContinuationToken"] {
            Value::Null => break,
            Value::String(t) => {
                assert!(!page.is_empty());
                query.retain(|(k, _)| *k != "continuationToken");
                query.push(("continuationToken", t.clone()));
            }
            other => panic!("bad token {other}"),
        }
    }
    items
}

mod auth;
mod content;
mod control;
mod search;
