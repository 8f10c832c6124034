//! `vccfs`: commands only; everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vccfs::cli::{self, Cli};

fn main() -> ExitCode {
    tame_malloc();
    let cli = Cli::parse();
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

/// glibc raises its mmap threshold after large frees, after which freed cache blocks
/// stay in the heap and RSS creeps above the cache size. Fix the threshold below the
/// block size (so blocks are returned to the OS when evicted) and cap the arenas.
fn tame_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}
