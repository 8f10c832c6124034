//! The locks of the protocols that are model-checked (issue 26): the cache's
//! single-flight (`cache`), passthrough's decide/release (`fs::passthrough`) and the
//! catalog's day listing (`catalog`, its views included). Those modules take their `Mutex`, `RwLock` and
//! atomics from here, never from `parking_lot` or `std` directly.
//!
//! Invariants:
//! - **Normal builds are unchanged.** Without the `shuttle` feature (and in every
//!   non-test build, with it too) these are plain re-exports of `parking_lot`'s locks
//!   and `std`'s atomics: same types, same code, same speed.
//! - **Test builds with `--features shuttle`** get shuttle's locks and atomics, each a
//!   point where shuttle's scheduler may switch threads, wrapped to `parking_lot`'s API
//!   (`lock()`, `read()`, `write()` return the guard: there is no poisoning to unwrap
//!   at call sites; a lock poisoned by a panic is taken anyway, as `parking_lot` does).
//!   Shuttle refuses a thread that takes a lock it already holds — a recursive
//!   `read()` included — which is stricter than `parking_lot` (whose writer-fair
//!   `RwLock` deadlocks on a recursive read only once a writer queues between the
//!   two reads): the deadlock that once reached CI fails on its first run here.
//! - In that build **only the shuttle tests can run** (`cargo test --features shuttle
//!   --lib shuttle`): shuttle's locks panic outside a shuttle execution.

#[cfg(not(all(feature = "shuttle", test)))]
pub use parking_lot::{Mutex, MutexGuard, RwLock};
#[cfg(not(all(feature = "shuttle", test)))]
pub use std::sync::atomic::{AtomicBool, AtomicU64};

#[cfg(all(feature = "shuttle", test))]
pub use model::{AtomicBool, AtomicU64, Mutex, MutexGuard, RwLock};

/// Shuttle's locks with `parking_lot`'s API.
#[cfg(all(feature = "shuttle", test))]
mod model {
    use std::sync::PoisonError;

    pub use shuttle::sync::atomic::{AtomicBool, AtomicU64};
    pub use shuttle::sync::{MutexGuard, RwLockReadGuard, RwLockWriteGuard};

    #[derive(Debug, Default)]
    pub struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub fn new(value: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(value))
        }

        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }

        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
        }
    }

    #[derive(Debug, Default)]
    pub struct RwLock<T>(shuttle::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub fn new(value: T) -> Self {
            RwLock(shuttle::sync::RwLock::new(value))
        }

        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

/// How many schedules each shuttle test explores: `SHUTTLE_ITERATIONS`, else `default`.
#[cfg(all(feature = "shuttle", test))]
pub fn iterations(default: usize) -> usize {
    std::env::var("SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
