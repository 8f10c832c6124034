//! Deterministic text for the synthetic tenant: call transcripts, chat transcripts,
//! Conversation Analyzer results, sentiment and AI summaries, interaction logs and
//! attachments. Each conversation is about one or two [`Topic`]s whose words appear
//! only in conversations about them, so `grep -l refund` finds some files and not others.

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

mod documents;
mod topics;

pub(crate) use documents::{
    attachment, categorization, chat_transcript, conversation_summary, interaction_log, sentiment,
    transcript, AttachmentKind,
};
pub(crate) use topics::{Topic, COMPANY, TOPICS};
use topics::{DAYS, FILLERS_AGENT, FILLERS_CUSTOMER, FIRST_NAMES, LAST_NAMES, POSTCODES, PRODUCTS};

/// The people and subjects of one conversation; a fixed part of each interaction, so
/// that every generated document about it tells the same story.
#[derive(Clone, Debug)]
pub(crate) struct Conversation {
    pub guid: String,
    pub start: OffsetDateTime,
    /// Length in seconds (of the recording, or of the chat).
    pub secs: u32,
    pub topics: Vec<usize>,
    pub agent_ids: Vec<String>,
    pub agent_name: String,
    pub customer_name: String,
    pub chat: bool,
    /// Seed of the transcript the analysis documents describe.
    pub seed: u64,
}

impl Conversation {
    /// Picks names and one or two topics.
    pub fn new(
        guid: String,
        start: OffsetDateTime,
        secs: u32,
        agent_ids: Vec<String>,
        chat: bool,
        seed: u64,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let first = rng.random_range(0..TOPICS.len());
        let mut topics = vec![first];
        if rng.random_bool(0.35) {
            let second = rng.random_range(0..TOPICS.len());
            if second != first {
                topics.push(second);
            }
        }
        let pick = |rng: &mut SmallRng, list: &[&str]| -> String {
            list.choose(rng).copied().unwrap_or_default().to_string()
        };
        let agent_name = pick(&mut rng, FIRST_NAMES);
        let customer_name = format!(
            "{} {}",
            pick(&mut rng, FIRST_NAMES),
            pick(&mut rng, LAST_NAMES)
        );
        Self {
            guid,
            start,
            secs,
            topics,
            agent_ids,
            agent_name,
            customer_name,
            chat,
            seed,
        }
    }

    /// Email-style handle of the customer (for chats).
    pub fn customer_handle(&self) -> String {
        let mut s = self
            .customer_name
            .to_ascii_lowercase()
            .replace([' ', '\''], ".");
        s.push_str("@example.com");
        s
    }

    fn topics(&self) -> impl Iterator<Item = &'static Topic> + '_ {
        self.topics.iter().filter_map(|&i| TOPICS.get(i))
    }
}

/// Values for the `{slot}`s of one conversation.
struct Slots {
    product: &'static str,
    order: String,
    amount: String,
    day: &'static str,
    ticket: String,
    postcode: &'static str,
    agent: String,
    customer: String,
}

impl Slots {
    fn new(conv: &Conversation, rng: &mut SmallRng) -> Self {
        Self {
            product: PRODUCTS.choose(rng).copied().unwrap_or("parcel"),
            order: format!("NW-{}", rng.random_range(100_000..999_999)),
            amount: format!(
                "£{}.{:02}",
                rng.random_range(4..480),
                rng.random_range(0..100)
            ),
            day: DAYS.choose(rng).copied().unwrap_or("Monday"),
            ticket: format!("CASE-{}", rng.random_range(10_000..99_999)),
            postcode: POSTCODES.choose(rng).copied().unwrap_or("SW1A 1AA"),
            agent: conv.agent_name.clone(),
            customer: conv.customer_name.clone(),
        }
    }

    /// The value of slot `name`, if it is one.
    fn value(&self, name: &str) -> Option<&str> {
        Some(match name {
            "product" => self.product,
            "order" => &self.order,
            "amount" => &self.amount,
            "day" => self.day,
            "ticket" => &self.ticket,
            "postcode" => self.postcode,
            "agent" => &self.agent,
            "customer" => &self.customer,
            "company" => COMPANY,
            _ => return None,
        })
    }

    /// `template` with its `{slot}`s filled in, in one pass (other braces are kept).
    fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after
                .find('}')
                .and_then(|close| Some((close, self.value(&after[..close])?)))
            {
                Some((close, value)) => {
                    out.push_str(value);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// One utterance of a call transcript.
#[derive(Serialize, Clone, Debug)]
pub(crate) struct Utterance {
    pub speaker: &'static str,
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Index into [`TOPICS`] of the line's topic (not serialized).
    #[serde(skip)]
    pub topic: Option<usize>,
}

/// The lines of a conversation in order, with speaker and topic.
fn script(conv: &Conversation, seed: u64) -> Vec<(&'static str, String, Option<usize>)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let slots = Slots::new(conv, &mut rng);
    let mut lines: Vec<(&'static str, String, Option<usize>)> = Vec::new();
    let greeting = if conv.chat {
        "Hi, you're chatting with {agent} at {company}. How can I help?"
    } else {
        "Thank you for calling {company}, you're speaking with {agent}, how can I help?"
    };
    lines.push(("agent", slots.fill(greeting), None));
    let first = conv.topics.first().copied();
    if let Some(t) = first.and_then(|i| TOPICS.get(i)) {
        lines.push(("customer", slots.fill(t.customer[0]), first));
    }
    lines.push((
        "agent",
        slots.fill("Can I take your full name and postcode, please?"),
        None,
    ));
    lines.push((
        "customer",
        slots.fill("Yes, it's {customer}, and the postcode is {postcode}."),
        None,
    ));
    // About one line per 6 seconds of call (chats: per 20 s), at least a few.
    let target = (conv.secs / if conv.chat { 20 } else { 6 }).clamp(8, 90) as usize;
    let mut speaker_agent = true;
    while lines.len() + 3 < target {
        let ti = conv.topics.choose(&mut rng).copied();
        let topic = ti.and_then(|i| TOPICS.get(i));
        let (speaker, pool, fillers) = if speaker_agent {
            ("agent", topic.map(|t| t.agent), FILLERS_AGENT)
        } else {
            ("customer", topic.map(|t| t.customer), FILLERS_CUSTOMER)
        };
        if rng.random_bool(0.25) {
            let f = fillers.choose(&mut rng).copied().unwrap_or("Okay.");
            lines.push((speaker, f.to_string(), None));
        } else if let Some(line) = pool.and_then(|p| p.choose(&mut rng)) {
            lines.push((speaker, slots.fill(line), ti));
        }
        // Mostly alternate; sometimes the same speaker goes on.
        if rng.random_bool(0.85) {
            speaker_agent = !speaker_agent;
        }
    }
    lines.push((
        "agent",
        "Is there anything else I can help you with today?".to_string(),
        None,
    ));
    lines.push((
        "customer",
        "No, that's everything, thank you.".to_string(),
        None,
    ));
    lines.push((
        "agent",
        slots.fill("Thanks for contacting {company}, {customer}. Have a lovely day."),
        None,
    ));
    lines
}

/// The utterances of a call with timings that fit in `conv.secs`.
pub(crate) fn utterances(conv: &Conversation, seed: u64) -> Vec<Utterance> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let lines = script(conv, seed);
    // Natural timings: ~0.38 s per word plus pauses; then squeezed to fit the call.
    let mut raw = Vec::with_capacity(lines.len());
    let mut t = rng.random_range(0.4..1.5);
    for (speaker, text, topic) in lines {
        let words = text.split_whitespace().count() as f64;
        let dur = words * rng.random_range(0.3..0.45) + 0.4;
        raw.push((speaker, t, t + dur, text, topic));
        t += dur + rng.random_range(0.2..2.5);
    }
    let budget = f64::from(conv.secs.max(2)) - 0.5;
    let scale = if t > budget { budget / t } else { 1.0 };
    let round = |x: f64| (x * scale * 10.0).round() / 10.0;
    raw.into_iter()
        .map(|(speaker, s, e, text, topic)| Utterance {
            speaker,
            start: round(s),
            end: round(e),
            text,
            topic,
        })
        .collect()
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    v
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(seed: u64, secs: u32) -> Conversation {
        Conversation::new(
            "2480fc2c-bbd7-427c-9439-02f76583aef5".into(),
            OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("ts"),
            secs,
            vec!["1342".into()],
            false,
            seed,
        )
    }

    #[test]
    fn transcript_is_deterministic_json_that_fits_the_call() {
        let c = conv(3, 95);
        let a = transcript(&c, 11);
        assert_eq!(a, transcript(&c, 11));
        let v: serde_json::Value = serde_json::from_slice(&a).expect("json");
        let arr = v.as_array().expect("array");
        assert!(arr.len() >= 8);
        let last_end = arr.last().and_then(|u| u["end"].as_f64()).expect("end");
        assert!(last_end <= 95.0, "{last_end}");
        assert_ne!(a, transcript(&c, 12));
    }

    #[test]
    fn slots_fill_in_one_pass_as_chained_replaces_did() {
        let c = conv(4, 60);
        let slots = Slots::new(&c, &mut SmallRng::seed_from_u64(9));
        let chained = |t: &str| {
            t.replace("{product}", slots.product)
                .replace("{order}", &slots.order)
                .replace("{amount}", &slots.amount)
                .replace("{day}", slots.day)
                .replace("{ticket}", &slots.ticket)
                .replace("{postcode}", slots.postcode)
                .replace("{agent}", &slots.agent)
                .replace("{customer}", &slots.customer)
                .replace("{company}", COMPANY)
        };
        let templates = TOPICS
            .iter()
            .flat_map(|t| t.customer.iter().chain(t.agent).chain([&t.summary]))
            .copied()
            .chain(["{", "}{", "a {unknown} {day", "{{day}}", "{day}{day}", ""]);
        for t in templates {
            assert_eq!(slots.fill(t), chained(t), "{t}");
        }
    }

    #[test]
    fn topic_words_are_distinctive() {
        let with_refund = (0..60)
            .map(|s| String::from_utf8(transcript(&conv(s, 200), s)).expect("utf8"))
            .filter(|t| t.contains("refund"))
            .count();
        assert!(with_refund > 0 && with_refund < 60, "{with_refund}");
        for t in TOPICS.iter().filter(|t| t.name != "refund") {
            for l in t.customer.iter().chain(t.agent) {
                assert!(!l.contains("refund"), "{l}");
            }
        }
    }

    #[test]
    fn documents_are_valid_json() {
        let c = conv(5, 240);
        for doc in [
            categorization(&c, 1),
            sentiment(&c, 1),
            conversation_summary(&c, 1),
            interaction_log(&c, true, 1),
            chat_transcript(&c, 1),
            attachment(&c, AttachmentKind::Json, 1),
        ] {
            serde_json::from_slice::<serde_json::Value>(&doc).expect("json");
        }
        let p = attachment(&c, AttachmentKind::Pdf, 1);
        assert!(p.starts_with(b"%PDF-1.4") && p.ends_with(b"%%EOF\n"));
    }
}
