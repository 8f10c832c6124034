//! In-process tests, one binary: the emulator, the API client and the read path
//! against an emulator over loopback HTTP (no FUSE). Each test starts its own
//! emulator on an ephemeral port.

mod api;
mod emulator;
mod prefetch;
