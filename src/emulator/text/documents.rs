//! The documents generated about one [`Conversation`]: transcripts, Conversation
//! Analyzer results, sentiment, summaries, interaction logs and attachments (notes, CSV,
//! PDF, JSON).

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use time::OffsetDateTime;

use super::*;

/// `transcript`: a JSON array of `{speaker, start, end, text}`.
pub(crate) fn transcript(conv: &Conversation, seed: u64) -> Vec<u8> {
    to_json(&utterances(conv, seed))
}

/// `chatTranscript`: `{channel, messages: [{from, name, timestamp, text}]}`.
pub(crate) fn chat_transcript(conv: &Conversation, seed: u64) -> Vec<u8> {
    #[derive(Serialize)]
    struct Message {
        from: &'static str,
        name: String,
        timestamp: String,
        text: String,
    }
    #[derive(Serialize)]
    struct Chat {
        channel: &'static str,
        messages: Vec<Message>,
    }
    let messages = utterances(conv, seed)
        .into_iter()
        .map(|u| Message {
            from: u.speaker,
            name: if u.speaker == "agent" {
                conv.agent_name.clone()
            } else {
                conv.customer_name.clone()
            },
            timestamp: rfc3339(conv.start + time::Duration::seconds(u.start as i64)),
            text: u.text,
        })
        .collect();
    to_json(&Chat {
        channel: "webchat",
        messages,
    })
}

/// `categorizationResult`: the Conversation Analyzer shape (api.md §8).
pub(crate) fn categorization(conv: &Conversation, seed: u64) -> Vec<u8> {
    #[derive(Serialize)]
    struct Match {
        name: &'static str,
        matches: u32,
    }
    #[derive(Serialize)]
    struct Group {
        category: &'static str,
        categories: Vec<Match>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Breakdown {
        agent: f64,
        customer: f64,
        silence: f64,
        cross_talk: f64,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Result {
        guid: String,
        status: &'static str,
        language: &'static str,
        confidence: &'static str,
        call_time_break_down: Breakdown,
        categories: Vec<Group>,
        transcript: Option<String>,
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let utts = utterances(conv, conv.seed);
    let mut groups: Vec<Group> = Vec::new();
    for &ti in &conv.topics {
        let Some(topic) = TOPICS.get(ti) else {
            continue;
        };
        let matches = utts.iter().filter(|u| u.topic == Some(ti)).count() as u32;
        let m = Match {
            name: topic.label,
            matches: matches.max(1),
        };
        match groups.iter_mut().find(|g| g.category == topic.group) {
            Some(g) => g.categories.push(m),
            None => groups.push(Group {
                category: topic.group,
                categories: vec![m],
            }),
        }
    }
    groups.push(Group {
        category: "Compliance",
        categories: vec![Match {
            name: "Identity verification",
            matches: 1,
        }],
    });
    let speech = |who: &str| -> f64 {
        utts.iter()
            .filter(|u| u.speaker == who)
            .map(|u| u.end - u.start)
            .sum::<f64>()
    };
    let agent = (speech("agent") * 10.0).round() / 10.0;
    let customer = (speech("customer") * 10.0).round() / 10.0;
    let silence = (f64::from(conv.secs) - agent - customer).max(0.0);
    let confidence = ["high", "high", "medium", "low"]
        .choose(&mut rng)
        .copied()
        .unwrap_or("high");
    to_json(&Result {
        guid: conv.guid.clone(),
        status: "processed",
        language: "en-GB",
        confidence,
        call_time_break_down: Breakdown {
            agent,
            customer,
            silence: (silence * 10.0).round() / 10.0,
            cross_talk: (rng.random_range(0.0..4.0f64) * 10.0).round() / 10.0,
        },
        categories: groups,
        transcript: None,
    })
}

/// `sentimentSummary`: overall sentiment, distribution and a 30-second timeline.
pub(crate) fn sentiment(conv: &Conversation, seed: u64) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Categories {
        very_negative: f64,
        negative: f64,
        neutral: f64,
        positive: f64,
        very_positive: f64,
    }
    #[derive(Serialize)]
    struct Span {
        start: u32,
        end: u32,
    }
    #[derive(Serialize)]
    struct Point {
        score: f64,
        span: Span,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Summary {
        overall_sentiment: &'static str,
        categories: Categories,
        distribution_over_time: Vec<Point>,
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mood: f64 =
        conv.topics().map(|t| f64::from(t.mood)).sum::<f64>() / conv.topics.len().max(1) as f64;
    let mut score = (mood / 2.0 + rng.random_range(-0.2..0.2)).clamp(-1.0, 1.0);
    let mut points = Vec::new();
    let mut t = 0;
    while t < conv.secs {
        let end = (t + 30).min(conv.secs);
        score = (score + rng.random_range(-0.25..0.3)).clamp(-1.0, 1.0);
        points.push(Point {
            score: (score * 100.0).round() / 100.0,
            span: Span { start: t, end },
        });
        t = end;
    }
    let avg = points.iter().map(|p| p.score).sum::<f64>() / points.len().max(1) as f64;
    let overall = match avg {
        x if x < -0.5 => "veryNegative",
        x if x < -0.15 => "negative",
        x if x < 0.15 => "neutral",
        x if x < 0.5 => "positive",
        _ => "veryPositive",
    };
    // Share of time in each band.
    let mut bands = [0f64; 5];
    for p in &points {
        let b = ((p.score + 1.0) / 0.4).floor().clamp(0.0, 4.0) as usize;
        bands[b] += 1.0;
    }
    let n = points.len().max(1) as f64;
    let share = |x: f64| (x / n * 100.0).round() / 100.0;
    to_json(&Summary {
        overall_sentiment: overall,
        categories: Categories {
            very_negative: share(bands[0]),
            negative: share(bands[1]),
            neutral: share(bands[2]),
            positive: share(bands[3]),
            very_positive: share(bands[4]),
        },
        distribution_over_time: points,
    })
}

/// `conversationSummary`: an AI-style summary of the conversation.
pub(crate) fn conversation_summary(conv: &Conversation, seed: u64) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Summary {
        generated_by: &'static str,
        language: &'static str,
        topics: Vec<&'static str>,
        summary: String,
        action_items: Vec<String>,
    }
    let mut rng = SmallRng::seed_from_u64(conv.seed);
    let slots = Slots::new(conv, &mut rng);
    let mut rng = SmallRng::seed_from_u64(seed);
    let summary = conv
        .topics()
        .map(|t| slots.fill(t.summary))
        .collect::<Vec<_>>()
        .join(" ");
    let actions = [
        "Send a follow-up email to the customer.",
        "No further action needed.",
        "Check back with the customer in two days.",
        "Update the customer record.",
    ];
    let n = rng.random_range(1..=2);
    to_json(&Summary {
        generated_by: "AI",
        language: "en-GB",
        topics: conv.topics().map(|t| t.name).collect(),
        summary,
        action_items: actions
            .choose_multiple(&mut rng, n)
            .map(|s| s.to_string())
            .collect(),
    })
}

/// `interactionLog`: timestamped routing events of the interaction.
pub(crate) fn interaction_log(conv: &Conversation, inbound: bool, seed: u64) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Event {
        timestamp: String,
        event: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        agent_id: Option<String>,
    }
    #[derive(Serialize)]
    struct Log {
        guid: String,
        events: Vec<Event>,
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut events = Vec::new();
    let mut t = conv.start - time::Duration::seconds(rng.random_range(5..90));
    let mut push = |t: OffsetDateTime, event: &'static str, agent: Option<&String>| {
        events.push(Event {
            timestamp: rfc3339(t),
            event,
            agent_id: agent.cloned(),
        })
    };
    let first_agent = conv.agent_ids.first();
    if conv.chat {
        push(t, "chatRequested", None);
        push(t + time::Duration::seconds(2), "queued", None);
        push(conv.start, "agentJoined", first_agent);
    } else if inbound {
        push(t, "offered", None);
        t += time::Duration::seconds(rng.random_range(3..20));
        push(t, "ivrCompleted", None);
        push(t + time::Duration::seconds(1), "queued", None);
        push(
            conv.start - time::Duration::seconds(2),
            "agentAlerted",
            first_agent,
        );
        push(conv.start, "connected", first_agent);
    } else {
        push(
            conv.start - time::Duration::seconds(12),
            "dialing",
            first_agent,
        );
        push(conv.start, "connected", first_agent);
    }
    let end = conv.start + time::Duration::seconds(i64::from(conv.secs));
    for (i, agent) in conv.agent_ids.iter().enumerate().skip(1) {
        let at = conv.start
            + time::Duration::seconds(
                i64::from(conv.secs) * i as i64 / conv.agent_ids.len() as i64,
            );
        push(at, "transferred", Some(agent));
    }
    if !conv.chat && conv.secs > 120 && rng.random_bool(0.3) {
        let at = conv.start + time::Duration::seconds(i64::from(conv.secs / 3));
        push(at, "held", None);
        push(
            at + time::Duration::seconds(rng.random_range(10..60)),
            "retrieved",
            None,
        );
    }
    push(end, if conv.chat { "closed" } else { "disconnected" }, None);
    push(
        end + time::Duration::seconds(rng.random_range(20..120)),
        "wrapUpCompleted",
        conv.agent_ids.last(),
    );
    to_json(&Log {
        guid: conv.guid.clone(),
        events,
    })
}

/// Kinds of attachment the synthetic tenant carries.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AttachmentKind {
    Note,
    Csv,
    Pdf,
    Json,
}

impl AttachmentKind {
    pub fn pick(rng: &mut SmallRng) -> Self {
        [Self::Note, Self::Csv, Self::Pdf, Self::Json]
            .choose(rng)
            .copied()
            .unwrap_or(Self::Note)
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Note => "text/plain",
            Self::Csv => "text/csv",
            Self::Pdf => "application/pdf",
            Self::Json => "application/json",
        }
    }
}

/// An `attachment` body of the given kind.
pub(crate) fn attachment(conv: &Conversation, kind: AttachmentKind, seed: u64) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(conv.seed);
    let slots = Slots::new(conv, &mut rng);
    let mut rng = SmallRng::seed_from_u64(seed);
    let topic_lines: Vec<String> = conv
        .topics()
        .flat_map(|t| t.customer.iter().take(2))
        .map(|l| slots.fill(l))
        .collect();
    match kind {
        AttachmentKind::Note => {
            let mut s = format!(
                "Note from {} ({})\nInteraction {}\n\n",
                conv.customer_name,
                conv.customer_handle(),
                conv.guid
            );
            for l in &topic_lines {
                s.push_str(l);
                s.push('\n');
            }
            s
        }
        AttachmentKind::Csv => {
            let mut s = String::from("order,date,product,quantity,amount\n");
            for _ in 0..rng.random_range(3..40) {
                s.push_str(&format!(
                    "NW-{},{},{},{},{}.{:02}\n",
                    rng.random_range(100_000..999_999),
                    rfc3339(conv.start - time::Duration::days(rng.random_range(1..400)))
                        .get(..10)
                        .unwrap_or(""),
                    PRODUCTS.choose(&mut rng).copied().unwrap_or("parcel"),
                    rng.random_range(1..4),
                    rng.random_range(4..480),
                    rng.random_range(0..100)
                ));
            }
            s
        }
        AttachmentKind::Pdf => {
            return pdf(&[
                format!("{COMPANY} receipt for {}", conv.customer_name),
                format!("Order {}", slots.order),
                format!("{} - {}", slots.product, slots.amount),
                format!("Reference {}", slots.ticket),
            ])
        }
        AttachmentKind::Json => {
            return to_json(&serde_json::json!({
                "form": "contact-us",
                "name": conv.customer_name,
                "email": conv.customer_handle(),
                "message": topic_lines.join(" "),
                "submitted": rfc3339(conv.start - time::Duration::minutes(rng.random_range(1..600))),
            }))
        }
    }
    .into_bytes()
}

/// A minimal valid one-page PDF showing `lines`.
fn pdf(lines: &[String]) -> Vec<u8> {
    let escape = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii())
            .flat_map(|c| match c {
                '(' | ')' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect::<String>()
    };
    let mut stream = String::from("BT /F1 14 Tf 72 770 Td");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            stream.push_str(" 0 -22 Td");
        }
        stream.push_str(&format!(" ({}) Tj", escape(l)));
    }
    stream.push_str(" ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{o}\nendobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for off in offsets {
        out.push_str(&format!("{off:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.into_bytes()
}
