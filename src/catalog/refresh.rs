//! Periodic re-listing: every `every`, [`Catalog::refresh`] the window, log what changed,
//! and hand each changed inode (files with a new version, directories whose entries
//! changed) and each changed or vanished content version to the caller's `on_change`. The catalog knows nothing of FUSE: what
//! invalidating means (dropping the kernel's cached pages, attributes and listings) is
//! the mount's business.
//!
//! Invariants: `on_change` is called on a runtime worker, so it must not block (the mount
//! passes each inode on to a thread of its own); a failed re-list keeps the old listing
//! and is tried again one period later; the first re-list comes after `first` (a catalog
//! opened from its saved days is re-listed at once), else one period after start.

use std::sync::Arc;
use std::time::Duration;

use super::Catalog;
use crate::version::ContentKey;

/// What a re-list asks of the layers that cache content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Drop what the kernel caches of this inode (pages, attributes, listing).
    Invalidate(u64),
    /// Drop what the tiers keep of this content version.
    Purge(ContentKey),
}

/// Re-list `catalog` after `first` (if given), then every `every` (if given), on `rt`,
/// telling `on_change` what changed, until the task is aborted or the runtime ends.
pub fn spawn_refresher(
    rt: &tokio::runtime::Handle,
    catalog: Arc<Catalog>,
    first: Option<Duration>,
    every: Option<Duration>,
    on_change: impl Fn(Change) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let mut wait = first.or(every);
        while let Some(delay) = wait {
            tokio::time::sleep(delay).await;
            wait = every;
            match catalog.refresh().await {
                Ok(r) => {
                    if !r.files.is_empty() || !r.dirs.is_empty() {
                        tracing::info!(
                            files = r.files.len(),
                            dirs = r.dirs.len(),
                            "the listing changed"
                        );
                    }
                    for ino in r.files.iter().map(|f| f.ino).chain(r.dirs) {
                        on_change(Change::Invalidate(ino));
                    }
                    for key in r.purged {
                        on_change(Change::Purge(key));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "re-listing failed; keeping the old listing")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiClient, ApiConfig, Credentials};
    use crate::emulator::{self, EmulatorArgs};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changed_file_is_invalidated() {
        let emu = emulator::start(EmulatorArgs {
            listen: "127.0.0.1:0".parse().expect("addr"),
            interactions: 3,
            ..EmulatorArgs::default()
        })
        .await
        .expect("start the emulator");
        let credentials = Credentials {
            client_id: emu.client_id().to_string(),
            client_secret: emu.client_secret().to_string(),
        };
        let api = ApiConfig::new(&emu.api_url, &emu.auth_url, credentials).expect("config");
        let client = ApiClient::new(api).expect("client");
        let now = crate::util::now_secs();
        let (catalog, _) = Catalog::open(
            client,
            now - time::Duration::days(31),
            now + time::Duration::minutes(1),
            None,
        )
        .await
        .expect("list");
        let catalog = Arc::new(catalog);
        let entry = catalog.listed().first().cloned().expect("an interaction");
        let file = entry.files().next().cloned().expect("a file");

        let (tx, rx) = std::sync::mpsc::channel();
        let task = spawn_refresher(
            &tokio::runtime::Handle::current(),
            Arc::clone(&catalog),
            None,
            Some(Duration::from_millis(50)),
            move |change| {
                if let Change::Invalidate(ino) = change {
                    let _ = tx.send(ino);
                }
            },
        );
        emu.tenant()
            .mutate(&entry.guid, &file.key, 60)
            .expect("mutate");
        let seen = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(ino) if ino == file.ino => return true,
                    Ok(_) => continue,
                    Err(_) => return false,
                }
            }
            false
        })
        .await
        .expect("join");
        task.abort();
        emu.shutdown().await;
        assert!(seen, "the changed file's inode was not invalidated");
    }
}
