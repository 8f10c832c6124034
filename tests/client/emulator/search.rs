//! Search: paging (v3 continuation, v2 pages), validation, filters, the end bound,
//! and `GET /interactions/{guid}`.
use super::*;

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
