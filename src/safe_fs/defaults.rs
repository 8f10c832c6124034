//! Where vccfs keeps things when not told: the disk cache's root and the directories
//! the status socket may live in. Never under `/tmp` (or `$TMPDIR`), for anyone.
//!
//! | who | cache root | socket directories, in order |
//! |---|---|---|
//! | root (euid 0) | `$CACHE_DIRECTORY`, else `/var/cache/vccfs` | `$RUNTIME_DIRECTORY`, `/run/vccfs` |
//! | others | `$XDG_CACHE_HOME/vccfs`, else `$HOME/.cache/vccfs`, else none | `$XDG_RUNTIME_DIR/vccfs`, `/run/user/<uid>/vccfs` |
//!
//! `$CACHE_DIRECTORY` and `$RUNTIME_DIRECTORY` are what systemd sets for a unit with
//! `CacheDirectory=` and `RuntimeDirectory=` (the first, when it lists several). Only
//! absolute paths count. The socket's list is the same for the mount and for
//! `vccfs status` (and `erase`, `refresh`, `warm`), so the mountpoint alone finds it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// No `--cache-dir` and no default for this user.
#[derive(Debug, thiserror::Error)]
#[error("no directory for the disk cache: HOME and XDG_CACHE_HOME are unset; name one with --cache-dir DIR (or use --no-disk-cache)")]
pub struct NoCacheDir;

/// What the defaults depend on.
#[derive(Debug, Clone, Default)]
struct Env {
    euid: u32,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
    cache_directory: Option<OsString>,
    xdg_runtime_dir: Option<OsString>,
    runtime_directory: Option<OsString>,
}

impl Env {
    fn current() -> Env {
        let var = std::env::var_os;
        Env {
            euid: super::euid(),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home: var("HOME"),
            cache_directory: var("CACHE_DIRECTORY"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            runtime_directory: var("RUNTIME_DIRECTORY"),
        }
    }
}

/// The path in a variable, if absolute.
fn absolute(v: &Option<OsString>) -> Option<PathBuf> {
    v.as_ref().map(PathBuf::from).filter(|p| p.is_absolute())
}

/// The first path of one of systemd's colon-separated lists, if absolute.
fn first_absolute(v: &Option<OsString>) -> Option<PathBuf> {
    let v = v.as_ref()?;
    let first = match v.to_str() {
        Some(s) => PathBuf::from(s.split(':').next().unwrap_or_default()),
        None => PathBuf::from(v),
    };
    first.is_absolute().then_some(first)
}

/// The default root of the disk cache.
pub fn cache_root() -> Result<PathBuf, NoCacheDir> {
    cache_root_from(&Env::current())
}

fn cache_root_from(env: &Env) -> Result<PathBuf, NoCacheDir> {
    if env.euid == 0 {
        return Ok(
            first_absolute(&env.cache_directory).unwrap_or_else(|| "/var/cache/vccfs".into())
        );
    }
    if let Some(xdg) = absolute(&env.xdg_cache_home) {
        return Ok(xdg.join("vccfs"));
    }
    absolute(&env.home)
        .map(|h| h.join(".cache").join("vccfs"))
        .ok_or(NoCacheDir)
}

/// The directories the status socket may live in, best first (possibly none).
pub fn socket_dirs() -> Vec<PathBuf> {
    socket_dirs_from(&Env::current(), Path::is_dir)
}

fn socket_dirs_from(env: &Env, exists: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if env.euid == 0 {
        dirs.extend(first_absolute(&env.runtime_directory));
        dirs.push(PathBuf::from("/run/vccfs"));
        dirs.dedup();
        return dirs;
    }
    if let Some(d) = absolute(&env.xdg_runtime_dir).filter(|d| exists(d)) {
        dirs.push(d.join("vccfs"));
    }
    let run = PathBuf::from(format!("/run/user/{}", env.euid));
    if exists(&run) {
        dirs.push(run.join("vccfs"));
    }
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn root_uses_var_cache_or_systemds_cache_directory() {
        let mut env = Env {
            home: os("/root"),
            xdg_cache_home: os("/root/.cache"),
            ..Env::default()
        };
        assert_eq!(cache_root_from(&env).ok(), Some("/var/cache/vccfs".into()));
        env.cache_directory = os("/var/cache/vccfs-unit:/var/cache/other");
        assert_eq!(
            cache_root_from(&env).ok(),
            Some("/var/cache/vccfs-unit".into())
        );
        env.cache_directory = os("relative");
        assert_eq!(cache_root_from(&env).ok(), Some("/var/cache/vccfs".into()));
    }

    #[test]
    fn users_follow_xdg_then_home_and_never_tmp() {
        let mut env = Env {
            euid: 1000,
            xdg_cache_home: os("/x/cache"),
            home: os("/home/u"),
            cache_directory: os("/var/cache/vccfs"),
            ..Env::default()
        };
        assert_eq!(cache_root_from(&env).ok(), Some("/x/cache/vccfs".into()));
        env.xdg_cache_home = os("relative");
        assert_eq!(
            cache_root_from(&env).ok(),
            Some("/home/u/.cache/vccfs".into())
        );
        env.home = None;
        let err = cache_root_from(&env).expect_err("no default");
        assert!(err.to_string().contains("--cache-dir"), "{err}");
    }

    #[test]
    fn socket_directories_never_fall_back_to_tmp() {
        let root = Env {
            runtime_directory: os("/run/unit"),
            xdg_runtime_dir: os("/run/user/0"),
            ..Env::default()
        };
        assert_eq!(
            socket_dirs_from(&root, |_| true),
            vec![PathBuf::from("/run/unit"), PathBuf::from("/run/vccfs")]
        );
        let user = Env {
            euid: 1000,
            xdg_runtime_dir: os("/run/user/1000"),
            ..Env::default()
        };
        assert_eq!(
            socket_dirs_from(&user, |_| true),
            vec![PathBuf::from("/run/user/1000/vccfs")]
        );
        assert!(socket_dirs_from(&user, |_| false).is_empty());
        let bare = Env {
            euid: 1000,
            ..Env::default()
        };
        assert!(socket_dirs_from(&bare, |_| false).is_empty());
    }
}
