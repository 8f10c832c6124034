//! `--data-dir DIR`: a tenant made of real files, so vccfs can be tried on one's own
//! recordings. Files are never loaded whole: their size is taken at start-up and their
//! bytes are read with positioned reads on each request.
//!
//! Layout (also in `DATA_DIR.md`, for the README):
//!
//! ```text
//! DIR/
//!   <interaction>/              one directory per interaction
//!     interaction.json          optional manifest (see below)
//!     callRecording.wav         one file per content item: contentKey = file name
//!     transcript.json           without its last extension
//!     3f1c0a7e-...-9b2d.webm
//! ```
//!
//! - The directory name is the interaction GUID; if it is not a GUID and the manifest
//!   has no `guid`, a stable GUID is derived from the name.
//! - `interaction.json` is an interaction object as the API serves it (`guid`, `start`,
//!   `connectFrom`, `connectTo`, `direction`, `handlingAgents`, other fields passed
//!   through), all optional. `start` defaults to the oldest file's modification time.
//! - Without a `content` array in the manifest, every regular file (except hidden ones
//!   and `interaction.json`) is an item: `contentKey` = file name minus its extension,
//!   `type` = the key if it names a content type (`callRecording`, `transcript`, ...),
//!   else `callRecording` for audio, `screenRecording` for video, `attachment` otherwise;
//!   `contentType` from the extension or the first bytes; `lastModified` = file mtime.
//! - With a `content` array, only the listed items are served; each entry needs
//!   `contentKey` and may give `type`, `contentType`, `lastModified`, `owningAgent`,
//!   `owningInteractionPlan`, `properties`, other fields (passed through) and `file` (a
//!   file name in the directory; default: the file named `<contentKey>` or
//!   `<contentKey>.<ext>`). `contentLength` always comes from the file.
//! - Keys must match `^[0-9a-zA-Z!\-_.,*'()]{1,36}$`; other files are skipped with a
//!   warning. Interactions without content are not served.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::record::{Fnv, Item, Record, Regen};
use super::source::{ContentSource, FileSource};
use super::tenant::Tenant;
use crate::model::{is_content_key, is_guid, IdRef};

/// A problem with the data directory, with the path it concerns.
#[derive(Debug)]
pub(crate) struct DataDirError {
    pub path: PathBuf,
    pub reason: String,
}

impl DataDirError {
    fn new(path: &Path, reason: impl ToString) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// The manifest name inside each interaction directory.
const MANIFEST: &str = "interaction.json";

/// The content types the API documents (canonical spelling).
const KINDS: &[&str] = &[
    "callRecording",
    "screenRecording",
    "voicemail",
    "transcript",
    "chatTranscript",
    "categorizationResult",
    "attachment",
    "ivrAudioRecording",
    "videoRecording",
    "conversationSummary",
    "sentimentSummary",
    "interactionLog",
];

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    guid: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    start: Option<OffsetDateTime>,
    connect_from: Option<String>,
    connect_to: Option<String>,
    direction: Option<String>,
    #[serde(default)]
    handling_agents: Vec<IdRef>,
    content: Option<Vec<ManifestItem>>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestItem {
    content_key: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    content_type: Option<String>,
    file: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    last_modified: Option<OffsetDateTime>,
    owning_agent: Option<IdRef>,
    owning_interaction_plan: Option<IdRef>,
    #[serde(default)]
    properties: Map<String, Value>,
    /// Ignored: the length always comes from the file.
    #[serde(default)]
    #[allow(dead_code)]
    content_length: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Loads the tenant in `dir`.
pub(crate) fn load(dir: &Path) -> Result<Tenant, DataDirError> {
    let meta = fs::metadata(dir).map_err(|e| DataDirError::new(dir, e))?;
    if !meta.is_dir() {
        return Err(DataDirError::new(dir, "not a directory"));
    }
    let mut records = Vec::new();
    for path in sorted_entries(dir)? {
        if !path.is_dir() {
            tracing::debug!(path = %path.display(), "data dir: not an interaction directory, skipped");
            continue;
        }
        if let Some(rec) = load_interaction(&path)? {
            records.push(rec);
        }
    }
    let tenant = Tenant::from_records(records, OffsetDateTime::now_utc());
    tracing::info!(dir = %dir.display(), interactions = tenant.len(), "loaded data dir");
    Ok(tenant)
}

/// Non-hidden entries of `dir`, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataDirError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataDirError::new(dir, e))? {
        let entry = entry.map_err(|e| DataDirError::new(dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn load_interaction(dir: &Path) -> Result<Option<Record>, DataDirError> {
    let manifest_path = dir.join(MANIFEST);
    let manifest: Manifest = match fs::read(&manifest_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| DataDirError::new(&manifest_path, format!("invalid manifest: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(e) => return Err(DataDirError::new(&manifest_path, e)),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let guid = match &manifest.guid {
        Some(g) if is_guid(g) => g.to_ascii_lowercase(),
        Some(g) => {
            return Err(DataDirError::new(
                &manifest_path,
                format!("guid {g:?} is not a GUID"),
            ))
        }
        None if is_guid(&name) => name.to_ascii_lowercase(),
        None => derived_guid(&name),
    };
    let files: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != MANIFEST))
        .collect();
    let mut items: Vec<Item> = Vec::new();
    match manifest.content {
        Some(entries) => {
            for e in entries {
                let file = match &e.file {
                    Some(f) if Path::new(f).components().count() == 1 => dir.join(f),
                    Some(f) => {
                        return Err(DataDirError::new(
                            &manifest_path,
                            format!("file {f:?} must be a plain file name in the directory"),
                        ))
                    }
                    None => find_file(&files, &e.content_key).ok_or_else(|| {
                        DataDirError::new(
                            &manifest_path,
                            format!("no file for contentKey {:?}", e.content_key),
                        )
                    })?,
                };
                if !is_content_key(&e.content_key) {
                    return Err(DataDirError::new(
                        &manifest_path,
                        format!("invalid contentKey {:?}", e.content_key),
                    ));
                }
                let mut item = file_item(&file, e.content_key, e.kind, e.content_type)?;
                if let Some(lm) = e.last_modified {
                    item.state.last_modified = lm;
                }
                item.owning_agent = e.owning_agent.map(|r| r.id);
                item.owning_interaction_plan = e.owning_interaction_plan.map(|r| r.id);
                item.properties = e.properties;
                item.extra = e.extra;
                push_unique(&mut items, item, &file);
            }
        }
        None => {
            for file in &files {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !is_content_key(&stem) {
                    tracing::warn!(file = %file.display(), "data dir: file name is not a valid content key, skipped");
                    continue;
                }
                let item = file_item(file, stem, None, None)?;
                push_unique(&mut items, item, file);
            }
        }
    }
    if items.is_empty() {
        tracing::warn!(dir = %dir.display(), "data dir: interaction without content, skipped");
        return Ok(None);
    }
    let start = match manifest.start {
        Some(s) => s,
        None => items
            .iter()
            .map(|i| i.state.last_modified)
            .min()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    };
    Ok(Some(Record {
        id: 0,
        guid,
        start,
        connect_from: manifest.connect_from,
        connect_to: manifest.connect_to,
        direction: manifest.direction,
        agents: manifest.handling_agents.into_iter().map(|r| r.id).collect(),
        extra: manifest.extra,
        items,
    }))
}

fn push_unique(items: &mut Vec<Item>, item: Item, file: &Path) {
    if items.iter().any(|i| i.key.eq_ignore_ascii_case(&item.key)) {
        tracing::warn!(file = %file.display(), key = %item.key, "data dir: duplicate content key, skipped");
    } else {
        items.push(item);
    }
}

/// The file named `key` or `key.<ext>`.
fn find_file(files: &[PathBuf], key: &str) -> Option<PathBuf> {
    files
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == key))
        .or_else(|| {
            files
                .iter()
                .find(|p| p.file_stem().is_some_and(|s| s == key))
        })
        .cloned()
}

/// An item served from `file`.
fn file_item(
    file: &Path,
    key: String,
    kind: Option<String>,
    content_type: Option<String>,
) -> Result<Item, DataDirError> {
    let meta = fs::metadata(file).map_err(|e| DataDirError::new(file, e))?;
    let content_type = match content_type {
        Some(ct) => ct,
        None => guess_content_type(file)?,
    };
    let kind = kind.unwrap_or_else(|| guess_kind(&key, &content_type));
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let last_modified = OffsetDateTime::from(mtime)
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let seed = {
        let mut h = Fnv::new();
        h.write(file.as_os_str().as_encoded_bytes());
        h.finish()
    };
    Ok(Item::new(
        key,
        kind,
        content_type,
        Regen::Xor,
        seed,
        last_modified,
        ContentSource::File {
            file: Arc::new(FileSource {
                path: file.to_path_buf(),
                len: meta.len(),
            }),
            xor: 0,
        },
    ))
}

/// The content type named by `key`, or one guessed from the media type.
fn guess_kind(key: &str, content_type: &str) -> String {
    if let Some(k) = KINDS.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return (*k).to_string();
    }
    if key.to_ascii_lowercase().starts_with("voicemail-") {
        return "voicemail".into();
    }
    match content_type.split('/').next() {
        Some("audio") => "callRecording",
        Some("video") => "screenRecording",
        _ => "attachment",
    }
    .into()
}

/// Media type from the extension, else from the first bytes.
fn guess_content_type(file: &Path) -> Result<String, DataDirError> {
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let by_ext = match ext.as_str() {
        "wav" => Some("audio/wav"),
        "mp3" => Some("audio/mpeg"),
        "ogg" | "oga" | "opus" => Some("audio/ogg"),
        "m4a" => Some("audio/mp4"),
        "webm" => Some("video/webm"),
        "mp4" => Some("video/mp4"),
        "json" => Some("application/json"),
        "txt" | "log" => Some("text/plain"),
        "csv" => Some("text/csv"),
        "html" | "htm" => Some("text/html"),
        "pdf" => Some("application/pdf"),
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        _ => None,
    };
    if let Some(ct) = by_ext {
        return Ok(ct.into());
    }
    let mut head = [0u8; 12];
    let n = fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| DataDirError::new(file, e))?;
    let head = &head[..n];
    Ok(sniff(head).into())
}

/// Media type from magic bytes.
fn sniff(head: &[u8]) -> &'static str {
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        "audio/wav"
    } else if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        "video/webm"
    } else if head.starts_with(b"%PDF") {
        "application/pdf"
    } else if head.starts_with(b"\x89PNG") {
        "image/png"
    } else if head.starts_with(b"ID3") || head.starts_with(&[0xff, 0xfb]) {
        "audio/mpeg"
    } else if head.first().is_some_and(|b| *b == b'{' || *b == b'[') {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// A stable GUID for a directory whose name is not one.
fn derived_guid(name: &str) -> String {
    let mut a = Fnv::new();
    a.write(name.as_bytes());
    let mut b = Fnv::new();
    b.write(b"vccfs-data-dir:");
    b.write(name.as_bytes());
    let h = format!("{:016x}{:016x}", a.finish(), b.finish());
    format!(
        "{}-{}-5{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_plain_and_manifest_dirs() {
        let root = tempfile::tempdir().expect("tempdir");
        let a = root.path().join("2480fc2c-bbd7-427c-9439-02f76583aef5");
        fs::create_dir(&a).expect("mkdir");
        fs::write(a.join("callRecording.wav"), b"RIFF\0\0\0\0WAVEdata").expect("write");
        fs::write(a.join("notes.txt"), b"hello").expect("write");
        let b = root.path().join("my call");
        fs::create_dir(&b).expect("mkdir");
        fs::write(b.join("rec.bin"), b"RIFF\0\0\0\0WAVE").expect("write");
        fs::write(
            b.join(MANIFEST),
            br#"{"start":"2024-05-01T10:00:00Z","direction":"inbound","handlingAgents":[{"id":"7"}],
                "content":[{"contentKey":"voicemail-7","file":"rec.bin","owningAgent":{"id":"7"}}],
                "custom":1}"#,
        )
        .expect("write");
        fs::create_dir(root.path().join("empty")).expect("mkdir");
        let t = load(root.path()).expect("load");
        assert_eq!(t.len(), 2);
        let i = t
            .interaction("2480fc2c-bbd7-427c-9439-02f76583aef5")
            .expect("a");
        let rec = i.item("callRecording").expect("rec");
        assert_eq!(rec.kind, "callRecording");
        assert_eq!(rec.content_type, "audio/wav");
        assert_eq!(rec.content_length, Some(16));
        assert_eq!(i.item("notes").map(|c| c.kind.as_str()), Some("attachment"));
        let other = t
            .interactions()
            .into_iter()
            .find(|i| i.guid != "2480fc2c-bbd7-427c-9439-02f76583aef5")
            .expect("b");
        assert!(is_guid(&other.guid));
        assert_eq!(other.extra.get("custom"), Some(&Value::from(1)));
        let vm = other.item("voicemail-7").expect("vm");
        assert_eq!(vm.kind, "voicemail");
        assert_eq!(vm.content_type, "audio/wav");
        assert_eq!(vm.owning_agent.as_ref().map(|r| r.id.as_str()), Some("7"));
        assert_eq!(
            t.bytes(&other.guid, "voicemail-7").map(|b| b.len()),
            Some(12)
        );
    }

    #[test]
    fn bad_manifest_is_an_error_with_its_path() {
        let root = tempfile::tempdir().expect("tempdir");
        let a = root.path().join("x");
        fs::create_dir(&a).expect("mkdir");
        fs::write(a.join(MANIFEST), b"{not json").expect("write");
        let err = load(root.path()).expect_err("error");
        assert!(err.path.ends_with(MANIFEST));
        assert!(load(&root.path().join("missing")).is_err());
    }
}
