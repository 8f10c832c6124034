//! Counters, rate limit and fault switches, and the control routes (mutate, down,
//! delete, validation); media that ffprobe accepts; a tenant of a million built on
//! demand, and new interactions arriving.
use super::*;

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
