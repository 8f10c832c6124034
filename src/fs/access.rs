//! Who may read what: the owner and the permission bits every node carries, and the
//! one check vccfs makes itself (extended attributes).
//!
//! The rule (`--uid`, `--gid`, `--file-mode`, `--dir-mode`, `--allow-other`):
//! - every node is owned by `uid:gid` (default: the mounting process's effective user
//!   and group);
//! - content files and `.interaction.json` carry `file_mode`, directories (the root,
//!   `interactions`, `by-date`, days, interactions) `dir_mode`, `by-date` symlinks
//!   [`LINK_MODE`] (the kernel never checks a symlink's own bits);
//! - default modes: `0444`/`0555`, or `0440`/`0550` with `--allow-other` (a mount other
//!   users can reach shows its recordings, metadata and phone numbers to the owner and
//!   the group only, unless a mode says otherwise); with `--file-mode` alone,
//!   directories take the file mode plus search (`x`) wherever it reads (`0444` →
//!   `0555`), so whoever may read a file may reach it.
//!
//! Invariants:
//! - **Read-only bits.** A mode is at most `0o777` and has no write bit: [`parse_mode`]
//!   refuses anything else before anything mounts.
//! - **The kernel enforces the bits.** The mount has `default_permissions`: the kernel
//!   checks them on every lookup (search permission), open, readdir and `user.*`
//!   getxattr (read permission on the node), so no request of a user who may not read
//!   a node reaches vccfs's read path.
//! - **Extended attributes follow the file rule.** An interaction directory's `user.vcc.*`
//!   attributes hold what `.interaction.json` holds (phone numbers, agents): on top of
//!   the kernel's check (which looks at the node's own bits), a getxattr is answered
//!   only to a caller who could read a file ([`Access::may_read_file`]), so a
//!   `--dir-mode` looser than `--file-mode` never shows phone numbers to someone who
//!   cannot read `.interaction.json`.

/// The bits of a `by-date` symlink (never checked by the kernel).
pub const LINK_MODE: u16 = 0o777;

/// Owner, group and modes of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub uid: u32,
    pub gid: u32,
    /// Content files and `.interaction.json`.
    pub file_mode: u16,
    /// Every directory.
    pub dir_mode: u16,
}

/// The defaults without and with `--allow-other`.
const PRIVATE: (u16, u16) = (0o444, 0o555);
const SHARED: (u16, u16) = (0o440, 0o550);

impl Access {
    /// The rule for these options: what is not given takes its default (the mounting
    /// user and group; `0444`/`0555`, or `0440`/`0550` with `allow_other`; directories
    /// follow an explicit file mode).
    pub fn new(
        uid: Option<u32>,
        gid: Option<u32>,
        file_mode: Option<u16>,
        dir_mode: Option<u16>,
        allow_other: bool,
    ) -> Access {
        let (file, dir) = if allow_other { SHARED } else { PRIVATE };
        // SAFETY: geteuid/getegid cannot fail and have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Access {
            uid: uid.unwrap_or(euid),
            gid: gid.unwrap_or(egid),
            file_mode: file_mode.unwrap_or(file),
            dir_mode: dir_mode.unwrap_or(match file_mode {
                Some(f) => f | ((f & 0o444) >> 2),
                None => dir,
            }),
        }
    }

    /// Could the caller `who` read a file (by `file_mode`, as the kernel decides: owner
    /// bits for the owner, else group bits for a member, else the others' bits; root
    /// always)?
    pub fn may_read_file(&self, who: &Caller) -> bool {
        let m = self.file_mode;
        if who.uid == 0 {
            return true;
        }
        if who.uid == self.uid {
            return m & 0o400 != 0;
        }
        let (group, other) = (m & 0o040 != 0, m & 0o004 != 0);
        // Supplementary groups are read (from /proc) only when they decide.
        if group == other {
            return other;
        }
        if who.gid == self.gid || who.groups().contains(&self.gid) {
            return group;
        }
        other
    }
}

impl Default for Access {
    fn default() -> Access {
        Access::new(None, None, None, None, false)
    }
}

/// Who sent a request: its uid, primary gid and process (for supplementary groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl Caller {
    /// The supplementary groups of the calling process (`Groups:` of
    /// `/proc/<pid>/status`); none if it cannot be read (the process is gone, or the
    /// request came from the kernel itself).
    fn groups(&self) -> Vec<u32> {
        if self.pid == 0 {
            return Vec::new();
        }
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Groups:"))
                    .map(parse_groups)
            })
            .unwrap_or_default()
    }
}

fn parse_groups(list: &str) -> Vec<u32> {
    list.split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect()
}

/// Why a `--file-mode`/`--dir-mode` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("not an octal mode (digits 0-7, e.g. 0440)")]
    NotOctal,
    #[error("only permission bits (at most 0777) are allowed")]
    TooLarge,
    #[error("the mount is read-only: write bits ({0:04o}) are not allowed (e.g. 0440)")]
    Writable(u16),
}

/// An octal mode as users write it (`0440`, `440`, `0o440`): permission bits only,
/// and read-only.
pub fn parse_mode(text: &str) -> Result<u16, ModeError> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(ModeError::NotOctal);
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| ModeError::NotOctal)?;
    if mode > 0o777 {
        return Err(ModeError::TooLarge);
    }
    let mode = mode as u16;
    match mode & 0o222 {
        0 => Ok(mode),
        w => Err(ModeError::Writable(w)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_permission_bits_without_write() {
        assert_eq!(parse_mode("0440"), Ok(0o440));
        assert_eq!(parse_mode("440"), Ok(0o440));
        assert_eq!(parse_mode("0o550"), Ok(0o550));
        assert_eq!(parse_mode("0"), Ok(0));
        assert_eq!(parse_mode("0555"), Ok(0o555));
        assert_eq!(parse_mode("999"), Err(ModeError::NotOctal));
        assert_eq!(parse_mode(""), Err(ModeError::NotOctal));
        assert_eq!(parse_mode("-440"), Err(ModeError::NotOctal));
        assert_eq!(parse_mode("u+r"), Err(ModeError::NotOctal));
        assert_eq!(parse_mode("04440"), Err(ModeError::TooLarge));
        assert_eq!(parse_mode("1555"), Err(ModeError::TooLarge));
        assert_eq!(parse_mode("0666"), Err(ModeError::Writable(0o222)));
        assert_eq!(parse_mode("0640"), Err(ModeError::Writable(0o200)));
        assert_eq!(parse_mode("0442"), Err(ModeError::Writable(0o002)));
    }

    #[test]
    fn defaults_depend_on_allow_other() {
        // SAFETY: as in `Access::new`.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let private = Access::new(None, None, None, None, false);
        assert_eq!(
            private,
            Access {
                uid: euid,
                gid: egid,
                file_mode: 0o444,
                dir_mode: 0o555
            }
        );
        assert_eq!(private, Access::default());
        let shared = Access::new(None, Some(4242), None, None, true);
        assert_eq!((shared.uid, shared.gid), (euid, 4242));
        assert_eq!((shared.file_mode, shared.dir_mode), (0o440, 0o550));
        // Explicit modes win, with or without --allow-other.
        let open = Access::new(Some(7), None, Some(0o444), None, true);
        assert_eq!((open.uid, open.file_mode, open.dir_mode), (7, 0o444, 0o555));
        // Directories follow an explicit file mode (search wherever it reads)...
        let owner = Access::new(None, None, Some(0o400), None, true);
        assert_eq!((owner.file_mode, owner.dir_mode), (0o400, 0o500));
        let odd = Access::new(None, None, Some(0o404), None, false);
        assert_eq!(odd.dir_mode, 0o505);
        // ...but not the other way round: names visible, contents not.
        let names = Access::new(None, None, None, Some(0o555), true);
        assert_eq!((names.file_mode, names.dir_mode), (0o440, 0o555));
        let both = Access::new(None, None, Some(0o444), Some(0o500), true);
        assert_eq!((both.file_mode, both.dir_mode), (0o444, 0o500));
    }

    #[test]
    fn reading_a_file_follows_owner_group_other_bits() {
        let a = Access {
            uid: 1000,
            gid: 2000,
            file_mode: 0o440,
            dir_mode: 0o550,
        };
        let who = |uid, gid| Caller { uid, gid, pid: 0 };
        assert!(a.may_read_file(&who(0, 0)), "root");
        assert!(a.may_read_file(&who(1000, 1)), "owner");
        assert!(a.may_read_file(&who(1001, 2000)), "group member");
        assert!(!a.may_read_file(&who(1001, 1001)), "someone else");
        let owner_only = Access {
            file_mode: 0o400,
            ..a
        };
        assert!(!owner_only.may_read_file(&who(1001, 2000)));
        // The owner's bits decide for the owner, even when others may read.
        let odd = Access {
            file_mode: 0o044,
            ..a
        };
        assert!(!odd.may_read_file(&who(1000, 2000)));
        assert!(odd.may_read_file(&who(1001, 1001)));
        assert_eq!(parse_groups(" 4 24 27\t1000 "), vec![4, 24, 27, 1000]);
        // Supplementary groups of a live process: this one's.
        let me = Caller {
            uid: 12345,
            gid: 12345,
            pid: std::process::id(),
        };
        let mine = me.groups();
        if let Some(&g) = mine.first() {
            let group_only = Access {
                uid: 1,
                gid: g,
                file_mode: 0o040,
                dir_mode: 0o050,
            };
            assert!(group_only.may_read_file(&me));
        }
    }
}
