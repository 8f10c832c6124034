//! Extended attributes: `user.vcc.*` metadata on files and interaction directories.

use std::ffi::OsStr;

use fuser::{Errno, ReplyXattr};

use super::Node;
use crate::catalog::Catalog;

const FILE_ATTRS: &[&str] = &["user.vcc.contentType", "user.vcc.type"];
const DIR_ATTRS: &[&str] = &[
    "user.vcc.direction",
    "user.vcc.connectFrom",
    "user.vcc.connectTo",
    "user.vcc.handlingAgents",
];

/// The value of attribute `name` of `node`, if it has one.
pub(super) fn get(catalog: &Catalog, node: &Node, name: &OsStr) -> Option<String> {
    let name = name.to_str()?;
    match node {
        Node::File(g, k) => {
            let e = catalog.known(g)?;
            let f = e.file(k)?;
            match name {
                "user.vcc.contentType" => Some(f.content_type.clone()),
                "user.vcc.type" => Some(f.kind.clone()),
                _ => None,
            }
        }
        Node::Interaction(g) => {
            let e = catalog.known(g)?;
            let i = &e.interaction;
            match name {
                "user.vcc.direction" => i.direction.clone(),
                "user.vcc.connectFrom" => i.connect_from.clone(),
                "user.vcc.connectTo" => i.connect_to.clone(),
                "user.vcc.handlingAgents" => Some(
                    i.handling_agents
                        .iter()
                        .map(|a| a.id.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The NUL-separated names of the attributes `node` has.
pub(super) fn list(catalog: &Catalog, node: &Node) -> Vec<u8> {
    let names: &[&str] = match node {
        Node::File(..) => FILE_ATTRS,
        Node::Interaction(_) => DIR_ATTRS,
        _ => &[],
    };
    let mut out = Vec::new();
    for n in names {
        if get(catalog, node, OsStr::new(n)).is_some() {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
    }
    out
}

/// Answer a getxattr/listxattr: the size when asked for 0 bytes, ERANGE when the
/// caller's buffer is too small, else the bytes.
pub(super) fn reply_bytes(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if (size as usize) < value.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
