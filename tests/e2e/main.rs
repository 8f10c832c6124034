//! End-to-end tests, one binary: real `vccfs` processes (emulator, mount) and real
//! programs on a real FUSE mount. Each test starts its own emulator on an ephemeral
//! port and mounts on its own temporary directory.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod audit;
mod catalog_memory;
mod cli;
mod doctor;
mod erase;
mod erase_fleet;
mod faults;
mod fleet;
mod floors;
mod hostile;
mod lifecycle;
mod mount;
mod operate;
mod paths;
mod persist;
mod revoke;
mod scale;
mod sealed;
mod versions;
mod views;
