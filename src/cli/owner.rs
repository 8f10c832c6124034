//! `--uid`, `--gid`, `--file-mode`, `--dir-mode` → the mount's [`Access`] (owner and
//! permission bits of every node; the defaults and the rule itself are `fs::access`'s).
//!
//! Invariants: a name is resolved on this host before anything mounts (an unknown user
//! or group is a one-line error naming the flag, as is a mode that is not octal, has
//! bits above `0777` or has a write bit); `-1` (4294967295, "no owner") is refused.

use std::ffi::CString;

use crate::fs::{parse_mode, Access};

use super::{CliError, MountArgs};

/// The owner and modes of the flags, with their defaults.
pub(super) fn access(a: &MountArgs) -> Result<Access, CliError> {
    let uid = a
        .uid
        .as_deref()
        .map(|u| id("--uid", u, Db::User))
        .transpose()?;
    let gid = a
        .gid
        .as_deref()
        .map(|g| id("--gid", g, Db::Group))
        .transpose()?;
    let mode = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|m| parse_mode(m).map_err(|e| CliError::Usage(format!("{flag} {m}: {e}"))))
            .transpose()
    };
    let file_mode = mode("--file-mode", &a.file_mode)?;
    let dir_mode = mode("--dir-mode", &a.dir_mode)?;
    Ok(Access::new(uid, gid, file_mode, dir_mode, a.allow_other))
}

#[derive(Debug, Clone, Copy)]
enum Db {
    User,
    Group,
}

/// A number, or a name looked up in the user or group database.
fn id(flag: &str, text: &str, db: Db) -> Result<u32, CliError> {
    let text = text.trim();
    let what = match db {
        Db::User => "user",
        Db::Group => "group",
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if n != u32::MAX => Ok(n),
            _ => Err(CliError::Usage(format!(
                "{flag} {text}: not a valid {what} id"
            ))),
        };
    }
    lookup(text, db).ok_or_else(|| {
        CliError::Usage(format!(
            "{flag} {text}: no such {what} on this host (a name or a number)"
        ))
    })
}

/// `getpwnam_r`/`getgrnam_r`, growing the buffer while it is too small (up to 1 MiB:
/// a group with many members).
fn lookup(name: &str, db: Db) -> Option<u32> {
    let c = CString::new(name).ok()?;
    if name.is_empty() {
        return None;
    }
    let mut size = 16 << 10;
    while size <= 1 << 20 {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: every pointer is to a live local of the right type; the buffer's
        // length is passed with it; the result is read only when the call says it
        // filled the record.
        let (rc, found) = unsafe {
            match db {
                Db::User => {
                    let mut rec: libc::passwd = std::mem::zeroed();
                    let mut out: *mut libc::passwd = std::ptr::null_mut();
                    let rc =
                        libc::getpwnam_r(c.as_ptr(), &mut rec, buf.as_mut_ptr(), size, &mut out);
                    (rc, (!out.is_null()).then_some(rec.pw_uid))
                }
                Db::Group => {
                    let mut rec: libc::group = std::mem::zeroed();
                    let mut out: *mut libc::group = std::ptr::null_mut();
                    let rc =
                        libc::getgrnam_r(c.as_ptr(), &mut rec, buf.as_mut_ptr(), size, &mut out);
                    (rc, (!out.is_null()).then_some(rec.gr_gid))
                }
            }
        };
        match rc {
            0 => return found,
            libc::ERANGE => size *= 4,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbers_or_names() {
        assert_eq!(id("--uid", "1000", Db::User).ok(), Some(1000));
        assert_eq!(id("--uid", "root", Db::User).ok(), Some(0));
        assert_eq!(id("--gid", "root", Db::Group).ok(), Some(0));
        assert_eq!(id("--gid", " 0 ", Db::Group).ok(), Some(0));
        let bad = |t: &str, db| match id("--gid", t, db) {
            Err(CliError::Usage(m)) => m,
            other => panic!("{t}: {other:?}"),
        };
        assert!(bad("no-such-group-vccfs-x", Db::Group).contains("no such group"));
        assert!(bad("no-such-user-vccfs-x", Db::User).contains("no such user"));
        assert!(bad("4294967295", Db::Group).contains("not a valid group id"));
        assert!(bad("99999999999", Db::Group).contains("not a valid"));
        assert!(bad("", Db::Group).contains("no such group"));
        assert!(bad("ro\0ot", Db::Group).contains("no such group"));
    }
}
