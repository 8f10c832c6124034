//! fs (being written).
