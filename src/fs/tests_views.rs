//! The views (`calls/`, `by-agent/`, `by-number/`) through the operations.

use fuser::FileType;

use super::errno::FsError;
use super::tests::{Rig, GUIDS};
use crate::catalog::ino;

#[test]
fn calls_are_the_same_inodes_under_their_names() {
    let rig = Rig::mock();
    let calls = rig.lookup(ino::ROOT, "calls").expect("calls");
    assert_eq!(calls.attr.ino.0, ino::CALLS);
    let day = rig.lookup(ino::CALLS, "2026-11-20").expect("a day");
    let names = rig.names(day.attr.ino.0, 0);
    assert_eq!(
        names,
        [
            ".",
            "..",
            "10-00-00_inbound_-_-_-_10000000",
            "10-01-00_inbound_-_-_-_10000000",
            "10-02-00_inbound_-_-_-_10000000",
        ]
    );
    let call = rig.lookup(day.attr.ino.0, &names[3]).expect("a call");
    assert_eq!(call.attr.kind, FileType::Directory);
    assert_eq!(call.attr.ino.0, ino::call(GUIDS[1]));
    assert_eq!(
        rig.names(call.attr.ino.0, 0),
        [
            ".",
            "..",
            "interaction.json",
            "CALL_RECORDING.wav",
            "TRANSCRIPT.json"
        ]
    );
    let wav = rig
        .lookup(call.attr.ino.0, "CALL_RECORDING.wav")
        .expect("file");
    assert_eq!(wav.attr.ino.0, rig.file_ino(GUIDS[1], "callRecording"));
    assert_eq!(wav.attr.nlink, 2);
    let meta = rig
        .lookup(call.attr.ino.0, "interaction.json")
        .expect("meta");
    assert_eq!(meta.attr.ino.0, ino::meta(GUIDS[1]));
    assert!(matches!(
        rig.lookup(call.attr.ino.0, "callRecording"),
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        rig.lookup(day.attr.ino.0, "nope"),
        Err(FsError::NotFound)
    ));
    // No agents, no numbers: empty views, and unknown keys are not there.
    assert_eq!(rig.names(ino::BY_AGENT, 0), [".", ".."]);
    assert!(matches!(
        rig.lookup(ino::BY_NUMBER, "+1"),
        Err(FsError::NotFound)
    ));
}
