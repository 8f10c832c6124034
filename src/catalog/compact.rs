//! Compact values of the listing: GUIDs in 16 bytes, short strings without an
//! allocation of their own.
//!
//! A million listed interactions are a million GUIDs (each interaction's, and those
//! that key content items such as conversation summaries), phone numbers and
//! directions. Kept as `String`s they would be most of the catalog; here a GUID is
//! its 16 bytes and a phone number lives inside the entry.
//!
//! Invariants:
//! - the text of a value is exactly the string it was made from: a GUID is kept as
//!   16 bytes only when it is spelled canonically (lowercase 8-4-4-4-12, see
//!   [`crate::model::guid_bytes`]), which its 16 bytes spell back byte for byte; any
//!   other spelling is kept as given;
//! - two GUIDs are equal exactly when their strings are (a canonical string is
//!   always kept as bytes, another never is).

use std::fmt;
use std::ops::Deref;

use crate::model::{guid_bytes, guid_text};

/// An interaction's (or a content item's) GUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Guid {
    /// Spelled canonically: its 16 bytes.
    Bytes([u8; 16]),
    /// Any other spelling, as given.
    Other(Box<str>),
}

impl Guid {
    pub fn new(s: &str) -> Guid {
        match guid_bytes(s) {
            Some(b) => Guid::Bytes(b),
            None => Guid::Other(s.into()),
        }
    }

    /// The string it was made from.
    pub fn text(&self) -> Spelled<'_> {
        match self {
            Guid::Bytes(b) => Spelled::Guid(guid_text(b)),
            Guid::Other(s) => Spelled::Str(s),
        }
    }
}

/// A string that may be spelled from 16 GUID bytes: derefs to `str`.
#[derive(Clone, Copy)]
pub enum Spelled<'a> {
    Guid([u8; 36]),
    Str(&'a str),
}

impl Deref for Spelled<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            // Always ASCII hex and dashes (`guid_text`).
            Spelled::Guid(b) => std::str::from_utf8(b).unwrap_or_default(),
            Spelled::Str(s) => s,
        }
    }
}

impl fmt::Display for Spelled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for Spelled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for Spelled<'_> {
    fn eq(&self, other: &Spelled<'_>) -> bool {
        **self == **other
    }
}

impl PartialEq<str> for Spelled<'_> {
    fn eq(&self, other: &str) -> bool {
        **self == *other
    }
}

/// Longest string kept inside a [`Text`].
const INLINE: usize = 22;

/// A string of up to 22 bytes kept inline (a phone number, a direction), a longer
/// one on the heap: 24 bytes either way.
#[derive(Clone, PartialEq, Eq)]
pub enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    pub fn new(s: &str) -> Text {
        let b = s.as_bytes();
        if b.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..b.len()].copy_from_slice(b);
            Text::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Text::Heap(s.into())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Whole bytes of a `str`, copied: always UTF-8.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(s) => s,
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_spell_back_what_they_were_made_from() {
        for s in [
            "2480fc2c-bbd7-427c-9439-02f76583aef5",
            "2480FC2C-BBD7-427C-9439-02F76583AEF5",
            "not-a-guid",
            "",
        ] {
            assert_eq!(&*Guid::new(s).text(), s);
        }
        assert!(matches!(
            Guid::new("2480fc2c-bbd7-427c-9439-02f76583aef5"),
            Guid::Bytes(_)
        ));
        assert_ne!(
            Guid::new("2480FC2C-BBD7-427C-9439-02F76583AEF5"),
            Guid::new("2480fc2c-bbd7-427c-9439-02f76583aef5")
        );
        for s in [
            "",
            "+442038680100",
            "ünïcödé",
            "a string longer than twenty-two bytes",
        ] {
            assert_eq!(Text::new(s).as_str(), s);
        }
        assert_eq!(std::mem::size_of::<Option<Text>>(), 24);
        assert_eq!(std::mem::size_of::<Guid>(), 24);
    }
}
