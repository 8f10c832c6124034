//! Names of the views (`calls/`, `by-agent/`, `by-number/`): what a call's directory,
//! its files and the agent and number directories are called. Pure functions of what
//! the listing says, so a name is the same on every host and across remounts.
//!
//! Invariants:
//! - **Safe names.** A name holds only ASCII letters, digits and `-_.+@,=` (anything
//!   else, `/`, control characters, spaces, shell metacharacters and non-ASCII
//!   included, is `_`), is never empty, `.` or `..`, and is at most [`NAME_CAP`]
//!   bytes before a collision suffix; each template field is cut at [`FIELD_MAX`]
//!   bytes. A missing (or empty) field is `-`.
//! - **`~` only marks collisions.** `~` is never in a sanitised name, so the
//!   suffixes `~2`, `~3`, ... that [`unique`] adds cannot collide with another name.
//! - **Deterministic.** [`unique`] takes names in the order it is given (the caller
//!   orders calls by start time, then guid): the first keeps the plain name.
//! - **Extensions from a maintained MIME table** (`mime_guess`), never a table of our
//!   own: the canonical extension is the subtype itself when the table has it
//!   (`wav`, `json`, `webm`, `mp4`), else the one that maps back to the same type,
//!   then the shortest, then the first alphabetically; `x-` subtypes fall back to
//!   the type without `x-` (`audio/x-wav` is `.wav`); unknown types get none.

use std::collections::HashMap;

use time::OffsetDateTime;

/// Longest a template field is, in bytes, after sanitising.
pub const FIELD_MAX: usize = 64;
/// Longest a name is before a collision suffix (well under `NAME_MAX`, 255).
pub const NAME_CAP: usize = 240;
/// A missing field.
pub const MISSING: &str = "-";
/// The metadata file inside a call's directory.
pub const CALL_META: &str = "interaction.json";
/// The default `--calls-name`.
pub const DEFAULT_TEMPLATE: &str = "{time}_{direction}_{from}_{to}_{agent}_{guid8}";

const FIELDS: &str = "{date} {time} {direction} {from} {to} {agent} {guid} {guid8}";

/// Why a `--calls-name` template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("--calls-name: unknown field {{{0}}} (fields: {FIELDS})")]
    Unknown(String),
    #[error("--calls-name: a `{{` is not closed")]
    Unclosed,
    #[error("--calls-name: no field (fields: {FIELDS})")]
    NoField,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Date,
    Time,
    Direction,
    From,
    To,
    Agent,
    Guid,
    Guid8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
}

/// A parsed `--calls-name`: literal text (sanitised) and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a call's name is made of (as the listing has it).
#[derive(Debug, Clone, Copy)]
pub struct CallFields<'a> {
    pub start: OffsetDateTime,
    pub direction: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub guid: &'a str,
}

impl Default for Template {
    fn default() -> Template {
        Template::parse(DEFAULT_TEMPLATE).unwrap_or(Template { parts: Vec::new() })
    }
}

impl Template {
    /// Parse `{field}` placeholders; anything else is literal text.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(sanitize_text(&rest[..open])));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or(TemplateError::Unclosed)?;
            let field = match &after[..close] {
                "date" => Field::Date,
                "time" => Field::Time,
                "direction" => Field::Direction,
                "from" => Field::From,
                "to" => Field::To,
                "agent" => Field::Agent,
                "guid" => Field::Guid,
                "guid8" => Field::Guid8,
                other => return Err(TemplateError::Unknown(other.to_string())),
            };
            parts.push(Part::Field(field));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(sanitize_text(rest)));
        }
        if !parts.iter().any(|p| matches!(p, Part::Field(_))) {
            return Err(TemplateError::NoField);
        }
        Ok(Template { parts })
    }

    /// The name of a call (before collisions are resolved).
    pub fn expand(&self, c: &CallFields<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(&field(*f, c)),
            }
        }
        finish(out)
    }
}

fn field(f: Field, c: &CallFields<'_>) -> String {
    let two = |n: u8| format!("{n:02}");
    match f {
        Field::Date => {
            let d = c.start.date();
            format!("{:04}-{}-{}", d.year(), two(d.month().into()), two(d.day()))
        }
        Field::Time => format!(
            "{}-{}-{}",
            two(c.start.hour()),
            two(c.start.minute()),
            two(c.start.second())
        ),
        Field::Direction => sanitize(c.direction.map(str::to_ascii_lowercase).as_deref()),
        Field::From => sanitize(c.from),
        Field::To => sanitize(c.to),
        Field::Agent => sanitize(c.agent),
        Field::Guid => sanitize(Some(c.guid)),
        Field::Guid8 => {
            let hex: String = c
                .guid
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(8)
                .collect();
            sanitize(Some(&hex))
        }
    }
}

fn safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.+@,=".contains(c)
}

fn sanitize_text(s: &str) -> String {
    s.chars().map(|c| if safe(c) { c } else { '_' }).collect()
}

/// One field: `-` when missing or empty, unsafe characters `_`, cut at [`FIELD_MAX`].
pub fn sanitize(s: Option<&str>) -> String {
    match s {
        None | Some("") => MISSING.to_string(),
        Some(s) => {
            let mut out = sanitize_text(s);
            out.truncate(FIELD_MAX);
            out
        }
    }
}

/// A whole name: cut at [`NAME_CAP`], never empty, `.` or `..`.
fn finish(mut name: String) -> String {
    name.truncate(NAME_CAP);
    if name.is_empty() || name.chars().all(|c| c == '.') {
        name = name.replace('.', "_");
        if name.is_empty() {
            name.push('_');
        }
    }
    name
}

/// The directory name of an agent id or a number (`None` when it has none).
pub fn dir_name(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| finish(sanitize(Some(s))))
}

/// `names` made unique in the order given: the first of a name keeps it, later ones
/// get `~2`, `~3`, ...
pub fn unique(names: Vec<String>) -> Vec<String> {
    let mut seen: HashMap<String, u32> = HashMap::with_capacity(names.len());
    names
        .into_iter()
        .map(|n| {
            let count = seen.entry(n.clone()).or_insert(0);
            *count += 1;
            match *count {
                1 => n,
                k => format!("{n}~{k}"),
            }
        })
        .collect()
}

/// The extension (with its dot) of files of `content_type`, if the MIME table knows it.
pub fn extension(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let (top, sub) = essence.split_once('/')?;
    let pick = |sub: &str| {
        let exts = mime_guess::get_extensions(top, sub)?;
        let own = format!("{top}/{sub}");
        exts.iter()
            .copied()
            .filter(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .min_by_key(|e| {
                let maps_back = mime_guess::from_ext(e).first_raw() == Some(own.as_str());
                (*e != sub, !maps_back, e.len(), *e)
            })
    };
    let ext = pick(sub).or_else(|| sub.strip_prefix("x-").and_then(pick))?;
    Some(format!(".{ext}"))
}

/// The names of a call's files, in the API's order: `<type><ext>`, or `<type>-1<ext>`,
/// `<type>-2<ext>`, ... when the call has several of one type; made unique (and
/// never [`CALL_META`]). `items` are `(type, contentType)`.
pub fn file_names<'a>(items: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Vec<String> {
    let mut of_type: HashMap<String, u32> = HashMap::new();
    for (kind, _) in items.clone() {
        *of_type.entry(sanitize(Some(kind))).or_insert(0) += 1;
    }
    let mut nth: HashMap<String, u32> = HashMap::new();
    let names: Vec<String> = items
        .map(|(kind, content_type)| {
            let kind = sanitize(Some(kind));
            let ext = extension(content_type).unwrap_or_default();
            let name = match of_type.get(&kind).copied().unwrap_or(0) {
                0 | 1 => format!("{kind}{ext}"),
                _ => {
                    let n = nth.entry(kind.clone()).or_insert(0);
                    *n += 1;
                    format!("{kind}-{n}{ext}")
                }
            };
            finish(name)
        })
        .collect();
    // The metadata file's name is taken first: a content file named like it moves.
    let mut all = vec![CALL_META.to_string()];
    all.extend(names);
    let mut out = unique(all);
    out.remove(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn call<'a>() -> CallFields<'a> {
        CallFields {
            start: datetime!(2026-11-20 09:05:07.250 UTC),
            direction: Some("Inbound"),
            from: Some("+14155550183"),
            to: Some("+442038680100"),
            agent: Some("7990"),
            guid: "2480fc2c-bbd7-427c-9439-02f76583aef5",
        }
    }

    #[test]
    fn the_default_name_has_every_field() {
        let t = Template::default();
        assert_eq!(
            t.expand(&call()),
            "09-05-07_inbound_+14155550183_+442038680100_7990_2480fc2c"
        );
        let none = CallFields {
            direction: None,
            from: Some(""),
            to: None,
            agent: None,
            ..call()
        };
        assert_eq!(t.expand(&none), "09-05-07_-_-_-_-_2480fc2c");
    }

    #[test]
    fn templates_parse_and_refuse() {
        let t = Template::parse("{date}_{agent} {guid}/x").expect("template");
        assert_eq!(
            t.expand(&call()),
            "2026-11-20_7990_2480fc2c-bbd7-427c-9439-02f76583aef5_x"
        );
        assert_eq!(
            Template::parse("{nope}"),
            Err(TemplateError::Unknown("nope".into()))
        );
        assert_eq!(Template::parse("{date"), Err(TemplateError::Unclosed));
        assert_eq!(Template::parse("plain"), Err(TemplateError::NoField));
        assert!(Template::parse("{to}").is_ok());
    }

    #[test]
    fn fields_are_sanitised_and_cut() {
        let nasty = "a/b c;$(rm)\n\u{e9}'\"*?~`|&<>";
        assert_eq!(sanitize(Some(nasty)), "a_b_c___rm_____________");
        assert_eq!(
            sanitize(Some("sip:alice@example.com")),
            "sip_alice@example.com"
        );
        let long = "9".repeat(100);
        assert_eq!(sanitize(Some(&long)).len(), FIELD_MAX);
        let t = Template::parse("{agent}").expect("template");
        let dots = CallFields {
            agent: Some(".."),
            ..call()
        };
        assert_eq!(t.expand(&dots), "__");
        assert_eq!(dir_name(".."), Some("__".into()));
        assert_eq!(dir_name("a/b"), Some("a_b".into()));
        assert_eq!(dir_name(""), None);
        // A whole name stays under NAME_MAX even with long literal text.
        let t = Template::parse(&format!("{}{{guid}}", "x".repeat(300))).expect("t");
        assert_eq!(t.expand(&call()).len(), NAME_CAP);
    }

    #[test]
    fn collisions_get_numbered_in_order() {
        let names = ["a", "b", "a", "a", "b"].map(String::from).to_vec();
        assert_eq!(unique(names), ["a", "b", "a~2", "a~3", "b~2"]);
        // `~` never survives sanitising, so a suffix cannot meet a real name.
        assert_eq!(sanitize(Some("a~2")), "a_2");
    }

    #[test]
    fn extensions_come_from_the_mime_table() {
        let ext = |t: &str| extension(t);
        assert_eq!(ext("audio/wav").as_deref(), Some(".wav"));
        assert_eq!(ext("audio/x-wav").as_deref(), Some(".wav"));
        assert_eq!(ext("application/json").as_deref(), Some(".json"));
        assert_eq!(
            ext("application/json; charset=utf-8").as_deref(),
            Some(".json")
        );
        assert_eq!(ext("video/webm").as_deref(), Some(".webm"));
        assert_eq!(ext("Video/WebM").as_deref(), Some(".webm"));
        assert_eq!(ext("video/mp4").as_deref(), Some(".mp4"));
        // Ambiguous in the table: deterministic, if not what a person would pick.
        assert_eq!(ext("audio/mpeg").as_deref(), Some(".m2a"));
        let plain = ext("text/plain").expect("an extension");
        assert_eq!(
            mime_guess::from_ext(&plain[1..]).first_raw(),
            Some("text/plain")
        );
        assert_eq!(ext("application/x-unknown-thing"), None);
        assert_eq!(ext("nonsense"), None);
        assert_eq!(ext(""), None);
    }

    #[test]
    fn file_names_number_repeated_types_in_api_order() {
        let items = [
            ("callRecording", "audio/wav"),
            ("screenRecording", "video/webm"),
            ("transcript", "application/json"),
            ("screenRecording", "video/webm"),
            ("attachment", "application/x-unknown-thing"),
            ("interaction", "application/json"),
            ("a/b", "audio/wav"),
        ];
        assert_eq!(
            file_names(items.iter().copied()),
            [
                "callRecording.wav",
                "screenRecording-1.webm",
                "transcript.json",
                "screenRecording-2.webm",
                "attachment",
                "interaction.json~2",
                "a_b.wav",
            ]
        );
    }
}
