//! Synthetic interaction GUIDs: a reversible, seeded scramble of the interaction's
//! index, so `GET /interactions/{guid}` finds the index in O(1), without a table.
//!
//! The index goes through a 4-round Feistel permutation of 64 bits keyed by the seed;
//! the result and a 58-bit check derived from it fill the 122 free bits of a version-4
//! UUID. A GUID that is not one of this tenant's fails the check (or decodes to an index
//! that does not exist yet).

use super::super::record::mix;

const VERSION_MASK: u128 = 0xf << 76;
const VERSION_4: u128 = 0x4 << 76;
const VARIANT_MASK: u128 = 0x3 << 62;
const VARIANT_RFC: u128 = 0x2 << 62;
const CHECK_BITS: u32 = 58;

/// Encodes and decodes the GUIDs of one seed.
#[derive(Debug, Clone)]
pub(crate) struct GuidCodec {
    rounds: [u64; 4],
    check: u64,
}

/// Spreads 122 bits over a UUID, around its version and variant bits.
fn deposit(w: u128) -> u128 {
    let low = w & ((1 << 62) - 1);
    let mid = (w >> 62) & ((1 << 12) - 1);
    let high = w >> 74;
    low | (mid << 64) | (high << 80) | VERSION_4 | VARIANT_RFC
}

/// The 122 bits of a version-4 UUID, or `None` for another version or variant.
fn extract(u: u128) -> Option<u128> {
    if u & VERSION_MASK != VERSION_4 || u & VARIANT_MASK != VARIANT_RFC {
        return None;
    }
    let low = u & ((1 << 62) - 1);
    let mid = (u >> 64) & ((1 << 12) - 1);
    let high = u >> 80;
    Some(low | (mid << 62) | (high << 74))
}

impl GuidCodec {
    pub fn new(seed: u64) -> Self {
        let key = |n: u64| mix(seed, 0x6u64 << 60 | n);
        Self {
            rounds: [key(1), key(2), key(3), key(4)],
            check: key(5),
        }
    }

    fn round(key: u64, half: u32) -> u32 {
        (mix(key, u64::from(half)) >> 32) as u32
    }

    fn permute(&self, x: u64) -> u64 {
        let (mut l, mut r) = ((x >> 32) as u32, x as u32);
        for k in self.rounds {
            (l, r) = (r, l ^ Self::round(k, r));
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    fn unpermute(&self, x: u64) -> u64 {
        let (mut l, mut r) = ((x >> 32) as u32, x as u32);
        for k in self.rounds.iter().rev() {
            (l, r) = (r ^ Self::round(*k, l), l);
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    fn check_of(&self, x: u64) -> u128 {
        u128::from(mix(self.check, x) >> (64 - CHECK_BITS))
    }

    /// The GUID of interaction `index` (lowercase, hyphenated).
    pub fn guid(&self, index: u64) -> String {
        let x = self.permute(index);
        let u = deposit((u128::from(x) << CHECK_BITS) | self.check_of(x));
        let h = format!("{u:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// The index whose GUID is `guid` (any case), if it is one of this codec's.
    pub fn index(&self, guid: &str) -> Option<u64> {
        if !crate::model::is_guid(guid) {
            return None;
        }
        let hex: String = guid.chars().filter(|c| *c != '-').collect();
        let w = extract(u128::from_str_radix(&hex, 16).ok()?)?;
        let x = u64::try_from(w >> CHECK_BITS).ok()?;
        (w & ((1 << CHECK_BITS) - 1) == self.check_of(x)).then(|| self.unpermute(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_strangers() {
        let c = GuidCodec::new(42);
        let mut seen = std::collections::HashSet::new();
        for i in (0..2000).chain([999_999, 1 << 40, u64::MAX]) {
            let g = c.guid(i);
            assert!(crate::model::is_guid(&g), "{g}");
            assert_eq!(&g[14..15], "4", "version 4: {g}");
            assert!("89ab".contains(&g[19..20]), "RFC variant: {g}");
            assert_eq!(c.index(&g), Some(i));
            assert_eq!(c.index(&g.to_ascii_uppercase()), Some(i));
            assert!(seen.insert(g));
        }
        assert_eq!(GuidCodec::new(43).index(&c.guid(5)), None);
        for stranger in [
            "00000000-0000-4000-8000-000000000000",
            "2480fc2c-bbd7-427c-9439-02f76583aef5",
            "not a guid",
        ] {
            assert_eq!(c.index(stranger), None, "{stranger}");
        }
        // One flipped digit fails the check.
        let g = c.guid(7);
        let flipped = format!("{}{}", if &g[..1] == "0" { "1" } else { "0" }, &g[1..]);
        assert_eq!(c.index(&flipped), None);
    }
}
