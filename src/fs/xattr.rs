//! Extended attributes: `user.vcc.*` metadata on files and interaction directories.

use std::ffi::OsStr;

use super::node::Node;
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
        Node::File { guid, key } => {
            let e = catalog.known(guid)?;
            let f = catalog.file(&e, key)?;
            match name {
                "user.vcc.contentType" => Some(f.content_type.to_string()),
                "user.vcc.type" => Some(f.kind.to_string()),
                _ => None,
            }
        }
        Node::Interaction { guid } => {
            let e = catalog.known(guid)?;
            let i = e.interaction();
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
        Node::File { .. } => FILE_ATTRS,
        Node::Interaction { .. } => DIR_ATTRS,
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
