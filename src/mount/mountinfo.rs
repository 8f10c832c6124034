//! /proc/self/mountinfo, parsed in one place: for each mount, its device (`major:minor`)
//! and its mount point, with the kernel's escapes decoded.
//!
//! The kernel writes a mount point with space, tab, newline and backslash as octal
//! escapes (`\040`, `\011`, `\012`, `\134`). Every `\ooo` is decoded here, so a mount point
//! compares byte for byte with the path it names (non-UTF-8 included); a path's newline
//! never splits a line, since it is escaped. Lines that do not parse are skipped.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount, as far as vccfs needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountEntry {
    /// `major:minor` of the mounted filesystem (the name under /sys/class/bdi/).
    pub device: String,
    /// Where it is mounted, decoded.
    pub mount_point: PathBuf,
}

/// The newest mount at exactly `mount_point` (an absolute, canonical path), if any.
pub(super) fn find(mount_point: &Path) -> Option<MountEntry> {
    let info = std::fs::read("/proc/self/mountinfo").ok()?;
    parse(&info)
        .into_iter()
        .rfind(|e| e.mount_point == mount_point)
}

/// Every mount in a mountinfo text, in its order (oldest first).
pub(super) fn parse(info: &[u8]) -> Vec<MountEntry> {
    info.split(|&b| b == b'\n').filter_map(parse_line).collect()
}

/// One line: `id parent major:minor root mount-point options [optional...] - type source super`.
pub(super) fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let mut fields = line.split(|&b| b == b' ');
    let device = fields.nth(2)?;
    let mount_point = fields.nth(1)?;
    let device = std::str::from_utf8(device).ok()?;
    let (major, minor) = device.split_once(':')?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(major) || !numeric(minor) || mount_point.is_empty() {
        return None;
    }
    Some(MountEntry {
        device: device.to_string(),
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
    })
}

/// Decode `\ooo` (three octal digits, at most `\377`) into that byte; anything else,
/// a lone backslash included, is kept as it is.
pub(super) fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'\\' {
            if let Some(byte) = tail.get(..3).and_then(octal_byte) {
                out.push(byte);
                rest = &tail[3..];
                continue;
            }
        }
        out.push(b);
        rest = tail;
    }
    out
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    let value = digits.iter().try_fold(0u16, |acc, &d| {
        (b'0'..=b'7')
            .contains(&d)
            .then(|| acc * 8 + u16::from(d - b'0'))
    })?;
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(mount_point: &str) -> String {
        format!(
            "123 45 0:52 / {mount_point} rw,nosuid,nodev,relatime shared:300 - fuse.vccfs vccfs ro,user_id=1000,group_id=1000"
        )
    }

    fn mount_point_of(escaped: &str) -> Option<PathBuf> {
        parse_line(line(escaped).as_bytes()).map(|e| e.mount_point)
    }

    #[test]
    fn this_process_sees_its_root() {
        assert!(find(Path::new("/")).is_some());
        assert_eq!(find(Path::new("/surely/not/a/mount point")), None);
    }

    #[test]
    fn plain_line() {
        let e = parse_line(
            b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        );
        assert_eq!(
            e,
            Some(MountEntry {
                device: "98:0".into(),
                mount_point: PathBuf::from("/mnt2"),
            })
        );
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(
            mount_point_of(r"/tmp/with\040space"),
            Some(PathBuf::from("/tmp/with space"))
        );
        assert_eq!(
            mount_point_of(r"/tmp/with\011tab"),
            Some(PathBuf::from("/tmp/with\ttab"))
        );
        assert_eq!(
            mount_point_of(r"/tmp/back\134slash"),
            Some(PathBuf::from(r"/tmp/back\slash"))
        );
        assert_eq!(
            mount_point_of(r"/tmp/new\012line"),
            Some(PathBuf::from("/tmp/new\nline"))
        );
        assert_eq!(
            mount_point_of(r"/tmp/a\040b\011c\134\012"),
            Some(PathBuf::from("/tmp/a b\tc\\\n"))
        );
        // Any octal byte, not only the four the kernel escapes; non-UTF-8 survives.
        assert_eq!(
            mount_point_of(r"/tmp/\377"),
            Some(PathBuf::from(OsString::from_vec(b"/tmp/\xff".to_vec())))
        );
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(unescape(br"a\b"), br"a\b");
        assert_eq!(unescape(br"a\9999"), br"a\9999");
        assert_eq!(unescape(br"a\777"), br"a\777");
        assert_eq!(unescape(br"end\04"), br"end\04");
        assert_eq!(unescape(br"end\"), br"end\");
        assert_eq!(unescape(br"\134040"), br"\040");
    }

    #[test]
    fn short_or_odd_lines_are_skipped() {
        assert_eq!(parse_line(b""), None);
        assert_eq!(parse_line(b"36 35 98:0 /mnt1"), None);
        assert_eq!(parse_line(b"36 35 nodev /mnt1 /mnt2 rw - ext3 x rw"), None);
        assert_eq!(parse_line(b"36 35 98: /mnt1 /mnt2 rw - ext3 x rw"), None);
    }

    #[test]
    fn a_newline_in_a_path_does_not_split_the_table() {
        let info = format!(
            "{}\n{}\n{}\n",
            line("/"),
            line(r"/tmp/new\012line"),
            line(r"/tmp/with\040space").replace("0:52", "0:77"),
        );
        let entries = parse(info.as_bytes());
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].mount_point, PathBuf::from("/tmp/new\nline"));
        assert_eq!(entries[2].device, "0:77");
        assert_eq!(entries[2].mount_point, PathBuf::from("/tmp/with space"));
    }
}
