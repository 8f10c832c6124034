use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::json;
use time::macros::{date, datetime};

use super::*;
use crate::catalog::Change;
use crate::model::Interaction;

const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const C: &str = "cccccccc-0000-4000-8000-000000000003";

fn call(guid: &str, start: &str, agent: Option<&str>, from: &str) -> Interaction {
    let agents: Vec<_> = agent.iter().map(|a| json!({ "id": a })).collect();
    serde_json::from_value(json!({
        "guid": guid,
        "start": start,
        "connectFrom": from,
        "connectTo": "+442038680100",
        "direction": "outbound",
        "handlingAgents": agents,
        "content": [
            {"contentKey": "callRecording", "type": "callRecording", "contentType": "audio/wav",
             "contentLength": 10, "lastModified": "2026-11-20T11:00:00Z"},
            {"contentKey": "transcript", "type": "transcript", "contentType": "application/json",
             "contentLength": 10, "lastModified": "2026-11-20T11:00:00Z"}
        ]
    }))
    .expect("interaction")
}

fn catalog(items: Vec<Interaction>) -> Arc<Catalog> {
    Arc::new(Catalog::in_memory(
        datetime!(2026-11-19 00:00 UTC),
        datetime!(2026-11-22 00:00 UTC),
        items,
    ))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn names(v: &DayView) -> Vec<String> {
    v.calls().iter().map(|c| c.name.to_string()).collect()
}

#[test]
fn a_day_view_names_its_calls_and_indexes_agents_and_numbers() {
    let c = catalog(vec![
        call(B, "2026-11-20T10:00:00Z", Some("7"), "+111"),
        call(A, "2026-11-20T09:00:00Z", None, "+222"),
        call(C, "2026-11-21T09:00:00Z", Some("8"), "+111"),
    ]);
    let v = rt()
        .block_on(c.day_view(date!(2026 - 11 - 20)))
        .expect("view");
    assert_eq!(
        names(&v),
        [
            "09-00-00_outbound_+222_+442038680100_-_aaaaaaaa",
            "10-00-00_outbound_+111_+442038680100_7_bbbbbbbb",
        ]
    );
    let b = v
        .get("10-00-00_outbound_+111_+442038680100_7_bbbbbbbb")
        .expect("by name");
    assert_eq!(&*b.entry.guid(), B);
    assert!(v.get("nope").is_none());
    assert_eq!(v.facet_keys(Facet::Agent).collect::<Vec<_>>(), ["7"]);
    assert_eq!(
        v.facet_keys(Facet::Number).collect::<Vec<_>>(),
        ["+111", "+222", "+442038680100"]
    );
    assert_eq!(v.facet(Facet::Number, "+442038680100").count(), 2);
    assert!(!v.has(Facet::Agent, "8"), "another day's agent");
    assert_eq!(
        files_of(&b.entry),
        [
            ("callRecording.wav".to_string(), "callRecording".to_string()),
            ("transcript.json".to_string(), "transcript".to_string()),
        ]
    );
    // Built once, kept.
    assert!(Arc::ptr_eq(
        &v,
        &c.cached_view(date!(2026 - 11 - 20)).expect("cached")
    ));
    assert!(c.cached_view(date!(2026 - 11 - 21)).is_none(), "lazy");
}

#[test]
fn colliding_names_are_numbered_by_start_then_guid() {
    let items = vec![
        call(C, "2026-11-20T09:00:00Z", Some("7"), "+1"),
        call(B, "2026-11-20T08:00:00Z", Some("7"), "+1"),
        call(A, "2026-11-20T09:00:00Z", Some("7"), "+1"),
    ];
    let c = catalog(items);
    c.set_calls_name(Template::parse("{date}_{agent}").expect("template"));
    let v = rt()
        .block_on(c.day_view(date!(2026 - 11 - 20)))
        .expect("view");
    let got: Vec<(String, String)> = v
        .calls()
        .iter()
        .map(|c| (c.name.to_string(), c.entry.guid().to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("2026-11-20_7".to_string(), B.to_string()),
            ("2026-11-20_7~2".to_string(), A.to_string()),
            ("2026-11-20_7~3".to_string(), C.to_string()),
        ]
    );
}

#[test]
fn a_relist_that_renames_tells_the_kernel_and_erasure_leaves_every_view() {
    let day = date!(2026 - 11 - 20);
    let mut items = vec![
        call(A, "2026-11-20T09:00:00Z", Some("7"), "+1"),
        call(B, "2026-11-20T09:00:00Z", Some("7"), "+1"),
    ];
    let c = catalog(items.clone());
    c.set_calls_name(Template::parse("{agent}").expect("template"));
    let sent: Arc<Mutex<Vec<Change>>> = Arc::default();
    let s = Arc::clone(&sent);
    c.on_change(move |ch| s.lock().push(ch));
    let rt = rt();
    let v = rt.block_on(c.day_view(day)).expect("view");
    assert_eq!(names(&v), ["7", "7~2"]);

    // A's agent changes: B becomes `7`, A `8`; both old names are forgotten.
    items[0] = call(A, "2026-11-20T09:00:00Z", Some("8"), "+1");
    c.recheck(items.clone());
    let v = c.cached_view(day).expect("rebuilt");
    assert_eq!(names(&v), ["8", "7"]);
    let entries: Vec<(u64, String)> = sent
        .lock()
        .iter()
        .filter_map(|ch| match ch {
            Change::Entry { parent, name } => Some((*parent, name.clone())),
            _ => None,
        })
        .collect();
    for want in [
        (ino::calls_day(day), "7".to_string()),
        (ino::calls_day(day), "7~2".to_string()),
        (ino::facet_day(Facet::Agent, "7", day), "7".to_string()),
        (ino::facet_day(Facet::Agent, "7", day), "7~2".to_string()),
    ] {
        assert!(entries.contains(&want), "{want:?} not in {entries:?}");
    }
    assert!(sent
        .lock()
        .iter()
        .any(|ch| matches!(ch, Change::Invalidate(i) if *i == ino::BY_AGENT)));

    // Erased: out of the view, and its names are in what the kernel must forget.
    let forgotten = rt.block_on(c.forget(B, None));
    assert_eq!(names(&c.cached_view(day).expect("view")), ["8"]);
    for want in [
        (ino::calls_day(day), "7".to_string()),
        (ino::facet_day(Facet::Agent, "7", day), "7".to_string()),
        (ino::facet_day(Facet::Number, "+1", day), "7".to_string()),
        (ino::call(B), "callRecording.wav".to_string()),
        (ino::call(B), CALL_META.to_string()),
    ] {
        assert!(
            forgotten.entries.contains(&want),
            "{want:?} not in {:?}",
            forgotten.entries
        );
    }
    assert!(forgotten.inos.contains(&ino::call(B)));
}

#[test]
fn a_changed_file_list_renames_inside_the_call() {
    let day = date!(2026 - 11 - 20);
    let mut one = call(A, "2026-11-20T09:00:00Z", Some("7"), "+1");
    let c = catalog(vec![one.clone()]);
    let rt = rt();
    rt.block_on(c.day_view(day)).expect("view");
    let mut second = one.content[1].clone();
    second.content_key = "transcript2".into();
    one.content.push(second);
    let (inos, entries) = diff(
        day,
        &c.cached_view(day).expect("view"),
        &DayView::build(&Template::default(), vec![Arc::new(c.entry(one))]),
    );
    assert!(inos.contains(&ino::call(A)));
    assert_eq!(entries, [(ino::call(A), "transcript.json".to_string())]);
}
