//! Content: full bodies and headers, ranges and conditionals, signed storage
//! redirects and their own validators, missing `contentLength`, `--data-dir`, big files.
use super::*;

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
