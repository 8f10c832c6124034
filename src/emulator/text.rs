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

/// The company the synthetic contact center belongs to.
pub(crate) const COMPANY: &str = "Northwind";

/// A subject a conversation can be about.
pub(crate) struct Topic {
    /// Short name (used in summaries' `topics`).
    pub name: &'static str,
    /// Conversation Analyzer category group and category name.
    pub group: &'static str,
    pub label: &'static str,
    /// Lines the customer says / the agent says (with `{slot}` placeholders).
    pub customer: &'static [&'static str],
    pub agent: &'static [&'static str],
    /// One summary sentence.
    pub summary: &'static str,
    /// How the conversation tends to feel, -2 (very negative) .. 2 (very positive).
    pub mood: i8,
}

/// Every topic; the distinctive words of one topic do not appear in another's lines.
pub(crate) static TOPICS: &[Topic] = &[
    Topic {
        name: "order status",
        group: "Customer intent",
        label: "Order status enquiry",
        customer: &[
            "Hi, I'm calling about my order {order}, it still says processing.",
            "I placed the order for the {product} on {day} and haven't heard anything since.",
            "Can you tell me when the order will be dispatched?",
            "The confirmation email said it would ship within two days.",
        ],
        agent: &[
            "Let me pull up order {order} for you.",
            "I can see the {product} is being picked at the warehouse right now.",
            "Your order should be dispatched by {day} at the latest.",
            "You'll get an email with the dispatch confirmation as soon as it leaves us.",
        ],
        summary: "The customer asked about the status of order {order} for a {product}; the agent confirmed it would be dispatched by {day}.",
        mood: 0,
    },
    Topic {
        name: "refund",
        group: "Customer intent",
        label: "Refund request",
        customer: &[
            "I sent the {product} back two weeks ago and I still haven't had my refund.",
            "I'd like a refund please, it isn't what I expected.",
            "How long does the refund take to reach my card?",
            "The refund should be {amount}, not the partial amount I got.",
        ],
        agent: &[
            "I can see the return arrived, so I've processed the refund of {amount} now.",
            "Refunds usually reach your card within three to five working days.",
            "I've raised refund reference {ticket} for you.",
            "You'll receive a refund confirmation email shortly.",
        ],
        summary: "The customer requested a refund of {amount} for a returned {product}; the agent processed it under reference {ticket}.",
        mood: -1,
    },
    Topic {
        name: "billing",
        group: "Customer intent",
        label: "Billing query",
        customer: &[
            "There's a charge of {amount} on my invoice that I don't recognise.",
            "My direct debit went out twice this month.",
            "Can you send me a copy of the invoice from {day}?",
            "Why has my monthly bill gone up?",
        ],
        agent: &[
            "I can see the invoice here, the {amount} is the annual service charge.",
            "I'll reverse the duplicate direct debit payment today.",
            "I've emailed you a copy of that invoice.",
            "The price change was in the letter we sent about your billing plan.",
        ],
        summary: "The customer queried a charge of {amount} on an invoice; the agent explained the billing and sent a copy of the invoice.",
        mood: -1,
    },
    Topic {
        name: "delivery",
        group: "Customer intent",
        label: "Delivery problem",
        customer: &[
            "The courier says the parcel was delivered but there's nothing here.",
            "The tracking number hasn't updated since {day}.",
            "The box arrived damaged and the {product} is scratched.",
            "Can I change the delivery slot to an evening?",
        ],
        agent: &[
            "I've opened a case with the courier, reference {ticket}.",
            "I can book a redelivery for {day} between eight and six.",
            "I'll send a replacement {product} by next-day delivery.",
            "The parcel is showing at the local depot, so it should be with you tomorrow.",
        ],
        summary: "The customer reported a delivery problem with a {product}; the agent opened courier case {ticket} and arranged a redelivery for {day}.",
        mood: -1,
    },
    Topic {
        name: "password",
        group: "Customer intent",
        label: "Account access",
        customer: &[
            "I can't log in to my account, it says my password is wrong.",
            "I never received the password reset email.",
            "My account got locked after too many attempts.",
            "The two-factor code isn't arriving on my phone.",
        ],
        agent: &[
            "I'll send a password reset link to the email address on the account.",
            "I've unlocked the account, you can try logging in again now.",
            "Please check your spam folder for the reset email.",
            "I've switched your two-factor codes to come by email instead.",
        ],
        summary: "The customer could not log in; the agent unlocked the account and sent a password reset link.",
        mood: 0,
    },
    Topic {
        name: "warranty",
        group: "Customer intent",
        label: "Warranty claim",
        customer: &[
            "My {product} stopped working after four months.",
            "Is it still under warranty?",
            "The screen flickers and then it turns itself off.",
            "I've got the serial number here if you need it.",
        ],
        agent: &[
            "It's covered by the two-year warranty, so we can repair or replace it.",
            "Could you read me the serial number from the back of the {product}?",
            "I've logged warranty claim {ticket} and emailed you a prepaid label.",
            "Once it arrives the engineers usually turn it around in five days.",
        ],
        summary: "The customer's {product} developed a fault; the agent logged warranty claim {ticket} and sent a prepaid label.",
        mood: 0,
    },
    Topic {
        name: "cancellation",
        group: "Customer intent",
        label: "Cancellation",
        customer: &[
            "I'd like to cancel my subscription please.",
            "Is there a cancellation fee if I leave before the contract ends?",
            "I'm moving abroad so I won't need the service any more.",
            "Please make sure I'm not charged again after this month.",
        ],
        agent: &[
            "I'm sorry to hear you want to cancel, may I ask why?",
            "Your contract ends on {day}, so there's no cancellation fee.",
            "I've cancelled the subscription and you'll get a confirmation email.",
            "Before you go, I can offer you three months at half price.",
        ],
        summary: "The customer asked to cancel their subscription; the agent confirmed there was no fee as the contract ends on {day}.",
        mood: -1,
    },
    Topic {
        name: "upgrade",
        group: "Sales",
        label: "Upgrade opportunity",
        customer: &[
            "I'm interested in upgrading to the premium plan.",
            "Does the premium plan include the {product}?",
            "Is there a discount for existing customers?",
            "What's the monthly price after the upgrade?",
        ],
        agent: &[
            "The premium plan is {amount} a month and includes the {product}.",
            "As an existing customer you get twenty percent off for the first year.",
            "I've applied the upgrade, it takes effect from {day}.",
            "You'll see the new plan in your account within the hour.",
        ],
        summary: "The customer upgraded to the premium plan at {amount} a month, effective {day}.",
        mood: 2,
    },
    Topic {
        name: "complaint",
        group: "Customer experience",
        label: "Complaint",
        customer: &[
            "This is the third time I've had to call about this.",
            "Nobody called me back like they promised.",
            "I want to speak to a supervisor.",
            "Honestly the service has been really disappointing.",
        ],
        agent: &[
            "I'm really sorry for the inconvenience, I completely understand.",
            "I'll escalate this to my supervisor and log complaint {ticket}.",
            "A team leader will call you back by {day}.",
            "I've added a goodwill credit of {amount} to your account.",
        ],
        summary: "The customer complained about repeated contact; the agent escalated under complaint {ticket} and added a goodwill credit of {amount}.",
        mood: -2,
    },
    Topic {
        name: "address change",
        group: "Customer intent",
        label: "Account update",
        customer: &[
            "I've moved house and need to update my address.",
            "The new postcode is {postcode}.",
            "Can you also change the phone number on the account?",
            "Will my next parcel go to the new address?",
        ],
        agent: &[
            "I've updated the address to {postcode} on your account.",
            "Any orders from now on will go to the new address.",
            "I've changed the contact number as well.",
            "You'll get a text confirming the change of details.",
        ],
        summary: "The customer moved house; the agent updated the address to postcode {postcode} and the contact number.",
        mood: 1,
    },
];

const PRODUCTS: &[&str] = &[
    "Aurora X2 headphones",
    "Nimbus 7 tablet",
    "Vertex smart speaker",
    "Helios air fryer",
    "Solace memory foam mattress",
    "Quantum mesh router",
    "Orbit smartwatch",
    "Pioneer e-bike",
    "Cascade coffee machine",
    "Lumen desk lamp",
    "Tundra winter jacket",
    "Zephyr cordless vacuum",
];
const DAYS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "the fourteenth",
    "the twenty-first",
];
const FIRST_NAMES: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Noah", "Oliver", "George", "Arthur", "Leo",
    "Harry", "Priya", "Mohammed", "Sofia", "Chen", "Aisha", "Tomasz", "Fatima", "Lucas",
];
const LAST_NAMES: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Patel", "Khan", "Evans", "Thomas",
    "Roberts", "Walker", "Nowak", "Garcia", "Murphy", "O'Brien",
];
const POSTCODES: &[&str] = &[
    "SW1A 1AA", "M1 4BT", "LS2 7EH", "EH1 2NG", "BS1 5TR", "CF10 1EP", "B3 2PP", "NE1 7RU",
];

const FILLERS_AGENT: &[&str] = &[
    "Okay, one moment please.",
    "Let me just check that for you.",
    "Bear with me while the system loads.",
    "Right, I see.",
    "Thanks for your patience.",
];
const FILLERS_CUSTOMER: &[&str] = &[
    "Okay.",
    "Sure, no problem.",
    "Right.",
    "That's fine.",
    "Yes, that's right.",
];

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
