//! `vccfs`: commands only; everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vccfs::cli::{self, Cli};

fn main() -> ExitCode {
    tame_malloc();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `mount -t fuse.vccfs` runs `vccfs SOURCE MOUNTPOINT -o OPTIONS`.
    let args = match cli::fstab_args(&args) {
        None => args,
        Some(Ok(translated)) => translated,
        Some(Err(e)) => {
            eprintln!("vccfs: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(args);
    let default = match cli.verbose {
        0 => "warn,fuser=error",
        1 => "vccfs=info,warn,fuser=error",
        _ => "vccfs=debug,info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vccfs: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Keep the allocator's footprint close to what is live: few arenas (fewer
/// half-empty heaps), and free pages handed back to the OS every few seconds, so RSS
/// follows the cache size rather than the peak of past churn. (Measured: a fixed mmap
/// threshold bounds RSS too, but costs ~40% more CPU per byte read.)
fn tame_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt/malloc_trim only tune the allocator; mallopt runs before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        std::thread::spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            libc::malloc_trim(0);
        });
    }
}
