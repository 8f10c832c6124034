//! The one place where client errors become errno values.

use fuser::Errno;

use crate::api::ApiError;

/// The errno a reader sees for `e`.
pub fn errno_of(e: &ApiError) -> Errno {
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

    #[test]
    fn mapping() {
        let w = || "x".to_string();
        assert_eq!(errno_of(&ApiError::NotFound { what: w() }), Errno::ENOENT);
        assert_eq!(
            errno_of(&ApiError::Forbidden {
                what: w(),
                detail: w()
            }),
            Errno::EACCES
        );
        assert_eq!(
            errno_of(&ApiError::Changed {
                what: w(),
                detail: w()
            }),
            Errno::from_i32(libc::ESTALE)
        );
        assert_eq!(
            errno_of(&ApiError::Protocol {
                what: w(),
                detail: w()
            }),
            Errno::EIO
        );
    }
}
