//! The synthetic tenant: `--interactions N` interactions spread over the `--days D` days
//! before the anchor (process start rounded down to the hour), deterministic from
//! `--seed`. About 75% are calls (recording, transcript, analysis, sometimes voicemail,
//! IVR audio, screen/video recordings, summaries, logs, attachments), 25% chats (chat
//! transcript, sometimes attachments). Media bodies are procedural; JSON and text bodies
//! are generated once and held once.

use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::Map;
use time::OffsetDateTime;

use super::media::{Body, WavBody, WebmBody};
use super::source::ContentSource;
use super::tenant::{mix, Generator, Item, Record, Regen, Tenant};
use super::text::{self, AttachmentKind, Conversation};

/// What to generate.
#[derive(Clone, Debug)]
pub(crate) struct SyntheticSpec {
    pub seed: u64,
    pub interactions: usize,
    pub days: u32,
    pub big_file_mib: Option<u64>,
    /// "Now": every interaction starts (and its content was last modified) before it.
    pub anchor: OffsetDateTime,
}

/// The current time rounded down to the hour: an emulator restarted within the hour
/// with the same flags serves the same tenant.
pub(crate) fn hour_anchor() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    OffsetDateTime::from_unix_timestamp(now - now.rem_euclid(3600))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Numeric agent ids of the contact center.
fn agent_pool(seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(mix(seed, 0xa9e7));
    let mut ids: Vec<String> = Vec::new();
    while ids.len() < 24 {
        let id = rng.random_range(1000..9999).to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// Interaction plans (IVR flows) owning IVR recordings.
fn plan_pool(seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(mix(seed, 0x91a2));
    (0..4).map(|_| guid(&mut rng)).collect()
}

/// A random version-4 UUID string.
fn guid(rng: &mut SmallRng) -> String {
    const VERSION_MASK: u128 = 0xf << 76;
    const VERSION_4: u128 = 0x4 << 76;
    const VARIANT_MASK: u128 = 0x3 << 62;
    const VARIANT_RFC: u128 = 0x2 << 62;
    let a: u128 = rng.random();
    let a = (a & !VERSION_MASK & !VARIANT_MASK) | VERSION_4 | VARIANT_RFC;
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Contact-center numbers customers call and agents call from.
const SERVICE_NUMBERS: &[&str] = &["+442038680100", "+442038680200", "+18005550199"];

fn customer_number(rng: &mut SmallRng) -> String {
    match rng.random_range(0..10) {
        0..=4 => format!("+4420794{:05}", rng.random_range(0..100_000)),
        5..=7 => format!("+447700900{:03}", rng.random_range(0..1000)),
        _ => format!("+1415555{:04}", rng.random_range(100..200)),
    }
}

/// Start time: a random day of the range, mostly during business hours (UTC), at least
/// 30 minutes before the anchor.
fn start_time(rng: &mut SmallRng, anchor: OffsetDateTime, days: u32) -> OffsetDateTime {
    let a = anchor.unix_timestamp();
    let earliest = a - i64::from(days) * 86_400;
    let latest = a - 1800;
    let first_day = earliest - earliest.rem_euclid(86_400);
    for _ in 0..16 {
        let day = rng.random_range(0..=i64::from(days));
        let sec = if rng.random_bool(0.8) {
            rng.random_range(8 * 3600..18 * 3600)
        } else {
            rng.random_range(0..86_400)
        };
        let t = first_day + day * 86_400 + sec;
        if (earliest..latest).contains(&t) {
            return ts(t);
        }
    }
    ts(rng.random_range(earliest..latest.max(earliest + 1)))
}

fn ts(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Builds items of one interaction.
struct ItemMaker<'a> {
    rng: &'a mut SmallRng,
    seed: u64,
    items: Vec<Item>,
    /// When the interaction's content was finalised.
    done: OffsetDateTime,
}

impl ItemMaker<'_> {
    fn push(&mut self, key: String, kind: &str, content_type: &str, regen: Regen) -> &mut Item {
        let seed = mix(self.seed, self.items.len() as u64 + 1);
        let source = match &regen {
            Regen::Wav { secs } => ContentSource::Procedural(Arc::new(WavBody::new(seed, *secs))),
            Regen::Webm { len } => ContentSource::Procedural(Arc::new(WebmBody::new(seed, *len))),
            Regen::Generated(gen) => ContentSource::Memory(Bytes::from(gen(seed))),
            Regen::Xor => ContentSource::Memory(Bytes::new()),
        };
        let last_modified = self.done + time::Duration::seconds(self.rng.random_range(0..120));
        self.items.push(Item::new(
            key,
            kind.to_string(),
            content_type.to_string(),
            regen,
            seed,
            last_modified,
            source,
        ));
        let last = self.items.len() - 1;
        &mut self.items[last]
    }

    fn json(&mut self, key: String, kind: &str, gen: Generator) -> &mut Item {
        self.push(key, kind, "application/json", Regen::Generated(gen))
    }
}

/// Forced features of the first interactions, so that even a small tenant has every
/// content kind the API documents.
#[derive(Default)]
struct Force {
    voicemail_guid: bool,
    voicemail_old: bool,
    ivr: bool,
    screen: bool,
    video: bool,
    extras: bool,
    attachment: bool,
}

fn force(i: usize) -> Force {
    let mut f = Force::default();
    match i {
        0 => f.voicemail_guid = true,
        1 => f.voicemail_old = true,
        2 => f.ivr = true,
        3 | 8 => f.attachment = true,
        4 => f.screen = true,
        5 => f.video = true,
        6 => f.extras = true,
        _ => {}
    }
    f
}

/// Generates the tenant.
pub(crate) fn generate(spec: &SyntheticSpec) -> Tenant {
    let agents = agent_pool(spec.seed);
    let plans = plan_pool(spec.seed);
    let mut records: Vec<Record> = (0..spec.interactions)
        .map(|i| interaction(spec, i, &agents, &plans))
        .collect();
    let big_file = spec
        .big_file_mib
        .and_then(|mib| add_big_file(spec, &mut records, mib));
    Tenant::new(records, spec.anchor, big_file)
}

/// Interaction number `i`.
fn interaction(spec: &SyntheticSpec, i: usize, agents: &[String], plans: &[String]) -> Record {
    let seed = mix(spec.seed, i as u64);
    let mut rng = SmallRng::seed_from_u64(seed);
    let guid = guid(&mut rng);
    let start = start_time(&mut rng, spec.anchor, spec.days);
    let chat = i % 4 == 3;
    let f = force(i);
    let inbound = chat || f.ivr || rng.random_bool(0.65);
    let n_agents = match rng.random_range(0..100) {
        0..=69 => 1,
        70..=91 => 2,
        _ => 3,
    };
    let handling: Vec<String> = agents
        .choose_multiple(&mut rng, n_agents)
        .cloned()
        .collect();
    let secs = if chat {
        rng.random_range(240..1800)
    } else {
        // 30 s .. 6 min, most calls short.
        let x: f64 = rng.random();
        30 + (x * x * 330.0) as u32
    };
    let conv = Arc::new(Conversation::new(
        guid.clone(),
        start,
        secs,
        handling.clone(),
        chat,
        mix(seed, 0x7e47),
    ));
    let (connect_from, connect_to) = if chat {
        (
            conv.customer_handle(),
            "webchat@northwind.example".to_string(),
        )
    } else {
        let ours = SERVICE_NUMBERS.choose(&mut rng).copied().unwrap_or("22222");
        let theirs = customer_number(&mut rng);
        if inbound {
            (theirs, ours.to_string())
        } else {
            (ours.to_string(), theirs)
        }
    };
    let done = start
        + time::Duration::seconds(i64::from(secs))
        + time::Duration::seconds(rng.random_range(60..600));
    let mut m = ItemMaker {
        rng: &mut rng,
        seed,
        items: Vec::new(),
        done,
    };
    if chat {
        chat_items(&mut m, &conv, &f);
    } else {
        call_items(&mut m, &conv, &f, inbound, &handling, plans);
    }
    let items = m.items;
    Record {
        guid,
        start,
        connect_from: Some(connect_from),
        connect_to: Some(connect_to),
        direction: Some(if inbound { "inbound" } else { "outbound" }.to_string()),
        agents: handling,
        extra: Map::new(),
        items,
    }
}

fn gen<F>(f: F) -> Generator
where
    F: Fn(u64) -> Vec<u8> + Send + Sync + 'static,
{
    Arc::new(f)
}

fn call_items(
    m: &mut ItemMaker<'_>,
    conv: &Arc<Conversation>,
    f: &Force,
    inbound: bool,
    agents: &[String],
    plans: &[String],
) {
    m.push(
        "callRecording".into(),
        "callRecording",
        "audio/wav",
        Regen::Wav { secs: conv.secs },
    );
    if m.rng.random_bool(0.85) || f.extras {
        let c = conv.clone();
        m.json(
            "transcript".into(),
            "transcript",
            gen(move |s| text::transcript(&c, s)),
        );
        if m.rng.random_bool(0.85) || f.extras {
            let c = conv.clone();
            m.json(
                "categorizationResult".into(),
                "categorizationResult",
                gen(move |s| text::categorization(&c, s)),
            );
        }
        if m.rng.random_bool(0.6) || f.extras {
            let c = conv.clone();
            m.json(
                "sentimentSummary".into(),
                "sentimentSummary",
                gen(move |s| text::sentiment(&c, s)),
            );
        }
    }
    let voicemail = f.voicemail_guid || f.voicemail_old || (inbound && m.rng.random_bool(0.08));
    if voicemail {
        let agent = agents.first().cloned().unwrap_or_else(|| "1000".into());
        let old_key = f.voicemail_old || (!f.voicemail_guid && m.rng.random_bool(0.4));
        let key = if old_key {
            format!("voicemail-{agent}")
        } else {
            guid(m.rng)
        };
        let secs = m.rng.random_range(8..90);
        m.push(key, "voicemail", "audio/wav", Regen::Wav { secs })
            .owning_agent = Some(agent);
    }
    if f.ivr || (inbound && m.rng.random_bool(0.15)) {
        let plan = plans.choose(m.rng).cloned().unwrap_or_default();
        let key = guid(m.rng);
        let secs = m.rng.random_range(4..40);
        m.push(key, "ivrAudioRecording", "audio/wav", Regen::Wav { secs })
            .owning_interaction_plan = Some(plan);
    }
    if f.screen || m.rng.random_bool(0.12) {
        let key = guid(m.rng);
        let len = m.rng.random_range(100 * 1024..3 * 1024 * 1024);
        m.push(key, "screenRecording", "video/webm", Regen::Webm { len });
    }
    if f.video || m.rng.random_bool(0.04) {
        let key = guid(m.rng);
        let len = m.rng.random_range(100 * 1024..3 * 1024 * 1024);
        m.push(key, "videoRecording", "video/webm", Regen::Webm { len });
    }
    common_items(m, conv, f, inbound);
}

fn chat_items(m: &mut ItemMaker<'_>, conv: &Arc<Conversation>, f: &Force) {
    let key = guid(m.rng);
    let c = conv.clone();
    m.json(
        key,
        "chatTranscript",
        gen(move |s| text::chat_transcript(&c, s)),
    );
    if m.rng.random_bool(0.3) {
        attachment(m, conv);
    }
    common_items(m, conv, f, true);
}

fn common_items(m: &mut ItemMaker<'_>, conv: &Arc<Conversation>, f: &Force, inbound: bool) {
    if f.extras || m.rng.random_bool(0.25) {
        let key = guid(m.rng);
        let c = conv.clone();
        m.json(
            key,
            "conversationSummary",
            gen(move |s| text::conversation_summary(&c, s)),
        );
    }
    if f.extras || m.rng.random_bool(0.2) {
        let key = guid(m.rng);
        let c = conv.clone();
        m.json(
            key,
            "interactionLog",
            gen(move |s| text::interaction_log(&c, inbound, s)),
        );
    }
    if f.attachment || m.rng.random_bool(0.05) {
        attachment(m, conv);
    }
}

fn attachment(m: &mut ItemMaker<'_>, conv: &Arc<Conversation>) {
    let key = guid(m.rng);
    let kind = AttachmentKind::pick(m.rng);
    let c = conv.clone();
    m.push(
        key,
        "attachment",
        kind.content_type(),
        Regen::Generated(gen(move |s| text::attachment(&c, kind, s))),
    );
}

/// Adds a screen recording of exactly `mib` MiB to the newest call; returns its
/// `(guid, contentKey)`.
fn add_big_file(
    spec: &SyntheticSpec,
    records: &mut [Record],
    mib: u64,
) -> Option<(String, String)> {
    let rec = records
        .iter_mut()
        .filter(|r| r.items.iter().any(|i| i.kind == "callRecording"))
        .max_by(|a, b| a.start.cmp(&b.start).then_with(|| a.guid.cmp(&b.guid)))?;
    let mut rng = SmallRng::seed_from_u64(mix(spec.seed, 0xb16f));
    let key = guid(&mut rng);
    let len = mib.saturating_mul(1024 * 1024);
    let seed = mix(spec.seed, 0x0b16_f11e);
    let body = WebmBody::new(seed, len);
    let last_modified = rec
        .items
        .iter()
        .map(|i| i.state.read().last_modified)
        .max()
        .unwrap_or(rec.start);
    tracing::debug!(guid = %rec.guid, len = body.len(), "big file");
    rec.items.push(Item::new(
        key.clone(),
        "screenRecording".into(),
        "video/webm".into(),
        Regen::Webm { len },
        seed,
        last_modified,
        ContentSource::Procedural(Arc::new(body)),
    ));
    Some((rec.guid.clone(), key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn spec(n: usize) -> SyntheticSpec {
        SyntheticSpec {
            seed: 42,
            interactions: n,
            days: 30,
            big_file_mib: Some(2),
            anchor: ts(1_700_002_800),
        }
    }

    #[test]
    fn deterministic_and_complete() {
        let started = std::time::Instant::now();
        let a = generate(&spec(300));
        assert!(
            started.elapsed().as_secs_f64() < 2.0,
            "{:?}",
            started.elapsed()
        );
        let b = generate(&spec(300));
        assert_eq!(a.len(), 300);
        assert_eq!(
            serde_json::to_string(&a.interactions()).ok(),
            serde_json::to_string(&b.interactions()).ok()
        );
        let kinds: BTreeSet<String> = a
            .interactions()
            .iter()
            .flat_map(|i| i.content.iter().map(|c| c.kind.clone()))
            .collect();
        for k in [
            "callRecording",
            "transcript",
            "categorizationResult",
            "sentimentSummary",
            "voicemail",
            "ivrAudioRecording",
            "screenRecording",
            "videoRecording",
            "conversationSummary",
            "interactionLog",
            "attachment",
            "chatTranscript",
        ] {
            assert!(kinds.contains(k), "missing {k}");
        }
        let old_vm = a
            .interactions()
            .iter()
            .flat_map(|i| i.content.clone())
            .any(|c| c.content_key.starts_with("voicemail-") && c.owning_agent.is_some());
        assert!(old_vm);
    }

    #[test]
    fn lengths_match_bodies_and_times_precede_anchor() {
        let t = generate(&spec(40));
        for i in t.interactions() {
            assert!(i.start < t.anchor());
            assert!(crate::model::is_guid(&i.guid));
            assert_eq!(i.start.nanosecond(), 0);
            for c in &i.content {
                let bytes = t.bytes(&i.guid, &c.content_key).expect("bytes");
                assert_eq!(Some(bytes.len() as u64), c.content_length);
                assert!(c.last_modified.expect("lm") > i.start);
            }
        }
        let (g, k) = t.big_file().expect("big file");
        assert_eq!(
            t.item(&g, &k).and_then(|c| c.content_length),
            Some(2 * 1024 * 1024)
        );
        let newest_call = t
            .interactions()
            .into_iter()
            .filter(|i| i.content.iter().any(|c| c.kind == "callRecording"))
            .max_by_key(|i| i.start)
            .expect("a call");
        assert_eq!(newest_call.guid, g);
    }
}
