//! The words of the synthetic contact center: its topics (each with lines of its own,
//! so `grep` tells conversations apart), products, days, names, postcodes and fillers.

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

pub(super) const PRODUCTS: &[&str] = &[
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
pub(super) const DAYS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "the fourteenth",
    "the twenty-first",
];
pub(super) const FIRST_NAMES: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Noah", "Oliver", "George", "Arthur", "Leo",
    "Harry", "Priya", "Mohammed", "Sofia", "Chen", "Aisha", "Tomasz", "Fatima", "Lucas",
];
pub(super) const LAST_NAMES: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Patel", "Khan", "Evans", "Thomas",
    "Roberts", "Walker", "Nowak", "Garcia", "Murphy", "O'Brien",
];
pub(super) const POSTCODES: &[&str] = &[
    "SW1A 1AA", "M1 4BT", "LS2 7EH", "EH1 2NG", "BS1 5TR", "CF10 1EP", "B3 2PP", "NE1 7RU",
];

pub(super) const FILLERS_AGENT: &[&str] = &[
    "Okay, one moment please.",
    "Let me just check that for you.",
    "Bear with me while the system loads.",
    "Right, I see.",
    "Thanks for your patience.",
];
pub(super) const FILLERS_CUSTOMER: &[&str] = &[
    "Okay.",
    "Sure, no problem.",
    "Right.",
    "That's fine.",
    "Yes, that's right.",
];
