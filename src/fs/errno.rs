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
}
