//! How many heap bytes a listed interaction costs (tests only).
//!
//! A counting allocator keeps, per thread, the bytes live and the number of
//! allocations; the test builds a catalog of interactions shaped like the
//! emulator's (and a real tenant's: 1–8 content items, some keyed by a GUID, 1–3
//! agents, phone numbers) and checks what stays allocated per interaction once the
//! parsed listing is gone. The budget is 1 KiB of RSS per interaction, all
//! included; the heap's share is held well under it, so the allocator's slack, the
//! index's growth and the rest of the daemon fit in what is left.
//!
//! Invariant: the counters are per thread, so tests running side by side on other
//! threads do not disturb a measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use time::macros::datetime;

use super::Catalog;
use crate::model::Interaction;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static COUNT: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize, count: isize) {
    // `try_with`: a thread being torn down has no counters any more.
    let _ = LIVE.try_with(|c| c.set(c.get() + bytes));
    let _ = COUNT.try_with(|c| c.set(c.get() + count));
}

// SAFETY: every call is passed to `System` unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add(l.size() as isize, 1);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        add(-(l.size() as isize), -1);
        System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        add(l.size() as isize, 1);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        add(new as isize - l.size() as isize, 0);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn live() -> (isize, isize) {
    (LIVE.with(Cell::get), COUNT.with(Cell::get))
}

/// A small deterministic generator (no allocation, no global state).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xbf58476d1ce4e5b9) ^ (x >> 32)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn guid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

/// `n` interactions shaped like the emulator's, one every 2 seconds from `start`.
pub(crate) fn tenant(n: usize, seed: u64) -> Vec<Interaction> {
    const KINDS: [(&str, &str, bool); 8] = [
        ("callRecording", "audio/wav", false),
        ("transcript", "application/json", false),
        ("categorizationResult", "application/json", false),
        ("sentimentSummary", "application/json", false),
        ("conversationSummary", "application/json", true),
        ("interactionLog", "application/json", true),
        ("screenRecording", "video/webm", false),
        ("voicemail", "audio/wav", false),
    ];
    let mut r = Rng(seed);
    let t0 = datetime!(2026-11-20 00:00 UTC).unix_timestamp();
    (0..n)
        .map(|i| {
            let start = t0 + 2 * i as i64;
            let files = 1 + r.below(6) as usize;
            let content: Vec<serde_json::Value> = KINDS
                .iter()
                .take(files)
                .map(|&(kind, ct, guid_key)| {
                    let key = if guid_key { r.guid() } else { kind.to_string() };
                    let lm = start + 60 + r.below(600) as i64;
                    serde_json::json!({
                        "contentKey": key, "type": kind, "contentType": ct,
                        "contentLength": 400 + r.below(2_000_000),
                        "lastModified": crate::util::format_rfc3339(
                            time::OffsetDateTime::from_unix_timestamp(lm).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)),
                        "properties": {}
                    })
                })
                .collect();
            let agents: Vec<serde_json::Value> = (0..1 + r.below(3))
                .map(|_| serde_json::json!({"id": (1000 + r.below(4000)).to_string()}))
                .collect();
            let inbound = r.below(2) == 0;
            let caller = format!("+4477009{:05}", r.below(100_000));
            let us = format!("+4420386802{:02}", r.below(10));
            let (from, to) = if inbound { (caller, us) } else { (us, caller) };
            serde_json::from_value(serde_json::json!({
                "guid": r.guid(),
                "start": crate::util::format_rfc3339(
                    time::OffsetDateTime::from_unix_timestamp(start).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)),
                "connectFrom": from, "connectTo": to,
                "direction": if inbound { "inbound" } else { "outbound" },
                "handlingAgents": agents,
                "content": content,
            }))
            .expect("an interaction")
        })
        .collect()
}

#[test]
fn a_listed_interaction_costs_a_few_hundred_heap_bytes() {
    const N: usize = 40_000;
    let (from, to) = (
        datetime!(2026-11-19 00:00 UTC),
        datetime!(2026-11-22 00:00 UTC),
    );
    let (bytes0, count0) = live();
    let items = tenant(N, 7);
    let (bytes1, count1) = live();
    let parsed = (bytes1 - bytes0) as f64 / N as f64;
    let catalog = Catalog::in_memory(from, to, Vec::new());
    let (bytes2, count2) = live();
    catalog.apply(items);
    let (bytes3, count3) = live();
    assert_eq!(catalog.listed_len(), N);
    // The parsed items were freed by `apply`: add them back.
    let per = (bytes3 - bytes2 + (bytes1 - bytes0)) as f64 / N as f64;
    let allocs = (count3 - count2 + (count1 - count0)) as f64 / N as f64;
    eprintln!(
        "parsed: {parsed:.0} bytes per interaction; catalog: {} bytes empty, {per:.0} heap \
         bytes per listed interaction",
        bytes2 - bytes1
    );
    // Measured: 478 bytes (616 before GUIDs were 16 bytes and content keys that are
    // GUIDs stopped being interned).
    assert!(
        per < 560.0,
        "per interaction: {per:.0} bytes, {allocs:.1} allocations"
    );
    // The memory budget's estimate (`resident.rs`) follows what is allocated.
    let estimated = catalog.memory().bytes as f64 / N as f64;
    eprintln!("estimated by the budget: {estimated:.0} bytes per interaction");
    assert!(
        (0.8..1.25).contains(&(estimated / per)),
        "estimated {estimated:.0} bytes per interaction, allocated {per:.0}"
    );
}
