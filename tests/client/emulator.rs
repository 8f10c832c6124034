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

#[tokio::test(flavor = "multi_thread")]
async fn token_endpoint() {
    let emu = start(&[]).await;
    let http = http();
    let ok = http
        .post(&emu.auth_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "interaction-content:read"),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(hdr(ok.headers(), header::CONTENT_TYPE).starts_with("application/json"));
    let v: Value = ok.json().await.expect("json");
    assert_eq!(v["expires_in"], 7200);
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["access_token"].as_str().is_some_and(|t| t.len() >= 32));

    let post = |form: Vec<(&'static str, &'static str)>, basic: bool| {
        let mut rb = http.post(&emu.auth_url).form(&form);
        if basic {
            rb = rb.basic_auth("demo-client", Some("demo-secret"));
        }
        async move {
            let r = rb.send().await.expect("send");
            let s = r.status();
            (s, r.json::<Value>().await.expect("json"))
        }
    };
    let (s, v) = post(
        vec![
            ("grant_type", "client_credentials"),
            ("scope", "interaction-content:read"),
        ],
        true,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "HTTP Basic credentials: {v}");
    assert!(v["access_token"].is_string());

    let (s, v) = post(
        vec![
            ("grant_type", "password"),
            ("scope", "interaction-content:read"),
        ],
        true,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
    );

    let (s, v) = post(vec![("grant_type", "client_credentials")], true).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"error": "invalid_scope", "error_description": "You must specify a scope"})
    );

    let (s, v) = post(
        vec![
            ("grant_type", "client_credentials"),
            ("scope", "newvoicemediavonage/api/stats"),
        ],
        true,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"error": "invalid_scope",
               "error_description": "\"newvoicemediavonage/api/stats\" is an invalid scope"})
    );

    let (s, v) = post(
        vec![
            ("grant_type", "client_credentials"),
            ("scope", "interaction-content:read"),
            ("client_id", "demo-client"),
            ("client_secret", "wrong"),
        ],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v, json!({"error": "invalid_client"}));
    assert_eq!(emu.stats().token_requests, 6);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_scope_and_version_gates() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let t0 = emu.tenant().anchor() - time::Duration::days(1);
    let query = [("start", fmt(t0)), ("end", fmt(emu.tenant().anchor()))];
    let q = &query;
    let url = format!("{}/interactions", emu.api_url);
    let send = |rb: reqwest::RequestBuilder| async move {
        let r = rb.query(q).send().await.expect("send");
        let s = r.status();
        (s, r.json::<Value>().await.expect("json"))
    };
    let (s, v) = send(api.http.get(&url).header(header::ACCEPT, ACCEPT_V3)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "The access token is invalid or has expired");
    let (s, _) = send(
        api.http
            .get(&url)
            .bearer_auth("not-a-token")
            .header(header::ACCEPT, ACCEPT_V3),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let stats_token = token(&api.http, &emu, "stats").await;
    let (s, v) = send(
        api.http
            .get(&url)
            .bearer_auth(&stats_token)
            .header(header::ACCEPT, ACCEPT_V3),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["message"].is_string());
    let (s, v) = send(api.http.get(&url).bearer_auth(&api.token)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], TWO_VERSIONS);
    let (s, v) = send(
        api.http
            .get(&url)
            .bearer_auth(&api.token)
            .header(header::ACCEPT, "application/json"),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some(TWO_VERSIONS))
    );
    let (s, v) = send(
        api.http
            .get(&url)
            .bearer_auth(&api.token)
            .header(header::ACCEPT, "application/vnd.newvoicemedia.v1+json"),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some(V3_ONLY))
    );
    let (s, v) = send(
        api.http
            .get(&url)
            .bearer_auth(&api.token)
            .header(header::ACCEPT, ACCEPT_V2),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["meta"]["totalCount"].is_u64());
    // The gate also guards content downloads.
    let (i, key, _) = find(&emu, "callRecording");
    let r = api
        .http
        .get(format!(
            "{}/interactions/{}/content/{key}",
            emu.api_url, i.guid
        ))
        .header(header::ACCEPT, ACCEPT_V3)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Revoking tokens at runtime: the next call is 401.
    api.faults(json!({"revoke_tokens": true})).await;
    let (s, _) = api.json("/interactions", q).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_expire() {
    let emu = start(&["--token-ttl", "1"]).await;
    let http = http();
    let r = http
        .post(&emu.auth_url)
        .basic_auth(emu.client_id(), Some(emu.client_secret()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "interaction-content:read"),
        ])
        .send()
        .await
        .expect("token");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["expires_in"], 1);
    let token = v["access_token"].as_str().expect("token").to_string();
    let guid = emu.tenant().interactions()[0].guid.clone();
    let get = || {
        http.get(format!("{}/interactions/{guid}", emu.api_url))
            .bearer_auth(&token)
            .header(header::ACCEPT, ACCEPT_V3)
            .send()
    };
    assert_eq!(get().await.expect("send").status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["message"], "The access token is invalid or has expired");
    emu.shutdown().await;
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

#[tokio::test(flavor = "multi_thread")]
async fn search_paging_walk_sees_every_interaction_once_in_order() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let anchor = tenant.anchor();
    // Those of the 35 days before the anchor (later ones keep arriving).
    let truth = tenant.interactions_between(anchor - time::Duration::days(35), anchor);
    assert_eq!(truth.len(), 120);
    let mut seen: Vec<String> = Vec::new();
    // Half-open 7-day windows over 35 days.
    for w in 0..5 {
        let end = anchor - time::Duration::days(7 * w);
        let start = end - time::Duration::days(7);
        let items = walk(
            &api,
            vec![
                ("start", fmt(start)),
                ("end", fmt(end)),
                ("limit", "7".into()),
            ],
        )
        .await;
        let starts: Vec<OffsetDateTime> = items
            .iter()
            .map(|i| {
                OffsetDateTime::parse(i["start"].as_str().expect("start"), &Rfc3339)
                    .expect("rfc3339")
            })
            .collect();
        assert!(starts.windows(2).all(|p| p[0] <= p[1]), "ordered by start");
        assert!(starts.iter().all(|s| *s >= start && *s < end));
        let expected: Vec<&str> = truth
            .iter()
            .filter(|i| i.start >= start && i.start < end)
            .map(|i| i.guid.as_str())
            .collect();
        let got: Vec<&str> = items
            .iter()
            .map(|i| i["guid"].as_str().expect("guid"))
            .collect();
        assert_eq!(got, expected, "window {w}");
        seen.extend(got.iter().map(|s| s.to_string()));
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    assert_eq!(seen.len(), truth.len(), "every interaction seen");
    // Items are the full interaction objects.
    let (_, v) = api
        .json(
            "/interactions",
            &[
                ("start", fmt(anchor - time::Duration::days(7))),
                ("end", fmt(anchor)),
                ("limit", "1".into()),
            ],
        )
        .await;
    let first = &v["items"][0];
    let guid = first["guid"].as_str().expect("guid");
    assert_eq!(
        *first,
        serde_json::to_value(tenant.interaction(guid).expect("truth")).expect("json")
    );
    assert!(first["content"][0]["properties"].is_object());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn search_validation() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let a = emu.tenant().anchor();
    let day = time::Duration::days(1);
    let bad = |q: Vec<(&'static str, String)>| {
        let api = &api;
        async move {
            let (s, v) = api.json("/interactions", &q).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{q:?} -> {v}");
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
            v["message"].as_str().unwrap_or_default().to_string()
        }
    };
    let m = bad(vec![("start", fmt(a - day * 8)), ("end", fmt(a))]).await;
    assert!(m.contains("7 days"), "{m}");
    bad(vec![("end", fmt(a))]).await;
    bad(vec![
        ("start", "2024-13-01T00:00:00Z".into()),
        ("end", fmt(a)),
    ])
    .await;
    bad(vec![("start", fmt(a)), ("end", fmt(a - day))]).await;
    for limit in ["0", "1001", "ten"] {
        bad(vec![
            ("start", fmt(a - day)),
            ("end", fmt(a)),
            ("limit", limit.into()),
        ])
        .await;
    }
    bad(vec![
        ("start", fmt(a - day)),
        ("end", fmt(a)),
        ("continuationToken", "garbage".into()),
    ])
    .await;
    // A token from another query is refused.
    let (_, v) = api
        .json(
            "/interactions",
            &[
                ("start", fmt(a - day * 7)),
                ("end", fmt(a)),
                ("limit", "1".into()),
            ],
        )
        .await;
    let t = v["meta"]["nextContinuationToken"]
        .as_str()
        .expect("more pages")
        .to_string();
    bad(vec![
        ("start", fmt(a - day * 6)),
        ("end", fmt(a)),
        ("limit", "1".into()),
        ("continuationToken", t),
    ])
    .await;
    // Offsets, fractions and exactly 7 days are fine.
    let (s, _) = api
        .json(
            "/interactions",
            &[
                ("start", "2024-01-01T01:00:00.000+01:00".into()),
                ("end", "2024-01-08T00:00:00Z".into()),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn search_filters() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let a = emu.tenant().anchor();
    let (start, end) = (a - time::Duration::days(7), a);
    let window: Vec<Interaction> = emu
        .tenant()
        .interactions()
        .into_iter()
        .filter(|i| i.start >= start && i.start < end)
        .collect();
    let run = |extra: (&'static str, String)| {
        let api = &api;
        async move {
            walk(api, vec![("start", fmt(start)), ("end", fmt(end)), extra])
                .await
                .into_iter()
                .map(|i| serde_json::from_value::<Interaction>(i).expect("interaction"))
                .collect::<Vec<_>>()
        }
    };
    let inbound = run(("direction", "INBOUND".into())).await;
    assert!(!inbound.is_empty());
    assert!(inbound
        .iter()
        .all(|i| i.direction.as_deref() == Some("inbound")));
    let expected = window
        .iter()
        .filter(|i| i.direction.as_deref() == Some("inbound"))
        .count();
    assert_eq!(inbound.len(), expected);

    let agent = window[0].handling_agents[0].id.clone();
    let by_agent = run(("handlingAgentId", agent.clone())).await;
    let expected = window
        .iter()
        .filter(|i| i.handling_agents.iter().any(|a| a.id == agent))
        .count();
    assert!(by_agent.len() == expected && expected > 0);

    let prefix = "+44207".to_string();
    let from = run(("connectFrom", prefix.clone())).await;
    let expected = window
        .iter()
        .filter(|i| {
            i.connect_from
                .as_deref()
                .is_some_and(|c| c.starts_with(&prefix))
        })
        .count();
    assert_eq!(from.len(), expected);
    assert!(from.iter().all(|i| i
        .connect_from
        .as_deref()
        .is_some_and(|c| c.starts_with("+44207"))));

    let to = run(("connectTo", "webchat".into())).await;
    let expected = window
        .iter()
        .filter(|i| {
            i.connect_to
                .as_deref()
                .is_some_and(|c| c.starts_with("webchat"))
        })
        .count();
    assert_eq!(to.len(), expected);
    assert!(expected > 0, "chats exist");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn end_is_exclusive_unless_switched() {
    for inclusive in [false, true] {
        let emu = if inclusive {
            start(&["--interactions", "20", "--end-inclusive"]).await
        } else {
            start(&["--interactions", "20"]).await
        };
        let api = Api::new(&emu).await;
        let last = emu.tenant().interactions().pop().expect("one");
        let q = [
            ("start", fmt(last.start - time::Duration::days(1))),
            ("end", fmt(last.start)),
        ];
        let (s, v) = api.json("/interactions", &q).await;
        assert_eq!(s, StatusCode::OK);
        let has = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["guid"] == last.guid.as_str());
        assert_eq!(has, inclusive);
        emu.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_page_paging() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let a = emu.tenant().anchor();
    let (start, end) = (a - time::Duration::days(7), a);
    let expected: Vec<String> = emu
        .tenant()
        .interactions()
        .into_iter()
        .filter(|i| i.start >= start && i.start < end)
        .map(|i| i.guid)
        .collect();
    let mut got = Vec::new();
    let mut page = 1;
    loop {
        let r = api
            .http
            .get(format!("{}/interactions", emu.api_url))
            .bearer_auth(&api.token)
            .header(header::ACCEPT, ACCEPT_V2)
            .query(&[
                ("start", fmt(start)),
                ("end", fmt(end)),
                ("limit", "5".into()),
                ("page", page.to_string()),
            ])
            .send()
            .await
            .expect("send");
        let v: Value = r.json().await.expect("json");
        let meta = &v["meta"];
        assert_eq!(meta["page"], page);
        assert_eq!(meta["totalCount"], expected.len());
        assert_eq!(meta["pageCount"], expected.len().div_ceil(5));
        let items = v["items"].as_array().expect("items");
        assert_eq!(meta["count"], items.len());
        got.extend(
            items
                .iter()
                .map(|i| i["guid"].as_str().expect("guid").to_string()),
        );
        if page >= meta["pageCount"].as_u64().expect("pageCount") {
            break;
        }
        page += 1;
    }
    assert_eq!(got, expected);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_interaction_by_guid() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let truth = emu.tenant().interactions().remove(3);
    let (s, v) = api
        .json(&format!("/interactions/{}", truth.guid), &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::to_value(&truth).expect("json"));
    let (s, v) = api.json("/interactions/111414121313", &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"message": "GUID must be 36 characters in length"})
    );
    let bad = "2480fc2c-bbd7-427c-9439-02f76583aefZ";
    let (s, v) = api.json(&format!("/interactions/{bad}"), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["message"],
        format!("GUID '{bad}' is not a valid UUID string")
    );
    let (s, v) = api
        .json("/interactions/00000000-0000-4000-8000-000000000000", &[])
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["message"].is_string());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn content_full_body_and_headers() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    for kind in [
        "callRecording",
        "transcript",
        "chatTranscript",
        "attachment",
    ] {
        let (i, key, len) = find(&emu, kind);
        let item = i.item(&key).expect("item").clone();
        let r = api.content(&i.guid, &key).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK, "{kind}");
        let h = r.headers().clone();
        assert_eq!(hdr(&h, header::CONTENT_TYPE), item.content_type);
        assert_eq!(hdr(&h, header::CONTENT_LENGTH), len.to_string());
        assert_eq!(hdr(&h, header::ACCEPT_RANGES), "bytes");
        let etag = hdr(&h, header::ETAG);
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "strong ETag"
        );
        let lm = httpdate::parse_http_date(hdr(&h, header::LAST_MODIFIED)).expect("http date");
        let lm = OffsetDateTime::from(lm);
        assert_eq!(Some(lm), item.last_modified);
        let body = body_of(r).await;
        assert_eq!(body.len() as u64, len);
        assert!(
            body == tenant.bytes(&i.guid, &key).expect("truth"),
            "{kind} bytes"
        );
    }
    // Keys match case-insensitively; unknown keys are 404.
    let (i, _, len) = find(&emu, "callRecording");
    let r = api
        .content(&i.guid, "CALLRECORDING")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_of(r).await.len() as u64, len);
    let r = api
        .content(&i.guid, "nothing-here")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = api
        .content("00000000-0000-4000-8000-000000000000", "callRecording")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn content_ranges_and_conditionals() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let (i, key, size) = find(&emu, "callRecording");
    let truth = tenant.bytes(&i.guid, &key).expect("truth");
    let ranged = |range: String| {
        let rb = api.content(&i.guid, &key).header(header::RANGE, range);
        async move { rb.send().await.expect("send") }
    };
    let cases = [
        ("bytes=0-1023".to_string(), 0, 1023),
        ("bytes=1000-".to_string(), 1000, size - 1),
        ("bytes=-500".to_string(), size - 500, size - 1),
        (
            format!("bytes={}-{}", size - 10, size + 5000),
            size - 10,
            size - 1,
        ),
        (format!("bytes=-{}", size + 10), 0, size - 1),
        ("bytes=7-7".to_string(), 7, 7),
    ];
    for (range, a, b) in cases {
        let r = ranged(range.clone()).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            hdr(r.headers(), header::CONTENT_RANGE),
            format!("bytes {a}-{b}/{size}"),
            "{range}"
        );
        assert_eq!(
            hdr(r.headers(), header::CONTENT_LENGTH),
            (b - a + 1).to_string()
        );
        let body = body_of(r).await;
        assert!(body == truth[a as usize..=b as usize], "{range} bytes");
    }
    let r = ranged(format!("bytes={size}-")).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        hdr(r.headers(), header::CONTENT_RANGE),
        format!("bytes */{size}")
    );
    // Multi-range and malformed ranges are ignored: the full body.
    for ignored in ["bytes=0-1,5-9", "bytes=9-2", "lines=1-2"] {
        let r = ranged(ignored.into()).await;
        assert_eq!(r.status(), StatusCode::OK, "{ignored}");
        assert_eq!(body_of(r).await.len() as u64, size);
    }
    // If-Range: the current ETag or date keeps the range, anything else gives 200.
    let etag = tenant.etag(&i.guid, &key).expect("etag");
    let lm = tenant
        .item(&i.guid, &key)
        .and_then(|c| c.last_modified)
        .expect("lm");
    let lm_http = httpdate::fmt_http_date(lm.into());
    let with = |name: header::HeaderName, value: String| {
        let rb = api
            .content(&i.guid, &key)
            .header(header::RANGE, "bytes=0-9")
            .header(name, value);
        async move { rb.send().await.expect("send") }
    };
    assert_eq!(
        with(header::IF_RANGE, etag.clone()).await.status(),
        StatusCode::PARTIAL_CONTENT
    );
    assert_eq!(
        with(header::IF_RANGE, lm_http.clone()).await.status(),
        StatusCode::PARTIAL_CONTENT
    );
    let r = with(header::IF_RANGE, "\"stale\"".into()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_of(r).await, truth);
    let old = httpdate::fmt_http_date((lm - time::Duration::hours(1)).into());
    assert_eq!(with(header::IF_RANGE, old).await.status(), StatusCode::OK);
    // If-Match.
    assert_eq!(
        with(header::IF_MATCH, etag.clone()).await.status(),
        StatusCode::PARTIAL_CONTENT
    );
    assert_eq!(
        with(header::IF_MATCH, "\"stale\"".into()).await.status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        with(header::IF_NONE_MATCH, etag.clone()).await.status(),
        StatusCode::NOT_MODIFIED
    );
    // HEAD: headers, no body.
    let r = api
        .http
        .head(format!(
            "{}/interactions/{}/content/{key}",
            emu.api_url, i.guid
        ))
        .bearer_auth(&api.token)
        .header(header::ACCEPT, ACCEPT_V3)
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(hdr(r.headers(), header::CONTENT_LENGTH), size.to_string());
    assert!(body_of(r).await.is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_requests_and_reset() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let (i, key, size) = find(&emu, "transcript");
    api.reset_stats().await;
    assert_eq!(api.stats().await["token_requests"], 0);
    let a = emu.tenant().anchor();
    api.json(
        "/interactions",
        &[("start", fmt(a - time::Duration::days(1))), ("end", fmt(a))],
    )
    .await;
    api.json(&format!("/interactions/{}", i.guid), &[]).await;
    let full = body_of(api.content(&i.guid, &key).send().await.expect("send")).await;
    let part = body_of(
        api.content(&i.guid, &key)
            .header(header::RANGE, "bytes=0-99")
            .send()
            .await
            .expect("send"),
    )
    .await;
    let _ = api
        .http
        .get(format!("{}/interactions", emu.api_url))
        .send()
        .await;
    let s = api.stats().await;
    assert_eq!(s["token_requests"], 0);
    assert_eq!(s["search_requests"], 2);
    assert_eq!(s["interaction_requests"], 1);
    assert_eq!(s["content_requests"], 2);
    assert_eq!(s["range_requests"], 1);
    assert_eq!(s["content_requests_by_type"]["transcript"], 2);
    assert_eq!(s["bytes_sent"], (full.len() + part.len()) as u64);
    assert_eq!(full.len() as u64, size);
    assert_eq!(
        (s["status_2xx"].as_u64(), s["status_4xx"].as_u64()),
        (Some(4), Some(1))
    );
    for field in ["status_429", "status_5xx", "resets", "auth_leaked"] {
        assert_eq!(s[field], 0, "{field}");
    }
    api.reset_stats().await;
    let s = api.stats().await;
    assert_eq!(
        (s["search_requests"].as_u64(), s["bytes_sent"].as_u64()),
        (Some(0), Some(0))
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_gives_429_with_retry_after() {
    let emu = start(&["--rate-limit", "5"]).await;
    let api = Api::new(&emu).await;
    let guid = emu.tenant().interactions()[0].guid.clone();
    for _ in 0..5 {
        let (s, _) = api.json(&format!("/interactions/{guid}"), &[]).await;
        assert_eq!(s, StatusCode::OK);
    }
    let r = api
        .get(&format!("/interactions/{guid}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = hdr(r.headers(), header::RETRY_AFTER)
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = r.json().await.expect("json");
    assert!(v["message"].is_string());
    // The token endpoint and the control routes are not limited.
    token(&api.http, &emu, "interaction-content:read").await;
    let s = api.stats().await;
    assert_eq!(s["status_429"], 1);
    // A burst of 429s set at runtime.
    let emu2 = start(&["--burst-429", "2"]).await;
    let api2 = Api::new(&emu2).await;
    let path = format!("/interactions/{}", emu2.tenant().interactions()[0].guid);
    assert_eq!(api2.json(&path, &[]).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(api2.json(&path, &[]).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(api2.json(&path, &[]).await.0, StatusCode::OK);
    emu.shutdown().await;
    emu2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_rate_gives_503() {
    let emu = start(&["--fail-rate", "1"]).await;
    let api = Api::new(&emu).await;
    let (i, key, _) = find(&emu, "transcript");
    let (s, v) = api.json(&format!("/interactions/{}", i.guid), &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["message"].is_string());
    let r = api.content(&i.guid, &key).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.stats().await["status_5xx"], 2);
    api.faults(json!({"fail_rate": 0.0})).await;
    let (s, _) = api.json(&format!("/interactions/{}", i.guid), &[]).await;
    assert_eq!(s, StatusCode::OK);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_rate_breaks_bodies() {
    let emu = start(&["--reset-rate", "1"]).await;
    let api = Api::new(&emu).await;
    let (i, key, _) = find(&emu, "callRecording");
    for _ in 0..3 {
        let r = api
            .content(&i.guid, &key)
            .send()
            .await
            .expect("headers arrive");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.bytes().await.is_err(), "the body must fail");
    }
    assert_eq!(api.stats().await["resets"], 3);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_and_range_faults() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let (i, key, size) = find(&emu, "callRecording");
    let truth = tenant.bytes(&i.guid, &key).expect("truth");

    // Short body: fewer bytes than announced, then the connection closes.
    api.faults(json!({"short_body_rate": 1.0})).await;
    let r = api.content(&i.guid, &key).send().await.expect("send");
    assert_eq!(hdr(r.headers(), header::CONTENT_LENGTH), size.to_string());
    assert!(
        r.bytes().await.is_err(),
        "a short body is an error for the client"
    );
    api.faults(json!({"short_body_rate": 0.0, "ignore_range_rate": 1.0}))
        .await;

    // Ignored range: 200 with the full body.
    let r = api
        .content(&i.guid, &key)
        .header(header::RANGE, "bytes=100-199")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body_of(r).await == truth);

    // Wrong range: 206 whose Content-Range (and bytes) start elsewhere.
    api.faults(json!({"ignore_range_rate": 0.0, "wrong_range_rate": 1.0}))
        .await;
    let r = api
        .content(&i.guid, &key)
        .header(header::RANGE, "bytes=100-199")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let cr = hdr(r.headers(), header::CONTENT_RANGE).to_string();
    let (a, b) = cr
        .strip_prefix("bytes ")
        .and_then(|s| s.split_once('/'))
        .and_then(|(r, _)| r.split_once('-'))
        .map(|(a, b)| {
            (
                a.parse::<usize>().expect("a"),
                b.parse::<usize>().expect("b"),
            )
        })
        .expect("content-range");
    assert_ne!(a, 100, "the start is shifted");
    assert!(
        body_of(r).await == truth[a..=b],
        "bytes match the announced range"
    );

    // Stall: the body pauses, then completes correctly.
    api.faults(json!({"wrong_range_rate": 0.0, "stall_rate": 1.0, "stall_ms": 400}))
        .await;
    let t0 = Instant::now();
    let r = api
        .content(&i.guid, &key)
        .header(header::RANGE, "bytes=0-99999")
        .send()
        .await
        .expect("send");
    assert!(body_of(r).await == truth[..100_000]);
    assert!(t0.elapsed() >= Duration::from_millis(400));

    // Latency and bandwidth.
    api.faults(json!({"stall_rate": 0.0, "latency_ms": 200, "bandwidth": 400000}))
        .await;
    let t0 = Instant::now();
    let r = api
        .content(&i.guid, &key)
        .header(header::RANGE, "bytes=0-199999")
        .send()
        .await
        .expect("send");
    assert!(body_of(r).await == truth[..200_000]);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(550), "{took:?}");
    let s = api.stats().await;
    for f in ["short_bodies", "ignored_ranges", "wrong_ranges", "stalls"] {
        assert_eq!(s[f], 1, "{f}");
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_to_signed_storage_url() {
    let emu = start(&["--redirect"]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let (i, key, size) = find(&emu, "callRecording");
    let truth = tenant.bytes(&i.guid, &key).expect("truth");
    let r = api.content(&i.guid, &key).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = hdr(r.headers(), header::LOCATION).to_string();
    assert!(location.starts_with("http://127.0.0.2:"), "{location}");
    assert!(location.contains("signature="));
    // Without the token: the bytes, and nothing leaked.
    let r = api
        .http
        .get(&location)
        .header(header::RANGE, "bytes=10-19")
        .send()
        .await
        .expect("storage");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        hdr(r.headers(), header::CONTENT_RANGE),
        format!("bytes 10-19/{size}")
    );
    assert!(body_of(r).await == truth[10..20]);
    let r = api.http.get(&location).send().await.expect("storage");
    assert!(r.headers().contains_key(header::ETAG));
    assert!(body_of(r).await == truth);
    assert_eq!(api.stats().await["auth_leaked"], 0);
    // With the token: counted as a leak.
    let r = api
        .http
        .get(&location)
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("storage");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(api.stats().await["auth_leaked"], 1);
    // A tampered signature is refused.
    let tampered = format!("{location}0");
    let r = api.http.get(&tampered).send().await.expect("storage");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A redirect-following client that drops the token across hosts gets the bytes.
    let follow = Client::new();
    let r = follow
        .get(format!(
            "{}/interactions/{}/content/{key}",
            emu.api_url, i.guid
        ))
        .bearer_auth(&api.token)
        .header(header::ACCEPT, ACCEPT_V3)
        .send()
        .await
        .expect("followed");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body_of(r).await == truth);
    let s = api.stats().await;
    assert_eq!(
        s["auth_leaked"], 1,
        "reqwest strips Authorization across hosts"
    );
    assert_eq!(s["content_requests"], 2);
    assert_eq!(s["storage_requests"], 5);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_storage_url_is_refused() {
    let emu = start(&["--redirect", "--redirect-ttl", "1"]).await;
    let api = Api::new(&emu).await;
    let (i, key, _) = find(&emu, "transcript");
    let r = api.content(&i.guid, &key).send().await.expect("send");
    let location = hdr(r.headers(), header::LOCATION).to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = api.http.get(&location).send().await.expect("storage");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    emu.shutdown().await;
}

/// The `Location` of the API's 302 for one content item (with `--redirect`).
async fn storage_url(api: &Api, guid: &str, key: &str) -> String {
    let r = api.content(guid, key).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::FOUND);
    hdr(r.headers(), header::LOCATION).to_string()
}

/// ETag and Last-Modified of a response.
fn validators_of(r: &Response) -> (String, OffsetDateTime) {
    let lm = httpdate::parse_http_date(hdr(r.headers(), header::LAST_MODIFIED)).expect("date");
    (hdr(r.headers(), header::ETAG).to_string(), lm.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_own_validators_differ_and_drive_if_range() {
    let emu = start(&["--redirect", "--storage-validators", "own"]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let (i, key, size) = find(&emu, "callRecording");
    let truth = tenant.bytes(&i.guid, &key).expect("truth");
    let api_etag = tenant.etag(&i.guid, &key).expect("etag");
    let api_lm = i.item(&key).and_then(|c| c.last_modified).expect("lm");
    let location = storage_url(&api, &i.guid, &key).await;
    let r = api.http.get(&location).send().await.expect("storage");
    assert_eq!(r.status(), StatusCode::OK);
    let (etag, lm) = validators_of(&r);
    assert!(body_of(r).await == truth);
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    assert_ne!(etag, api_etag, "the object's own ETag");
    assert!(
        lm > api_lm,
        "written to storage after lastModified: {lm} vs {api_lm}"
    );
    let r = api.http.get(&location).send().await.expect("storage");
    assert_eq!(validators_of(&r), (etag.clone(), lm), "deterministic");
    // If-Range is checked against the storage's own validators.
    let ranged = |if_range: String| {
        let rb = api
            .http
            .get(&location)
            .header(header::RANGE, "bytes=10-19")
            .header(header::IF_RANGE, if_range);
        async move { rb.send().await.expect("storage") }
    };
    let lm_http = httpdate::fmt_http_date(lm.into());
    for own in [etag.clone(), lm_http.clone()] {
        let r = ranged(own.clone()).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "If-Range {own}");
        assert_eq!(
            hdr(r.headers(), header::CONTENT_RANGE),
            format!("bytes 10-19/{size}")
        );
        assert!(body_of(r).await == truth[10..20]);
    }
    for api_validator in [api_etag.clone(), httpdate::fmt_http_date(api_lm.into())] {
        let r = ranged(api_validator.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "If-Range {api_validator}");
        assert!(r.headers().get(header::CONTENT_RANGE).is_none());
        assert!(body_of(r).await == truth, "the full body");
    }
    let r = api
        .http
        .get(&location)
        .header(header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("storage");
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // A new version: new validators, and a range on the old ETag gets the new body.
    let r = api
        .http
        .post(format!("http://{}/_emulator/mutate", emu.addr))
        .json(&json!({"guid": i.guid, "contentKey": key, "bumpSecs": 30}))
        .send()
        .await
        .expect("mutate");
    assert_eq!(r.status(), StatusCode::OK);
    let location = storage_url(&api, &i.guid, &key).await;
    let r = api
        .http
        .get(&location)
        .header(header::RANGE, "bytes=10-19")
        .header(header::IF_RANGE, etag.clone())
        .send()
        .await
        .expect("storage");
    assert_eq!(r.status(), StatusCode::OK);
    let (etag2, lm2) = validators_of(&r);
    assert_ne!(etag2, etag);
    assert_ne!(etag2, tenant.etag(&i.guid, &key).expect("etag"));
    assert_eq!(lm2, lm + time::Duration::seconds(30));
    assert!(body_of(r).await == tenant.bytes(&i.guid, &key).expect("truth"));
    emu.shutdown().await;

    // The default, `api`: the storage host repeats the API's validators.
    let emu = start(&["--redirect"]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let (i, key, _) = find(&emu, "callRecording");
    let location = storage_url(&api, &i.guid, &key).await;
    let r = api
        .http
        .get(&location)
        .header(header::RANGE, "bytes=10-19")
        .header(header::IF_RANGE, tenant.etag(&i.guid, &key).expect("etag"))
        .send()
        .await
        .expect("storage");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        validators_of(&r),
        (
            tenant.etag(&i.guid, &key).expect("etag"),
            i.item(&key).and_then(|c| c.last_modified).expect("lm")
        )
    );
    emu.shutdown().await;
}

/// `(guid, contentKey)` of the listed items without `contentLength`, and how many
/// items were listed.
fn lacking_length(interactions: &[Value]) -> (HashSet<(String, String)>, usize) {
    let mut lacking = HashSet::new();
    let mut n = 0;
    for i in interactions {
        let guid = i["guid"].as_str().expect("guid");
        for c in i["content"].as_array().expect("content") {
            n += 1;
            if c.get("contentLength").is_none() {
                let key = c["contentKey"].as_str().expect("key");
                lacking.insert((guid.to_string(), key.to_string()));
            }
        }
    }
    (lacking, n)
}

#[tokio::test(flavor = "multi_thread")]
async fn omit_content_length_leaves_out_the_same_share_everywhere() {
    let emu = start(&["--days", "6", "--omit-content-length", "0.3"]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let anchor = tenant.anchor();
    let query = vec![
        ("start", fmt(anchor - time::Duration::days(7))),
        ("end", fmt(anchor)),
        ("limit", "50".into()),
    ];
    let listed = walk(&api, query.clone()).await;
    // One window sees all those before the anchor (later ones keep arriving).
    let window = tenant.interactions_between(anchor - time::Duration::days(7), anchor);
    assert_eq!(window.len(), 120);
    assert_eq!(listed.len(), window.len(), "one window sees all");
    let (lacking, n) = lacking_length(&listed);
    assert!(n >= 200, "{n} items");
    let share = lacking.len() as f64 / n as f64;
    assert!((0.15..=0.45).contains(&share), "{} of {n}", lacking.len());
    // The same items every time, in the search and by guid; nothing else changes.
    assert_eq!(lacking_length(&walk(&api, query).await).0, lacking);
    let mut by_guid = Vec::new();
    for truth in window {
        let (s, v) = api
            .json(&format!("/interactions/{}", truth.guid), &[])
            .await;
        assert_eq!(s, StatusCode::OK);
        let mut expected = truth.clone();
        for c in &mut expected.content {
            assert!(c.content_length.is_some(), "ground truth keeps it");
            if emu.omits_content_length(&truth.guid, &c.content_key) {
                c.content_length = None;
            }
        }
        assert_eq!(v, serde_json::to_value(&expected).expect("json"));
        by_guid.push(v);
    }
    assert_eq!(lacking_length(&by_guid).0, lacking);
    // A ranged GET tells the size.
    let (guid, key) = lacking.iter().next().expect("one lacks it");
    let size = tenant.bytes(guid, key).expect("truth").len();
    let r = api
        .content(guid, key)
        .header(header::RANGE, "bytes=0-0")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        hdr(r.headers(), header::CONTENT_RANGE),
        format!("bytes 0-0/{size}")
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_dir_serves_real_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g1 = "2480fc2c-bbd7-427c-9439-02f76583aef5";
    std::fs::create_dir(dir.path().join(g1)).expect("mkdir");
    let audio: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join(g1).join("callRecording.wav"), &audio).expect("write");
    std::fs::write(
        dir.path().join(g1).join("interaction.json"),
        json!({"start": fmt(OffsetDateTime::now_utc() - time::Duration::days(1)),
               "direction": "inbound", "connectFrom": "+442079460000",
               "handlingAgents": [{"id": "42"}]})
        .to_string(),
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("chat one")).expect("mkdir");
    std::fs::write(dir.path().join("chat one").join("transcript.json"), b"[]").expect("write");
    let path = dir.path().to_str().expect("utf8").to_string();
    let emu = start(&["--data-dir", &path]).await;
    assert_eq!(emu.tenant().len(), 2);
    let api = Api::new(&emu).await;
    let now = OffsetDateTime::now_utc();
    let items = walk(
        &api,
        vec![
            ("start", fmt(now - time::Duration::days(6))),
            ("end", fmt(now + time::Duration::hours(1))),
        ],
    )
    .await;
    assert_eq!(items.len(), 2);
    let i1 = items.iter().find(|i| i["guid"] == g1).expect("g1");
    assert_eq!(i1["content"][0]["contentLength"], audio.len());
    assert_eq!(i1["content"][0]["contentType"], "audio/wav");
    assert_eq!(i1["handlingAgents"][0]["id"], "42");
    let r = api.content(g1, "callRecording").send().await.expect("send");
    assert!(body_of(r).await == audio);
    let r = api
        .content(g1, "callrecording")
        .header(header::RANGE, "bytes=-1000")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(body_of(r).await == audio[audio.len() - 1000..]);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn big_file_is_served_without_trouble() {
    let emu = start(&["--big-file-mib", "8"]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let (guid, key) = tenant.big_file().expect("big file");
    let size = 8 * 1024 * 1024u64;
    // A default 7-day search sees it.
    let a = tenant.anchor();
    let (_, v) = api.json(&format!("/interactions/{guid}"), &[]).await;
    let start = OffsetDateTime::parse(v["start"].as_str().expect("start"), &Rfc3339).expect("t");
    assert!(start > a - time::Duration::days(7));
    let item = v["content"]
        .as_array()
        .expect("content")
        .iter()
        .find(|c| c["contentKey"] == key.as_str())
        .expect("listed")
        .clone();
    assert_eq!(item["contentLength"], size);
    assert_eq!(item["type"], "screenRecording");
    let r = api
        .content(&guid, &key)
        .header(header::RANGE, format!("bytes={}-", size - 4096))
        .send()
        .await
        .expect("send");
    assert_eq!(
        hdr(r.headers(), header::CONTENT_RANGE),
        format!("bytes {}-{}/{size}", size - 4096, size - 1)
    );
    let tail = body_of(r).await;
    assert!(tail == tenant.read(&guid, &key, size - 4096..size).expect("truth"));
    // The whole file streams with the announced length.
    let mut r = api.content(&guid, &key).send().await.expect("send");
    assert_eq!(hdr(r.headers(), header::CONTENT_LENGTH), size.to_string());
    let mut n = 0u64;
    while let Some(chunk) = r.chunk().await.expect("chunk") {
        n += chunk.len() as u64;
    }
    assert_eq!(n, size);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutate_changes_bytes_etag_and_last_modified() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let (i, key, _) = find(&emu, "transcript");
    let before = body_of(api.content(&i.guid, &key).send().await.expect("send")).await;
    let r = api.content(&i.guid, &key).send().await.expect("send");
    let etag = hdr(r.headers(), header::ETAG).to_string();
    let lm = hdr(r.headers(), header::LAST_MODIFIED).to_string();
    let old_lm = i.item(&key).and_then(|c| c.last_modified).expect("lm");
    let r = api
        .http
        .post(format!("http://{}/_emulator/mutate", emu.addr))
        .json(&json!({"guid": i.guid, "contentKey": key, "bumpSecs": 90}))
        .send()
        .await
        .expect("mutate");
    assert_eq!(r.status(), StatusCode::OK);
    let item: Value = r.json().await.expect("json");
    let r = api.content(&i.guid, &key).send().await.expect("send");
    assert_ne!(hdr(r.headers(), header::ETAG), etag);
    assert_ne!(hdr(r.headers(), header::LAST_MODIFIED), lm);
    let after = body_of(r).await;
    assert!(after != before);
    assert!(after == tenant.bytes(&i.guid, &key).expect("truth"));
    assert_eq!(item["contentLength"], after.len());
    let (_, v) = api.json(&format!("/interactions/{}", i.guid), &[]).await;
    let listed = v["content"]
        .as_array()
        .expect("content")
        .iter()
        .find(|c| c["contentKey"] == key.as_str())
        .expect("item")
        .clone();
    assert_eq!(
        listed["lastModified"],
        fmt(old_lm + time::Duration::seconds(90)).as_str()
    );
    assert_eq!(listed["contentLength"], after.len());
    // A range conditional on the old version gets the whole new body.
    let r = api
        .content(&i.guid, &key)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, etag)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let r = api
        .http
        .post(format!("http://{}/_emulator/mutate", emu.addr))
        .json(&json!({"guid": i.guid, "contentKey": "nope"}))
        .send()
        .await
        .expect("mutate");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn down_drops_connections_until_up() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let guid = emu.tenant().interactions()[0].guid.clone();
    let cfg = api.faults(json!({"down": true})).await;
    assert_eq!(cfg["down"], true);
    let err = api
        .get(&format!("/interactions/{guid}"))
        .send()
        .await
        .expect_err("no response while down");
    assert!(!err.is_status());
    assert!(api
        .http
        .post(&emu.auth_url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .is_err());
    // Control routes still answer.
    assert_eq!(api.stats().await["dropped_connections"], 2);
    api.faults(json!({"down": false})).await;
    let (s, _) = api.json(&format!("/interactions/{guid}"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn control_routes_validate_input() {
    let emu = start(&[]).await;
    let http = http();
    let base = format!("http://{}/_emulator", emu.addr);
    for bad in [json!({"fail_rate": 2}), json!({"no_such_knob": 1})] {
        let r = http
            .post(format!("{base}/faults"))
            .json(&bad)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = http
        .get(format!("{base}/faults"))
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["fail_rate"], 0.0);
    let r = http
        .get(format!("{base}/tenant"))
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(emu.tenant().len()));
    assert_eq!(
        v,
        serde_json::to_value(emu.tenant().interactions()).expect("json")
    );
    // A window of the ground truth, no 7-day limit.
    let a = emu.tenant().anchor();
    let (from, to) = (a - time::Duration::days(20), a - time::Duration::days(5));
    let r = http
        .get(format!("{base}/tenant"))
        .query(&[("start", fmt(from)), ("end", fmt(to))])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    let window = emu.tenant().interactions_between(from, to);
    assert!(!window.is_empty());
    assert_eq!(v, serde_json::to_value(window).expect("json"));
    let r = http
        .get(format!("{base}/tenant?start=yesterday"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    emu.shutdown().await;
}

fn ffprobe_ok(bytes: &[u8], ext: &str) -> Option<bool> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("media.{ext}"));
    std::fs::write(&path, bytes).expect("write");
    match std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_format", "-show_streams"])
        .arg(&path)
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("ffprobe: {e}"),
        Ok(out) => Some(out.status.success() && out.stderr.is_empty()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ffprobe_accepts_served_wav_and_webm() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    for (kind, ext) in [
        ("callRecording", "wav"),
        ("voicemail", "wav"),
        ("screenRecording", "webm"),
    ] {
        let (i, key, _) = find(&emu, kind);
        let bytes = body_of(api.content(&i.guid, &key).send().await.expect("send")).await;
        match ffprobe_ok(&bytes, ext) {
            None => {
                eprintln!("SKIP: ffprobe not installed");
                return;
            }
            Some(ok) => assert!(ok, "ffprobe rejects the {kind}"),
        }
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_interactions_are_built_on_demand() {
    let t0 = Instant::now();
    let emu = start(&["--interactions", "1000000", "--days", "30"]).await;
    let started = t0.elapsed();
    assert!(started < Duration::from_secs(5), "start took {started:?}");
    let tenant = emu.tenant();
    assert!(tenant.len() >= 1_000_000);
    assert_eq!(tenant.records_built(), 0, "nothing is built at start");
    let api = Api::new(&emu).await;
    // One hour from the middle of the span, walked over HTTP.
    let from = tenant.anchor() - time::Duration::days(15);
    let to = from + time::Duration::hours(1);
    let items = walk(
        &api,
        vec![
            ("start", fmt(from)),
            ("end", fmt(to)),
            ("limit", "500".into()),
        ],
    )
    .await;
    let walked = tenant.records_built();
    let truth = tenant.interactions_between(from, to);
    assert!(truth.len() > 100, "{} in the hour", truth.len());
    let got: Vec<&str> = items
        .iter()
        .map(|i| i["guid"].as_str().expect("guid"))
        .collect();
    let want: Vec<&str> = truth.iter().map(|i| i.guid.as_str()).collect();
    assert_eq!(got, want);
    // Only the hour's interactions were built (and one past each page).
    let pages = truth.len().div_ceil(500) as u64;
    assert!(
        walked <= truth.len() as u64 + pages + 5,
        "{walked} records built for {} interactions",
        truth.len()
    );
    // A GUID from the middle is found at once.
    let mid = &truth[truth.len() / 2];
    let before = tenant.records_built();
    let (s, v) = api.json(&format!("/interactions/{}", mid.guid), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::to_value(mid).expect("json"));
    assert_eq!(tenant.records_built(), before + 1);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn new_interactions_keep_arriving_unless_the_end_is_fixed() {
    // 864,000 a day: several a second.
    let emu = start(&["--interactions", "864000", "--days", "1"]).await;
    let tenant = emu.tenant();
    let api = Api::new(&emu).await;
    let n0 = tenant.len();
    assert!(n0 >= 864_000);
    let now = || OffsetDateTime::now_utc();
    let query = |limit: &str| {
        vec![
            ("start", fmt(now() - time::Duration::seconds(20))),
            ("end", fmt(now() + time::Duration::hours(1))),
            ("limit", limit.to_string()),
        ]
    };
    // A window ending in the future lists only what has started.
    let (s, v) = api.json("/interactions", &query("1000")).await;
    assert_eq!(s, StatusCode::OK);
    let listed = v["items"].as_array().expect("items").clone();
    assert!(!listed.is_empty(), "calls in the last 20 seconds");
    let at = now();
    for i in &listed {
        let start =
            OffsetDateTime::parse(i["start"].as_str().expect("start"), &Rfc3339).expect("rfc3339");
        assert!(start <= at, "{start} is in the future");
    }
    // The newest is served by GUID too.
    let newest = listed.last().expect("one")["guid"].as_str().expect("guid");
    let (s, _) = api.json(&format!("/interactions/{newest}"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tenant.len() == n0 {
        assert!(Instant::now() < deadline, "no new interaction in 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(tenant.len() > n0);
    emu.shutdown().await;

    // A fixed end: exactly the interactions asked for, ending there.
    let end = "2024-03-01T12:00:00Z";
    let emu = start(&["--interactions", "50", "--end", end]).await;
    let tenant = emu.tenant();
    assert_eq!(tenant.len(), 50);
    assert_eq!(fmt(tenant.anchor()), end);
    let all = tenant.interactions();
    assert_eq!(all.len(), 50);
    assert!(all.iter().all(|i| fmt(i.start).as_str() < end));
    let api = Api::new(&emu).await;
    let items = walk(
        &api,
        vec![
            ("start", "2024-02-25T12:00:00Z".into()),
            ("end", fmt(tenant.anchor() + time::Duration::days(2))),
        ],
    )
    .await;
    let expected = tenant.interactions_between(
        tenant.anchor() - time::Duration::days(5),
        tenant.anchor() + time::Duration::days(2),
    );
    assert_eq!(items.len(), expected.len());
    assert!(!expected.is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_makes_an_interaction_gone_everywhere() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let tenant = emu.tenant();
    let (i, key, _) = find(&emu, "transcript");
    let r = api.content(&i.guid, &key).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let window = vec![
        ("start", fmt(i.start - time::Duration::hours(1))),
        ("end", fmt(i.start + time::Duration::hours(1))),
    ];
    let listed = |items: &[Value]| items.iter().any(|v| v["guid"] == i.guid.as_str());
    assert!(listed(&walk(&api, window.clone()).await));
    let delete = |guid: String| {
        api.http
            .post(format!("http://{}/_emulator/delete", emu.addr))
            .json(&json!({ "guid": guid }))
            .send()
    };
    let r = delete(i.guid.clone()).await.expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["guid"], i.guid.as_str());
    // Not listed, not found by guid, its content not served; the others still are.
    assert!(!listed(&walk(&api, window).await));
    let (s, _) = api.json(&format!("/interactions/{}", i.guid), &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let r = api.content(&i.guid, &key).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(tenant.interaction(&i.guid).is_none());
    let other = tenant
        .interactions()
        .into_iter()
        .find(|o| o.guid != i.guid)
        .expect("another interaction");
    let (s, _) = api
        .json(&format!("/interactions/{}", other.guid), &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    // Unknown (or already deleted): 404.
    let r = delete(i.guid.clone()).await.expect("delete");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = delete("00000000-0000-4000-8000-000000000000".into())
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_client_is_refused_until_restored() {
    let emu = start(&[]).await;
    let api = Api::new(&emu).await;
    let (i, key, len) = find(&emu, "callRecording");
    let guid = i.guid.clone();
    let set = |revoked: bool| {
        let http = api.http.clone();
        let url = format!("{}/_emulator/client", api.base);
        async move {
            let r = http
                .post(url)
                .json(&json!({ "revoked": revoked }))
                .send()
                .await
                .expect("client");
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.expect("client json")
        }
    };
    let token_status = || async {
        let r = api
            .http
            .post(&emu.auth_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "interaction-content:read"),
                ("client_id", emu.client_id()),
                ("client_secret", emu.client_secret()),
            ])
            .send()
            .await
            .expect("token");
        let s = r.status();
        (s, r.json::<Value>().await.expect("token json"))
    };
    assert_eq!(set(true).await, json!({ "revoked": true }));
    let (s, v) = token_status().await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v, json!({ "error": "invalid_client" }));
    // A token issued before the revocation is refused with 403 everywhere.
    let (s, v) = api.json(&format!("/interactions/{guid}"), &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["message"].as_str().expect("message").contains("revoked"));
    let r = api.content(&guid, &key).send().await.expect("content");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Bad requests to the control route are refused and change nothing.
    let r = api
        .http
        .post(format!("{}/_emulator/client", api.base))
        .json(&json!({ "revoked": "maybe" }))
        .send()
        .await
        .expect("client");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Restored: the old token and new ones work again.
    assert_eq!(set(false).await, json!({ "revoked": false }));
    let (s, _) = token_status().await;
    assert_eq!(s, StatusCode::OK);
    let r = api.content(&guid, &key).send().await.expect("content");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_of(r).await.len() as u64, len);
}
