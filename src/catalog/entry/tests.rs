//! Compact entries: byte-exact round trips, one file entry per version in use,
//! shared strings.

use super::*;
use time::macros::datetime;

fn catalog() -> Catalog {
    Catalog::in_memory(
        datetime!(2026-11-19 00:00 UTC),
        datetime!(2026-11-22 00:00 UTC),
        Vec::new(),
    )
}

fn full() -> Interaction {
    serde_json::from_value(serde_json::json!({
        "guid": "2480fc2c-bbd7-427c-9439-02f76583aef5",
        "start": "2026-11-20T10:00:00.250Z",
        "connectFrom": "+14155550183",
        "connectTo": "+442038680100",
        "direction": "inbound",
        "handlingAgents": [{"id": "7990"}, {"id": "12"}],
        "someFieldWeDoNotKnow": {"kept": [1, 2]},
        "content": [
            {"contentKey": "callRecording", "type": "callRecording",
             "contentType": "audio/wav", "contentLength": 624044,
             "lastModified": "2026-11-20T10:05:19Z", "properties": {}},
            {"contentKey": "voicemail", "type": "voicemail", "contentType": "audio/wav",
             "owningAgent": {"id": "7"}, "properties": {"x": "y"}, "other": true},
            {"contentKey": "bad/key", "type": "t", "contentType": "a/b", "properties": {}},
            {"contentKey": "callRecording", "type": "dup", "contentType": "a/b", "properties": {}},
            {"contentKey": "ad76a807-3e21-41c6-992e-dc9865ffcc9d", "type": "ivrAudioRecording",
             "contentType": "audio/wav", "contentLength": 100,
             "owningInteractionPlan": { "id": "816f1144" }},
            {"contentKey": "AD76A807-3E21-41C6-992E-DC9865FFCC9D", "type": "t",
             "contentType": "a/b", "properties": {}}
        ]
    }))
    .expect("an interaction")
}

#[test]
fn a_compact_entry_gives_back_the_interaction_and_its_json_byte_for_byte() {
    let c = catalog();
    let original = full();
    let e = c.entry(original.clone());
    assert_eq!(e.interaction(), original);
    let mut want = serde_json::to_vec_pretty(&original).expect("json");
    want.push(b'\n');
    assert_eq!(&e.meta_json()[..], &want[..]);
    assert_eq!(e.meta_len(), want.len() as u64);
    let keys: Vec<String> = e.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        keys,
        [
            "callRecording",
            "voicemail",
            "ad76a807-3e21-41c6-992e-dc9865ffcc9d",
            "AD76A807-3E21-41C6-992E-DC9865FFCC9D"
        ]
    );
    assert_eq!(e.meta_mtime(), datetime!(2026-11-20 10:05:19 UTC));
}

#[test]
fn one_file_entry_per_version_in_use_and_changes_are_seen() {
    let c = catalog();
    let e = c.entry(full());
    let a = c.file(&e, "callRecording").expect("file");
    let b = c.file(&e, "callRecording").expect("file");
    assert!(
        Arc::ptr_eq(&a, &b),
        "one entry, one pin, one cache identity"
    );
    assert_eq!((a.size, a.size_known), (624_044, true));
    let v = c.file(&e, "voicemail").expect("file");
    assert_eq!((v.size, v.size_known), (0, false));
    assert!(c.file(&e, "bad/key").is_none());

    // The same listing again: nothing changed, same entries.
    let mut changed = Vec::new();
    let again = c.entry(full());
    c.changes(&e, &again, &mut changed);
    assert!(changed.is_empty(), "{changed:?}");
    assert!(Arc::ptr_eq(
        &a,
        &c.file(&again, "callRecording").expect("file")
    ));
    let g = c
        .file(&e, "ad76a807-3e21-41c6-992e-dc9865ffcc9d")
        .expect("a GUID key");
    assert_eq!(&*g.key, "ad76a807-3e21-41c6-992e-dc9865ffcc9d");
    assert_eq!(&*g.kind, "ivrAudioRecording");
    let upper = c
        .file(&e, "AD76A807-3E21-41C6-992E-DC9865FFCC9D")
        .expect("kept as spelled");
    assert_eq!(&*upper.kind, "t");

    // A new lastModified: a new version, reported once, with the old key.
    let mut newer = full();
    newer.content[0].last_modified = Some(datetime!(2026-11-20 11:00 UTC));
    let mut changed = Vec::new();
    let next = c.entry(newer);
    c.changes(&again, &next, &mut changed);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].old, a.version.id);
    let n = c.file(&next, "callRecording").expect("file");
    assert_ne!(n.version.id, a.version.id);
    assert_ne!(n.content, a.content);
}

#[test]
fn repeated_strings_are_shared() {
    let c = catalog();
    let a = c.entry(full());
    let mut other = full();
    other.guid = "3480fc2c-bbd7-427c-9439-02f76583aef5".into();
    let b = c.entry(other);
    assert!(Arc::ptr_eq(&a.files[0].names, &b.files[0].names));
    assert!(Arc::ptr_eq(&a.agents[0], &b.agents[0]));
}
