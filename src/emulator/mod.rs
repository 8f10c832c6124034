//! The API emulator (being written).
pub mod media;
