//! Stable inode numbers: a hash of what the node is, identical across remounts.
//!
//! Every number is FNV-1a of a kind tag (`interaction`, `file`, `call`, `by-agent`,
//! ...) and what the node names, so nodes of different kinds never share a formula;
//! the fixed directories sit below [`RESERVED`], which no hash returns. A collision
//! (two names, one number) is left to the node table: the first node keeps the number.
//! The views' files are the very inodes of `interactions/` (`file`, `meta`): one
//! inode, two names.

use time::Date;

use super::views::Facet;

/// Root of the mount (FUSE's fixed root inode).
pub const ROOT: u64 = 1;
/// `/interactions`.
pub const INTERACTIONS: u64 = 2;
/// `/by-date`.
pub const BY_DATE: u64 = 3;
/// `/calls`.
pub const CALLS: u64 = 4;
/// `/by-agent`.
pub const BY_AGENT: u64 = 5;
/// `/by-number`.
pub const BY_NUMBER: u64 = 6;
const RESERVED: u64 = 16;

/// FNV-1a, 64-bit: stable across Rust releases and platforms (unlike `DefaultHasher`).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Keep clear of the reserved range and of the sign bit (some tools print inodes signed).
    let h = h & 0x7fff_ffff_ffff_ffff;
    if h < RESERVED {
        h + RESERVED
    } else {
        h
    }
}

pub fn interaction(guid: &str) -> u64 {
    fnv1a(&[b"interaction", guid.as_bytes()])
}

pub fn meta(guid: &str) -> u64 {
    fnv1a(&[b"meta", guid.as_bytes()])
}

pub fn file(guid: &str, key: &str) -> u64 {
    fnv1a(&[b"file", guid.as_bytes(), key.as_bytes()])
}

pub fn day(d: Date) -> u64 {
    fnv1a(&[b"day", d.to_string().as_bytes()])
}

pub fn link(d: Date, guid: &str) -> u64 {
    fnv1a(&[b"link", d.to_string().as_bytes(), guid.as_bytes()])
}

/// `/calls/<day>`.
pub fn calls_day(d: Date) -> u64 {
    fnv1a(&[b"calls-day", d.to_string().as_bytes()])
}

/// `/calls/<day>/<name>`: named by its guid (a rename keeps the inode).
pub fn call(guid: &str) -> u64 {
    fnv1a(&[b"call", guid.as_bytes()])
}

/// `/by-agent/<id>` or `/by-number/<n>`.
pub fn facet(f: Facet, key: &str) -> u64 {
    fnv1a(&[f.tag().as_bytes(), key.as_bytes()])
}

/// `/by-agent/<id>/<day>` or `/by-number/<n>/<day>`.
pub fn facet_day(f: Facet, key: &str, d: Date) -> u64 {
    fnv1a(&[
        f.tag().as_bytes(),
        b"day",
        key.as_bytes(),
        d.to_string().as_bytes(),
    ])
}

/// The symlink `/by-agent/<id>/<day>/<name>` (or by-number) to the call of `guid`.
pub fn facet_link(f: Facet, key: &str, d: Date, guid: &str) -> u64 {
    let tag = f.tag().as_bytes();
    fnv1a(&[
        tag,
        b"link",
        key.as_bytes(),
        d.to_string().as_bytes(),
        guid.as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        let g = "2480fc2c-bbd7-427c-9439-02f76583aef5";
        let d = time::macros::date!(2020 - 02 - 16);
        // Pinned: inode numbers must never change between releases (values computed
        // once from this code; a change of the hash or of a prefix breaks them).
        assert_eq!(interaction(g), 4_141_979_186_028_786_645);
        assert_eq!(meta(g), 6_507_983_534_658_666_310);
        assert_eq!(file(g, "callRecording"), 3_834_280_985_371_279_557);
        assert_eq!(file(g, "transcript"), 4_888_167_132_781_209_572);
        assert_eq!(day(d), 1_241_821_787_666_072_510);
        assert_eq!(link(d, g), 1_769_374_233_249_100_987);
        assert_eq!(fnv1a(&[b"x"]), 644_517_256_638_675_560);
        assert!(interaction(g) > BY_DATE);
        assert_eq!(call(g), 1_897_018_985_610_228_427);
        assert_eq!(calls_day(d), 2_924_422_974_463_851_226);
        let all = [
            interaction(g),
            call(g),
            calls_day(d),
            day(d),
            facet(Facet::Agent, "7"),
            facet(Facet::Number, "7"),
            facet_day(Facet::Agent, "7", d),
            facet_day(Facet::Number, "7", d),
            facet_link(Facet::Agent, "7", d, g),
            facet_link(Facet::Number, "7", d, g),
        ];
        let distinct: std::collections::BTreeSet<u64> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len());
        assert!(all.iter().all(|&i| i >= RESERVED));
    }
}
