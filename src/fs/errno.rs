//! The one place where errors become errno values: the filesystem's own
//! [`FsError`], and through it every layer's (`prefetch`, `cache`, `source`,
//! `catalog`, `api`).

use fuser::Errno;

use crate::api::ApiError;
use crate::cache::FetchError;
use crate::catalog::CatalogError;
use crate::prefetch::ReadError;
use crate::source::SourceError;

/// Why a filesystem operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("read-only filesystem")]
    ReadOnly,
    #[error("bad file handle")]
    BadHandle,
    #[error("not a symlink")]
    NotLink,
    #[error("name too long")]
    NameTooLong,
    #[error("no such attribute")]
    NoAttr,
    /// The tenant's access is revoked (the API refused this client): nothing of it,
    /// cached or not, is served until the API accepts the client again.
    #[error("access to the tenant is revoked")]
    Revoked,
    /// The caller may not read this (the mount's owner and modes: `access`).
    #[error("permission denied")]
    Denied,
    /// The file was opened on a version the API no longer lists.
    #[error("the file changed since it was opened")]
    Stale,
    /// The file was erased (deleted at the API, or `vccfs erase`) while open.
    #[error("the file was erased")]
    Erased,
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl FsError {
    /// Does the reader see `ESTALE` (the content changed under its version)?
    pub fn is_stale(&self) -> bool {
        self.errno() == Errno::from_i32(libc::ESTALE)
    }

    /// Does the reader see `ENOENT` (the file, or its interaction, is gone)?
    pub fn is_not_found(&self) -> bool {
        self.errno() == Errno::ENOENT
    }

    /// The errno a reader sees.
    pub fn errno(&self) -> Errno {
        match self {
            FsError::NotFound => Errno::ENOENT,
            FsError::NotDir => Errno::ENOTDIR,
            FsError::IsDir => Errno::EISDIR,
            FsError::ReadOnly => Errno::EROFS,
            FsError::BadHandle => Errno::EBADF,
            FsError::NotLink => Errno::EINVAL,
            FsError::NameTooLong => Errno::ENAMETOOLONG,
            FsError::NoAttr => Errno::from_i32(libc::ENODATA),
            FsError::Stale => Errno::from_i32(libc::ESTALE),
            FsError::Erased => Errno::ENOENT,
            FsError::Revoked | FsError::Denied => Errno::EACCES,
            FsError::Read(ReadError::Fetch(FetchError::Source(e))) => source_errno(e),
            FsError::Read(_) => Errno::EIO,
            FsError::Catalog(CatalogError::Api(e)) => api_errno(e),
            FsError::Catalog(CatalogError::Unsettled { .. }) => Errno::EIO,
        }
    }
}

/// A tier that failed has already been asked past; if its error still arrives here,
/// nothing behind it answered either.
fn source_errno(e: &SourceError) -> Errno {
    match e {
        SourceError::Origin(e) => api_errno(e),
        SourceError::Tier { .. } => Errno::EIO,
    }
}

fn api_errno(e: &ApiError) -> Errno {
    match e {
        ApiError::NotFound { .. } => Errno::ENOENT,
        ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => Errno::EACCES,
        ApiError::Changed { .. } => Errno::from_i32(libc::ESTALE),
        ApiError::BadRequest { .. }
        | ApiError::RateLimited { .. }
        | ApiError::Timeout { .. }
        | ApiError::Protocol { .. }
        | ApiError::Transport { .. }
        | ApiError::Config(_) => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(e: SourceError) -> FsError {
        FsError::Read(ReadError::Fetch(FetchError::Source(e)))
    }

    #[test]
    fn mapping() {
        let w = || "x".to_string();
        let api = |e: ApiError| read(SourceError::Origin(e)).errno();
        assert_eq!(api(ApiError::NotFound { what: w() }), Errno::ENOENT);
        assert_eq!(
            api(ApiError::Forbidden {
                what: w(),
                detail: w()
            }),
            Errno::EACCES
        );
        assert_eq!(
            api(ApiError::Changed {
                what: w(),
                detail: w()
            }),
            Errno::from_i32(libc::ESTALE)
        );
        assert_eq!(
            api(ApiError::Protocol {
                what: w(),
                detail: w()
            }),
            Errno::EIO
        );
        assert_eq!(
            FsError::Catalog(CatalogError::Api(ApiError::Unauthorized {
                what: w(),
                detail: w()
            }))
            .errno(),
            Errno::EACCES
        );
        assert_eq!(
            read(SourceError::Tier {
                tier: "disk",
                detail: w()
            })
            .errno(),
            Errno::EIO
        );
        assert_eq!(
            FsError::Read(ReadError::Fetch(FetchError::Abandoned)).errno(),
            Errno::EIO
        );
        assert_eq!(FsError::ReadOnly.errno(), Errno::EROFS);
        assert_eq!(FsError::Revoked.errno(), Errno::EACCES);
    }

    /// The errno names `src/fs` can return: every `Errno::NAME` and `libc::ENAME` its
    /// code (tests and comments left out) names, and the errno of one value of every
    /// `FsError` variant (the `match` stops compiling when a variant is added), which
    /// must also have a label in `counters::errno_name`.
    fn fs_errnos() -> std::collections::BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fs");
        let mut files = vec![dir.clone()];
        let mut names = std::collections::BTreeSet::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                let entries = std::fs::read_dir(&path).expect("read src/fs");
                files.extend(entries.map(|e| e.expect("a directory entry").path()));
                continue;
            }
            let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !file.ends_with(".rs") || file.starts_with("tests") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            for line in code.lines() {
                let line = line.split("//").next().unwrap_or("");
                for prefix in ["Errno::", "libc::"] {
                    for (at, _) in line.match_indices(prefix) {
                        let name: String = line[at + prefix.len()..]
                            .chars()
                            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                            .collect();
                        if name.len() > 1 && name.starts_with('E') {
                            names.insert(name);
                        }
                    }
                }
            }
        }
        let w = || "x".to_string();
        let api = |e: ApiError| FsError::Catalog(CatalogError::Api(e));
        let every = [
            FsError::NotFound,
            FsError::NotDir,
            FsError::IsDir,
            FsError::ReadOnly,
            FsError::BadHandle,
            FsError::NotLink,
            FsError::NameTooLong,
            FsError::NoAttr,
            FsError::Revoked,
            FsError::Denied,
            FsError::Stale,
            FsError::Erased,
            FsError::Read(ReadError::Fetch(FetchError::Abandoned)),
            api(ApiError::NotFound { what: w() }),
            api(ApiError::Changed {
                what: w(),
                detail: w(),
            }),
        ];
        for e in &every {
            // Exhaustive: a new variant must be added to `every` above.
            match e {
                FsError::NotFound
                | FsError::NotDir
                | FsError::IsDir
                | FsError::ReadOnly
                | FsError::BadHandle
                | FsError::NotLink
                | FsError::NameTooLong
                | FsError::NoAttr
                | FsError::Revoked
                | FsError::Denied
                | FsError::Stale
                | FsError::Erased
                | FsError::Read(_)
                | FsError::Catalog(_) => {}
            }
            // Its name, as metrics and the audit log label it (never "other").
            let name = super::super::counters::errno_name(e.errno().code());
            assert_ne!(
                name,
                "other",
                "{e:?}: errno {} has no label",
                e.errno().code()
            );
            names.insert(name.to_string());
        }
        names
    }

    /// The README's "Semantics" section: from its heading to the next `## `.
    fn semantics() -> String {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("\n## Semantics\n")
            .expect("the README has a Semantics section");
        let rest = &readme[start + 1..];
        let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
        rest[..end].to_string()
    }

    /// `name` as a whole word in `text`.
    fn names(text: &str, name: &str) -> bool {
        text.match_indices(name).any(|(at, _)| {
            let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            !word(text[..at].chars().next_back()) && !word(text[at + name.len()..].chars().next())
        })
    }

    #[test]
    fn every_errno_the_fs_returns_is_in_the_readme() {
        let errnos = fs_errnos();
        for must in [
            "ENOENT", "EACCES", "ESTALE", "EIO", "EROFS", "EBUSY", "ENOSYS", "ERANGE",
        ] {
            assert!(errnos.contains(must), "the scan missed {must}: {errnos:?}");
        }
        let section = semantics();
        let missing: Vec<&String> = errnos.iter().filter(|e| !names(&section, e)).collect();
        assert!(
            missing.is_empty(),
            "src/fs can return {missing:?}, which the README's Semantics section does not name"
        );
    }
}
