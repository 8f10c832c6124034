use std::collections::BTreeSet;

use super::*;
use crate::emulator::tenant::Tenant;

const ANCHOR: i64 = 1_700_002_800;

fn ts(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("ts")
}

fn spec(n: usize) -> SyntheticSpec {
    SyntheticSpec {
        seed: 42,
        interactions: n,
        days: 30,
        big_file_mib: Some(2),
        long_call_secs: None,
        anchor: ts(ANCHOR),
        until: Until::Fixed,
    }
}

#[test]
fn deterministic_and_complete() {
    let a = Tenant::synthetic(&spec(300));
    let b = Tenant::synthetic(&spec(300));
    assert_eq!(a.len(), 300);
    assert_eq!(
        serde_json::to_string(&a.interactions()).ok(),
        serde_json::to_string(&b.interactions()).ok()
    );
    let kinds: BTreeSet<String> = a
        .interactions()
        .iter()
        .flat_map(|i| i.content.iter().map(|c| c.kind.clone()))
        .collect();
    for k in [
        "callRecording",
        "transcript",
        "categorizationResult",
        "sentimentSummary",
        "voicemail",
        "ivrAudioRecording",
        "screenRecording",
        "videoRecording",
        "conversationSummary",
        "interactionLog",
        "attachment",
        "chatTranscript",
    ] {
        assert!(kinds.contains(k), "missing {k}");
    }
    let old_vm = a
        .interactions()
        .iter()
        .flat_map(|i| i.content.clone())
        .any(|c| c.content_key.starts_with("voicemail-") && c.owning_agent.is_some());
    assert!(old_vm);
}

#[test]
fn lengths_match_bodies_and_times_precede_anchor() {
    let t = Tenant::synthetic(&spec(40));
    let all = t.interactions();
    assert_eq!(all.len(), 40);
    let keys: Vec<(OffsetDateTime, String)> =
        all.iter().map(|i| (i.start, i.guid.clone())).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "(start, guid) order");
    for i in &all {
        assert!(i.start < t.anchor());
        assert!(i.start >= t.anchor() - time::Duration::days(30));
        assert!(crate::model::is_guid(&i.guid));
        assert_eq!(i.start.nanosecond(), 0);
        assert_eq!(t.interaction(&i.guid).as_ref(), Some(i), "lookup = listing");
        for c in &i.content {
            let bytes = t.bytes(&i.guid, &c.content_key).expect("bytes");
            assert_eq!(Some(bytes.len() as u64), c.content_length);
            assert!(c.last_modified.expect("lm") > i.start);
        }
    }
    let (g, k) = t.big_file().expect("big file");
    assert_eq!(
        t.item(&g, &k).and_then(|c| c.content_length),
        Some(2 * 1024 * 1024)
    );
    let newest_call = all
        .into_iter()
        .filter(|i| i.content.iter().any(|c| c.kind == "callRecording"))
        .max_by_key(|i| i.start)
        .expect("a call");
    assert_eq!(newest_call.guid, g);
}

#[test]
fn a_million_is_built_on_demand() {
    let mut s = spec(1_000_000);
    s.big_file_mib = None;
    let t = Tenant::synthetic(&s);
    assert_eq!(t.len(), 1_000_000);
    assert_eq!(t.records_built(), 0, "nothing built at start");
    // One hour of the middle: exactly its interactions are built.
    let from = ts(ANCHOR) - time::Duration::days(15);
    let to = from + time::Duration::hours(1);
    let hour = t.interactions_between(from, to);
    assert!(!hour.is_empty());
    assert!(hour.iter().all(|i| i.start >= from && i.start < to));
    let built = t.records_built();
    assert!(
        built >= hour.len() as u64 && built <= hour.len() as u64 + 5,
        "{built} records for {} interactions",
        hour.len()
    );
    // Neighbours just outside the hour exist, so the hour's set is exact.
    let before = t.interactions_between(from - time::Duration::minutes(30), from);
    let after = t.interactions_between(to, to + time::Duration::minutes(30));
    assert!(!before.is_empty() && !after.is_empty());
    // A lookup from the middle builds one record.
    let mid = &hour[hour.len() / 2];
    let built = t.records_built();
    assert_eq!(
        t.interaction(&mid.guid.to_ascii_uppercase()).as_ref(),
        Some(mid)
    );
    assert_eq!(t.records_built(), built + 1);
    assert!(t
        .interaction("00000000-0000-4000-8000-000000000000")
        .is_none());
}

#[test]
fn rolling_tenant_grows_at_the_same_rate() {
    let mut s = spec(3000);
    s.big_file_mib = None;
    let now = ANCHOR + 2 * 86_400 + 1234;
    s.until = Until::At(ts(now));
    let t = Tenant::synthetic(&s);
    // Two more days at 100 a day.
    let n = t.len();
    assert!((3150..=3250).contains(&n), "{n}");
    let all = t.interactions();
    assert_eq!(all.len(), n);
    assert!(all.iter().all(|i| i.start <= ts(now)));
    let newer: Vec<_> = all.iter().filter(|i| i.start >= ts(ANCHOR)).collect();
    assert_eq!(newer.len(), n - 3000);
    // The next one has not started: it is not served, even by GUID.
    let frozen = Synthetic::new(&s);
    let next = frozen.codec.guid(n as u64);
    assert!(frozen.timeline.start(n as u64) > now);
    assert!(t.interaction(&next).is_none());
    // Same flags, a later now: the same interactions, and more.
    s.until = Until::At(ts(now + 86_400));
    let later = Tenant::synthetic(&s);
    assert!(later.len() > n);
    assert_eq!(
        later.interactions_between(ts(ANCHOR), ts(now + 1)),
        t.interactions_between(ts(ANCHOR), ts(now + 1))
    );
}

#[test]
fn shared_seconds_are_walked_in_guid_order() {
    // 20,000 calls in a day: many share a second.
    let s = SyntheticSpec {
        interactions: 20_000,
        days: 1,
        big_file_mib: None,
        long_call_secs: None,
        ..spec(0)
    };
    let t = Synthetic::new(&s);
    let from = ts(ANCHOR - 86_400);
    let until = ts(ANCHOR);
    let keys: Vec<(OffsetDateTime, String)> = t
        .scan(&ScanFrom::Start(from), until)
        .map(|r| (r.start, r.guid))
        .collect();
    assert_eq!(keys.len(), 20_000);
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "(start, guid) order");
    let shared = keys.windows(2).filter(|w| w[0].0 == w[1].0).count();
    assert!(shared > 100, "{shared}");
    // Resuming after any position gives the rest.
    for k in [0, 1, 777, 12_345, 19_998] {
        let (start, guid) = &keys[k];
        let rest: Vec<(OffsetDateTime, String)> = t
            .scan(&ScanFrom::After(*start, guid), until)
            .map(|r| (r.start, r.guid))
            .collect();
        assert_eq!(rest, keys[k + 1..], "after {k}");
    }
}
