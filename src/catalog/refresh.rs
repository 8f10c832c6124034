//! Periodic re-listing: every `every`, [`Catalog::refresh`] the window, log what changed,
//! and hand each changed inode (files with a new version, directories whose entries
//! changed) to the caller's `invalidate`. The catalog knows nothing of FUSE: what
//! invalidating means (dropping the kernel's cached pages, attributes and listings) is
//! the mount's business.
//!
//! Invariants: `invalidate` is called on a runtime worker, so it must not block (the mount
//! passes each inode on to a thread of its own); a failed re-list keeps the old listing
//! and is tried again one period later; the first re-list comes one period after start.

use std::sync::Arc;
use std::time::Duration;

use super::Catalog;

/// Re-list `catalog` every `every` on `rt`, calling `invalidate` with each changed inode,
/// until the task is aborted or the runtime shuts down.
pub fn spawn_refresher(
    rt: &tokio::runtime::Handle,
    catalog: Arc<Catalog>,
    every: Duration,
    invalidate: impl Fn(u64) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
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
                        invalidate(ino);
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
        let catalog = Catalog::load(
            client,
            now - time::Duration::days(31),
            now + time::Duration::minutes(1),
        )
        .await
        .expect("load");
        let catalog = Arc::new(catalog);
        let entry = catalog.listed().first().cloned().expect("an interaction");
        let file = entry.files().next().cloned().expect("a file");

        let (tx, rx) = std::sync::mpsc::channel();
        let task = spawn_refresher(
            &tokio::runtime::Handle::current(),
            Arc::clone(&catalog),
            Duration::from_millis(50),
            move |ino| {
                let _ = tx.send(ino);
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
