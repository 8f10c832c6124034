//! The token endpoint, bearer scopes and api-versions, token expiry, and a revoked
//! client (api.md §2, §6).
use super::*;

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
