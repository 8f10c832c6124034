//! One synthetic interaction, built from the seed and its index: about 75% are calls
//! (recording, transcript, analysis, sometimes voicemail, IVR audio, screen/video
//! recordings, summaries, logs, attachments), 25% chats (chat transcript, sometimes
//! attachments). Media bodies are procedural; JSON and text bodies are generated when
//! first read (their length needs them) and dropped with the record.

use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::Map;
use time::OffsetDateTime;

use super::super::media::WebmBody;
use super::super::record::{mix, Item, Record, Regen};
use super::super::source::{ContentSource, Generator};
use super::super::text::{self, AttachmentKind, Conversation};
use super::Synthetic;

/// A random version-4 UUID string (content keys, interaction plans).
pub(super) fn guid(rng: &mut SmallRng) -> String {
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
        let source = regen
            .source(seed)
            .unwrap_or_else(|| ContentSource::Memory(Bytes::new()));
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

fn force(i: u64) -> Force {
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

/// Interaction number `i` of `t`: a pure function of the seed and `i` (and of the
/// span, for its start).
pub(super) fn interaction(t: &Synthetic, i: u64) -> Record {
    let seed = mix(t.seed, i);
    let mut rng = SmallRng::seed_from_u64(seed);
    let guid = t.codec.guid(i);
    let start = ts(t.timeline.start(i));
    let chat = i % 4 == 3;
    let f = force(i);
    let inbound = chat || f.ivr || rng.random_bool(0.65);
    let n_agents = match rng.random_range(0..100) {
        0..=69 => 1,
        70..=91 => 2,
        _ => 3,
    };
    let handling: Vec<String> = t
        .agents
        .choose_multiple(&mut rng, n_agents)
        .cloned()
        .collect();
    let secs = if let Some((_, secs)) = t.long_call.filter(|&(at, _)| at == i) {
        secs
    } else if chat {
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
        call_items(&mut m, &conv, &f, inbound, &handling, &t.plans);
    }
    let mut items = m.items;
    if let Some(big) = t.big.as_ref().filter(|b| b.index == i) {
        items.push(big_file(t.seed, big.len, &items, start));
    }
    Record {
        id: i,
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

/// The key of the `--big-file-mib` screen recording.
pub(super) fn big_file_key(seed: u64) -> String {
    guid(&mut SmallRng::seed_from_u64(mix(seed, 0xb16f)))
}

/// The `--big-file-mib` screen recording of `len` bytes, last modified with the
/// interaction's latest item.
fn big_file(seed: u64, len: u64, items: &[Item], start: OffsetDateTime) -> Item {
    let body_seed = mix(seed, 0x0b16_f11e);
    let last_modified = items
        .iter()
        .map(|i| i.state.last_modified)
        .max()
        .unwrap_or(start);
    Item::new(
        big_file_key(seed),
        "screenRecording".into(),
        "video/webm".into(),
        Regen::Webm { len },
        body_seed,
        last_modified,
        ContentSource::Procedural(Arc::new(WebmBody::new(body_seed, len))),
    )
}
