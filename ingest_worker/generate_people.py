"""Pools, name/email variants, id formats and text banks for :mod:`ingest_worker.generate`.

Everything here is pure: functions take a ``random.Random`` and return values; no I/O.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import random
import unicodedata
from typing import Optional

# --------------------------------------------------------------------------- names
# (formal first name, nicknames used in informal tools)
FIRST = [
    ("Robert", ["Bob", "Rob"]), ("Elizabeth", ["Liz", "Beth"]), ("William", ["Bill", "Will"]),
    ("Michael", ["Mike"]), ("Jennifer", ["Jen"]), ("Katherine", ["Kate", "Katie"]),
    ("James", ["Jim", "Jamie"]), ("Margaret", ["Maggie", "Peggy"]), ("Richard", ["Rick", "Dick"]),
    ("Christopher", ["Chris"]), ("Jessica", ["Jess"]), ("Daniel", ["Dan", "Danny"]),
    ("Patricia", ["Pat", "Trish"]), ("Thomas", ["Tom"]), ("Rebecca", ["Becky"]),
    ("Anthony", ["Tony"]), ("Samantha", ["Sam"]), ("Joseph", ["Joe"]), ("Alexandra", ["Alex"]),
    ("Nicholas", ["Nick"]), ("Victoria", ["Vicky", "Tori"]), ("Matthew", ["Matt"]),
    ("Stephanie", ["Steph"]), ("Benjamin", ["Ben"]), ("Kimberly", ["Kim"]), ("Edward", ["Ed", "Ted"]),
    ("José", ["Pepe"]), ("Zoë", []), ("Renée", []), ("Chloé", []), ("André", []), ("Søren", []),
    ("Priya", []), ("Wei", []), ("Aisha", []), ("Mateo", []), ("Olivia", []), ("Ethan", []),
    ("Hannah", []), ("Noah", []), ("Grace", []), ("Lucas", []), ("Fatima", []), ("Kenji", []),
    ("Ingrid", []), ("Diego", []), ("Nadia", []), ("Omar", []), ("Laura", []), ("Marcus", []),
]
LAST = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodríguez",
    "Martínez", "Hernández", "López", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson",
    "Martin", "Lee", "Pérez", "Thompson", "White", "Harris", "Sánchez", "Clark", "Ramírez", "Lewis",
    "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill",
    "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell",
    "Carter", "O'Brien", "Müller", "Schmidt", "Kowalski", "Patel", "Shah", "Chen", "Wang", "Kim",
    "Park", "Tanaka", "Sato", "Novak", "Dubois", "Lefèvre", "Rossi", "Bianchi", "Haddad",
    "Okafor", "Mensah", "Cohen", "Levi", "Fischer", "Weber", "Larsen", "Johansson", "Murphy",
    "Kelly", "Sullivan", "Brennan", "McCarthy", "Fitzgerald", "Van der Berg", "De Souza",
]
REP_FIRST = ["Sarah", "Michael", "Jordan", "Elizabeth", "David", "Priya", "Kevin", "Rachel",
             "William", "Tara", "Marcus", "Jennifer"]
REP_LAST = ["Whitfield", "Okoro", "Lindqvist", "Barrett", "Castellano", "Iyer", "Donovan",
            "Hale", "Prescott", "Moreau", "Abernathy", "Quinlan"]
REP_TITLES = ["VP of Sales", "Account Executive", "Senior Account Executive", "Account Executive",
              "Sales Development Rep", "Solutions Engineer", "Customer Success Manager",
              "Account Executive"]
TITLES = ["CFO", "Controller", "VP Finance", "Director of Finance", "AP Manager",
          "Accounts Payable Specialist", "Head of Operations", "COO", "IT Director",
          "Procurement Manager", "CEO", "VP of Engineering", "Treasury Analyst",
          "Revenue Operations Manager", "Security Engineer", "General Counsel", "Office Manager"]

# --------------------------------------------------------------------------- companies
ROOTS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent",
    "Cyberdyne", "Tyrell", "Wonka", "Gringotts", "Oceanic", "Massive Dynamic", "Aperture",
    "Black Mesa", "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adatum", "Proseware",
    "Blue Yonder", "Silverline", "Redwood", "Ironclad", "Brightpath", "Clearwater", "Summit",
    "Pinnacle", "Evergreen", "Harborview", "Keystone", "Lakeshore", "Meridian", "Northstar",
    "Oakridge", "Pioneer", "Quantum", "Riverbend", "Sterling", "Trident", "Unity", "Vertex",
    "Westfield", "Yellowstone", "Zenith", "Cascade", "Granite", "Horizon", "Juniper", "Kestrel",
    "Lumen", "Mosaic", "Nimbus", "Orion", "Polaris", "Sequoia",
]
WORDS = ["Logistics", "Health", "Properties", "Foods", "Energy", "Labs", "Retail", "Capital",
         "Freight", "Media", "Robotics", "Analytics", "Hospitality", "Manufacturing", "Dental",
         "Realty", "Systems", "Outdoors", "Pharma", "Networks"]
INDUSTRIES = ["Manufacturing", "Healthcare", "Real Estate", "Retail", "Transportation",
              "Technology", "Financial Services", "Hospitality", "Construction", "Education",
              "Energy", "Media"]
TLDS = [".com", ".com", ".com", ".io", ".co", ".net"]
SHARED_INBOXES = ["ap", "billing", "accounts", "finance", "info"]
PERSONAL_DOMAINS = ["gmail.com", "gmail.com", "yahoo.com", "outlook.com", "icloud.com"]
COMPETITORS = ["Bill.com", "Tipalti", "AvidXchange", "Stripe", "Melio", "Coupa"]
ERPS = ["NetSuite", "QuickBooks Online", "Sage Intacct", "Yardi", "SAP Business One",
        "Microsoft Dynamics"]


def strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def slug(s: str) -> str:
    return "".join(c for c in strip_accents(s).lower() if c.isalnum())


def typo(rng, s: str) -> str:
    """One-letter error: swap two inner letters, double one, or drop one."""
    if len(s) < 4:
        return s + s[-1]
    i = rng.randrange(1, len(s) - 2)
    k = rng.randrange(3)
    if k == 0:
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    if k == 1:
        return s[:i] + s[i] + s[i:]
    return s[:i] + s[i + 1:]


def company_name(g: int) -> str:
    """Unique base name of global company number ``g`` (no legal suffix)."""
    r, rest = g % len(ROOTS), g // len(ROOTS)
    if rest == 0:
        return ROOTS[r]
    w, k = (rest - 1) % len(WORDS), (rest - 1) // len(WORDS)
    return f"{ROOTS[r]} {WORDS[w]}" + (f" {k + 1}" if k else "")


def company_variant(rng, base: str, style: int) -> str:
    """Same company as different tools spell it."""
    if style == 0:
        return base
    if style == 1:
        return f"{base} Corp"
    if style == 2:
        return f"{base.upper()} Corporation"
    if style == 3:
        return f"{base}, Inc."
    if style == 4:
        return f"{base} Inc"
    if style == 5:
        return f"{base} LLC"
    return f"The {base} Group" if rng.random() < 0.5 else f"{base} Co."


def phone(rng, style: int | None = None) -> str:
    a, b, c = rng.choice([415, 212, 312, 617, 206, 512, 303, 646, 404, 858]), \
        rng.randrange(200, 999), rng.randrange(0, 10000)
    style = rng.randrange(4) if style is None else style
    return [f"+1 {a}-{b}-{c:04d}", f"({a}) {b}-{c:04d}", f"{a}{b}{c:04d}",
            f"+1.{a}.{b}.{c:04d}"][style]


def work_email(first: str, last: str, domain: str, style: int) -> str:
    f, l_ = slug(first), slug(last)
    return [f"{f}.{l_}", f"{f[0]}{l_}", f"{f}", f"{f}_{l_}", f"{f}{l_[0]}"][style % 5] + "@" + domain


def personal_email(rng, first: str, last: str) -> str:
    f, l_ = slug(first), slug(last)
    local = rng.choice([f"{f}.{l_}", f"{f}{l_}{rng.randrange(10, 99)}", f"{f[0]}{l_}",
                        f"{l_}.{f}"])
    return local + "@" + rng.choice(PERSONAL_DOMAINS)


def plus_address(email: str, tag: str) -> str:
    local, dom = email.split("@", 1)
    return f"{local}+{tag}@{dom}"


# --------------------------------------------------------------------------- ids
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce id (real 3-char case-safe checksum)."""
    body = ""
    for _ in range(9):
        n, r = divmod(n, 62)
        body = _B62[r] + body
    id15 = prefix + "8c0" + body if len(prefix) == 3 else (prefix + body)[:15]
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += _SUFFIX[bits]
    return id15 + suffix


def slack_id(prefix: str, seed: int, n: int) -> str:
    h = hashlib.sha1(f"{seed}:{prefix}:{n}".encode()).digest()
    alpha = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    return prefix + "0" + "".join(alpha[b % len(alpha)] for b in h[:9])


# --------------------------------------------------------------------------- time formats
def _us_dst(t: dt.datetime) -> bool:
    y = t.year
    mar = dt.datetime(y, 3, 8) + dt.timedelta(days=(6 - dt.date(y, 3, 8).weekday()) % 7)
    nov = dt.datetime(y, 11, 1) + dt.timedelta(days=(6 - dt.date(y, 11, 1).weekday()) % 7)
    return mar + dt.timedelta(hours=10) <= t.replace(tzinfo=None) < nov + dt.timedelta(hours=9)


def iso_gong(t: dt.datetime) -> str:
    off = -7 if _us_dst(t) else -8
    local = t.replace(tzinfo=None) + dt.timedelta(hours=off)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{off:+03d}:00"


def iso_z(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def iso_sf(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


# --------------------------------------------------------------------------- text banks
REP_LINES = {
    "Call Setup": [
        "Hi {first}, thanks for making the time today.", "Can everyone hear me okay?",
        "I've got about thirty minutes blocked, does that still work for you?",
        "Before we dive in, I just want to make sure we cover your goals for today.",
    ],
    "Discovery": [
        "Walk me through how your team processes vendor payments today?",
        "Roughly how many invoices are you handling per month?",
        "Who else is involved when you approve a payment run?",
        "What made you start looking at this now?",
        "Are you still reconciling everything by hand in spreadsheets?",
    ],
    "Product Demo": [
        "Let me share my screen and show you the approval workflow.",
        "Here you can see the payment batch, it syncs back to {erp} automatically.",
        "Every payment gets a full audit trail, so your auditors can see who approved what.",
        "This dashboard is what most controllers live in day to day.",
    ],
    "Pricing": [
        "For your volume we'd be looking at the Growth tier, which is {price} per month.",
        "ACH is included, and virtual card payments actually earn you rebates.",
        "We can do annual billing with a {pct} percent discount.",
        "Does that fit roughly within the budget you had in mind?",
    ],
    "Integration": [
        "We have a native connector for {erp}, setup usually takes about a week.",
        "Do you have someone on your side who owns the {erp} instance?",
        "We sync vendors, bills and payments both ways every fifteen minutes.",
    ],
    "Security": [
        "We're SOC 2 Type II certified and I can send the report under NDA.",
        "Happy to fill out your security questionnaire, who should I send it to?",
        "All bank details are encrypted at rest and we support SSO with Okta.",
    ],
    "Competition": [
        "A lot of teams come to us from {competitor}, mainly because of the approval flows.",
        "What did you like and not like about {competitor}?",
    ],
    "Next Steps": [
        "So next step would be a technical deep dive with your IT team, does {day} work?",
        "I'll send over the proposal and the security docs by end of day.",
        "Can we get {first} from procurement on the next call?",
        "I'll put a tentative go-live of {month} on the mutual action plan.",
    ],
}
CUST_LINES = {
    "Call Setup": ["Yep, loud and clear.", "Sorry, I'm running a couple of minutes behind.",
                   "Thirty minutes works, I have a hard stop at the top of the hour."],
    "Discovery": [
        "Honestly it's a lot of manual work, we're cutting checks twice a week.",
        "We process around {n} invoices a month across {k} entities.",
        "Our controller and the CFO both have to sign off on anything over ten thousand.",
        "We just closed an acquisition so the volume basically doubled.",
        "Month-end close takes us about {k} days right now, which is too long.",
    ],
    "Product Demo": [
        "Can approvers do this from their phone?", "Oh that's nice, that would save us a lot of time.",
        "How does it handle partial payments?", "Can we set different approval rules per entity?",
    ],
    "Pricing": [
        "That's a bit higher than we budgeted for this year.",
        "Is there any flexibility on price if we sign before the end of the quarter?",
        "How does the per-transaction fee work for international wires?",
        "We'd need to see the pricing in writing for our CFO.",
    ],
    "Integration": [
        "We're on {erp} and we've had bad experiences with integrations breaking.",
        "Does the sync handle custom fields?", "Who on your side supports the implementation?",
    ],
    "Security": [
        "Our security team will need to do a full review before we can sign.",
        "Do you support SSO and role-based permissions?",
        "Where is the data hosted, and do you have a pen test report?",
    ],
    "Competition": [
        "We're also looking at {competitor}, their pricing came in lower.",
        "We used {competitor} before and the support was pretty slow.",
    ],
    "Next Steps": [
        "Send over the proposal and I'll review it with the team this week.",
        "{day} works for me, let me check with IT.", "Timeline-wise we want to be live by {month}.",
        "Let me loop in our procurement lead.",
    ],
}
CALL_TYPES = {
    "Discovery": ["Call Setup", "Discovery", "Discovery", "Competition", "Next Steps"],
    "Demo": ["Call Setup", "Discovery", "Product Demo", "Product Demo", "Integration", "Next Steps"],
    "Pricing Review": ["Call Setup", "Pricing", "Pricing", "Competition", "Next Steps"],
    "Security Review": ["Call Setup", "Security", "Security", "Integration", "Next Steps"],
    "Negotiation": ["Call Setup", "Pricing", "Security", "Pricing", "Next Steps"],
    "Check-in": ["Call Setup", "Integration", "Discovery", "Next Steps"],
}
NOTE_POINTS = [
    "Currently paying ~{n} invoices/month by check", "Using {erp}; wants two-way sync",
    "Security review required (SOC 2 report requested)", "Evaluating {competitor} as well",
    "Budget approved for Q{q}", "Pricing concern: wants >{pct}% discount for annual",
    "Champion is {first}; CFO is economic buyer", "Target go-live {month}",
    "Needs multi-entity approvals", "Asked about virtual card rebates",
]
EMAIL_SUBJECTS = [
    "Pay Ready proposal for {company}", "Re: Security questionnaire", "Follow-up from today's call",
    "Re: {erp} integration questions", "Intro: Pay Ready <> {company}", "Re: Pricing & next steps",
    "Mutual action plan", "Re: Contract redlines",
]
EMAIL_BODIES = [
    "Hi {first},\n\nThanks again for your time today. As promised, attached is the proposal for "
    "{company}. Pricing is based on ~{n} invoices per month.\n\nBest,\n{rep}",
    "Hi {first},\n\nFollowing up on the security questionnaire - our SOC 2 Type II report is "
    "attached. Let me know if your team has other questions.\n\nThanks,\n{rep}",
    "Hi {rep},\n\nWe reviewed the proposal internally. Is there flexibility on the platform fee? "
    "{competitor} came in lower.\n\n{first}",
    "{first} - quick question: does the {erp} connector support multi-subsidiary? Our IT lead "
    "asked.\n\nThanks!",
    "Hi {first}, just checking in on timing. Are we still on track for a decision by {month}?",
]
SLACK_REP = [
    "Just got off a call with {cust} at {company}, they want pricing for {k} entities",
    "Heads up: {company} security review is blocking, can someone send the SOC 2 report?",
    "{company} is comparing us with {competitor}. Anyone have a battlecard?",
    "Deal update: {company} moved to Negotiation, target close {month}",
    "Can someone from SE join the {company} demo on {day}?",
    "{cust} ({email}) asked for the {erp} integration docs",
    "Lost {company} to {competitor} :disappointed: price was the main reason",
    "Who owns the {company} renewal?",
]
SLACK_REPLY = [
    "On it", "Sent it over just now", "I can join, add me to the invite", "Nice work! :tada:",
    "Battlecard is pinned in #competitive-intel", "Let's sync after standup",
    "They mentioned that on my call too", "I'll ping legal about the redlines",
    "What discount did we offer?", "Thanks!",
]
SLACK_CUST = [
    "Hi team, quick question about the {erp} sync, are custom fields supported?",
    "We're getting an error on the payment batch from yesterday, can someone take a look?",
    "Thanks for the call today, sending the signed order form shortly",
    "Can you resend the invoice for this month?",
]
TASK_SUBJECTS = ["Follow up with {first}", "Send proposal",
                 "Send SOC 2 report", "Schedule technical deep dive", "Call: {company} check-in"]
EVENT_SUBJECTS = ["Demo - {company}", "Discovery call", "Security review with {company} IT",
                  "Pricing review", "QBR - {company}", "Onsite visit"]


# Per scale unit.
N_COMPANIES, N_CUSTOMERS, N_REPS, N_BOTS = 40, 150, 8, 2
N_CALLS, N_THREADS = 60, 150
HS_ENG = {"engagements_notes": 90, "engagements_calls": 70, "engagements_emails": 90,
          "engagements_meetings": 50}
SF_ACT = {"Task": 180, "Event": 70, "Note": 50}
PERSONS_PER_UNIT = N_REPS + N_CUSTOMERS + N_BOTS
DAYS = 120
UTC = dt.timezone.utc
SOURCES = ("gong", "slack", "hubspot", "salesforce")


# --------------------------------------------------------------------------- world (one unit)
def _when(rng, anchor: dt.datetime, max_days: float = DAYS) -> dt.datetime:
    """A business-hours moment in the last ``max_days`` days (Mon-Fri, 14-23 UTC)."""
    day = anchor - dt.timedelta(days=rng.randrange(1, int(max_days)))
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day.replace(hour=rng.randrange(14, 23), minute=rng.randrange(60), second=rng.randrange(60),
                       microsecond=rng.randrange(1000) * 1000)


def _world(rng, u: int, ids, anchor: dt.datetime) -> dict:
    p0 = u * PERSONS_PER_UNIT
    reps = []
    for i in range(N_REPS):
        first, last = REP_FIRST[(i + u) % len(REP_FIRST)], REP_LAST[(i * 5 + u) % len(REP_LAST)]
        if u:
            # double-barrelled names repeat after ~30 units; numbered ones never do: two reps must
            # never share a name, hence a mailbox (the ground truth would call one address two people)
            hyphen = (u + i) % 3 == 0 and u < 30
            last = f"{last}-{LAST[(u * 7 + i) % len(LAST)]}" if hyphen else last + str(u)
        local = slug(first) + "." + slug(last)
        reps.append(dict(truth=f"P{p0 + i + 1:06d}", first=first, last=last,
                         nick=dict(FIRST).get(first, [first])[:1] or [first],
                         email=f"{local}@payready.com", alias=f"{slug(first)[0]}{slug(last)}@payready.com",
                         title=REP_TITLES[i], phone=phone(rng, 0),
                         gong=ids.gong("user"), slack=ids.slack("U"), hs=ids.hs("owner"),
                         hs_user=ids.hs("user"), sf=ids.sf("005")))
    companies = []
    for i in range(N_COMPANIES):
        base = company_name(u * N_COMPANIES + i)
        d1 = slug(base) + rng.choice(TLDS)
        domains = [d1]
        if rng.random() < 0.2:
            domains.append(rng.choice([slug(base) + "hq.com", slug(base.split()[0]) + "corp.com",
                                       slug(base) + ".co.uk", "get" + slug(base) + ".com"]))
        in_hs, in_sf = rng.random() < 0.85, rng.random() < 0.75
        if not (in_hs or in_sf):
            in_sf = True
        companies.append(dict(truth=f"C{u * N_COMPANIES + i + 1:06d}", base=base, domains=domains,
                              industry=rng.choice(INDUSTRIES), weight=1.0 / (i + 1) ** 0.7,
                              hs_style=rng.choice([0, 1, 3, 4]), sf_style=rng.choice([0, 2, 3, 5, 6]),
                              owner=rng.randrange(N_REPS), shared=i in (0, 2, 5, 9),
                              hs=ids.hs("company") if in_hs else None, sf=ids.sf("001") if in_sf else None,
                              people=[]))
    cw = [c["weight"] for c in companies]
    customers = []
    for i in range(N_CUSTOMERS):
        ci = i if i < N_COMPANIES else rng.choices(range(N_COMPANIES), cw)[0]
        c = companies[ci]
        formal, nicks = rng.choice(FIRST)
        last = rng.choice(LAST)
        dom_i = rng.randrange(len(c["domains"]))
        work = work_email(formal, last, c["domains"][dom_i], rng.randrange(5))
        p = dict(truth=f"P{p0 + N_REPS + i + 1:06d}", co=ci, first=formal, nick=rng.choice(nicks) if nicks else None,
                 last=last, work=work, title=rng.choice(TITLES), phone=phone(rng),
                 personal=personal_email(rng, formal, last) if rng.random() < 0.3 else None,
                 plus=rng.random() < 0.08, typo_src=rng.choice(SOURCES) if rng.random() < 0.1 else None,
                 keep_accents={s for s in SOURCES if rng.random() < 0.5}, weight=rng.random() + 0.2,
                 hs=None, sf=None, sf_kind=None, slack=None, deleted=rng.random() < 0.04)
        if len(c["domains"]) > 1 and rng.random() < 0.4:
            p["work2"] = work.split("@")[0] + "@" + c["domains"][1 - dom_i]
        if rng.random() < 0.7:
            p["hs"] = ids.hs("contact")
        r = rng.random()
        p["sf_kind"] = ("Contact" if r < 0.55 and c["sf"] else "Lead" if 0.55 <= r < 0.72
                        or (r < 0.55 and rng.random() < 0.25) else None)
        if p["sf_kind"]:
            p["sf"] = ids.sf("003" if p["sf_kind"] == "Contact" else "00Q")
        if c["shared"] and rng.random() < 0.7:
            p["slack"] = ids.slack("U")
        c["people"].append(i)
        customers.append(p)
    return dict(u=u, reps=reps, companies=companies, customers=customers, cw=cw)


def _name(rng, p: dict, source: str, informal: float) -> tuple[str, str]:
    first = p["nick"] if p["nick"] and rng.random() < informal else p["first"]
    last = typo(random.Random(p["truth"]), p["last"]) if p["typo_src"] == source else p["last"]
    if source not in p["keep_accents"]:
        first, last = strip_accents(first), strip_accents(last)
    return first, last


def _fill(rng, s: str, w: dict, c: Optional[dict] = None, p: Optional[dict] = None, rep: Optional[dict] = None) -> str:
    c = c or w["companies"][0]
    return s.format(first=(p or {}).get("first", "there"), company=c["base"], erp=rng.choice(ERPS),
                    competitor=rng.choice(COMPETITORS), n=rng.choice([300, 800, 1500, 4000, 12000]),
                    k=rng.randrange(2, 9), price=rng.choice(["$1,200", "$2,500", "$4,000", "$7,500"]),
                    pct=rng.choice([5, 10, 15, 20]), day=rng.choice(["Tuesday", "Thursday", "next Monday"]),
                    month=rng.choice(["January", "February", "March", "April", "June"]),
                    q=rng.randrange(1, 5), rep=(rep or {}).get("first", "Sarah"),
                    cust=(p or {}).get("first", "someone"), email=(p or {}).get("work", ""),
                    subject=rng.choice(EMAIL_SUBJECTS).format(company=c["base"], erp="NetSuite"))


def _pick(rng, w: dict, need: str | None = None, k: int = 1) -> tuple[dict, list[dict]]:
    """A company (weighted, hot accounts more often) and up to k of its people having ``need``."""
    c = rng.choices(w["companies"], w["cw"])[0]
    people = [w["customers"][i] for i in c["people"] if need is None or w["customers"][i][need]]
    if not people:
        return c, []
    chosen = []
    for _ in range(min(k, len(people))):
        q = rng.choices(people, [x["weight"] for x in people])[0]
        if q not in chosen:
            chosen.append(q)
    return c, chosen


def _rep_for(rng, w: dict, c: dict) -> dict:
    return w["reps"][c["owner"]] if rng.random() < 0.7 else rng.choice(w["reps"])



def _transcript(rng, w, c, kind, ppl, dur):
    rep_sp = [x for x in ppl if x[0] == "rep"]
    cust_sp = [x for x in ppl if x[0] == "cust"] or rep_sp
    plan = CALL_TYPES[kind]
    seg_ms = dur * 1000 // len(plan)
    turns, topics = [], []
    talk = {"rep": 0, "cust": 0, "by": {}, "q_rep": 0, "q_cust": 0, "comp": 0, "price": 0}
    t = rng.randrange(2000, 9000)
    for k, topic in enumerate(plan):
        topics.append({"name": topic, "duration": seg_ms // 1000})
        end_seg = (k + 1) * seg_ms
        side = 0
        for _ in range(rng.randrange(2, 7)):
            if t > end_seg - 5000:
                break
            role, who, sid = rng.choice(rep_sp) if side == 0 else rng.choice(cust_sp)
            bank = (REP_LINES if role == "rep" else CUST_LINES)[topic]
            sentences = []
            for line in rng.sample(bank, min(len(bank), rng.choice([1, 1, 2, 2, 3]))):
                text = _fill(rng, line, w, c, ppl[-1][1] if role == "rep" else None)
                d = max(1500, len(text.split()) * 380 + rng.randrange(0, 800))
                sentences.append({"start": t, "end": t + d, "text": text})
                talk["q_rep" if role == "rep" else "q_cust"] += text.endswith("?")
                talk["comp"] += any(x in text for x in COMPETITORS)
                talk["price"] += "pric" in text.lower()
                talk[role] += d
                talk["by"][sid] = talk["by"].get(sid, 0) + d // 1000
                t += d + rng.randrange(100, 700)
            turns.append({"speakerId": sid, "topic": topic, "sentences": sentences})
            side = 1 - side
            t += rng.randrange(5_000, 60_000)  # stretches not kept in this sample transcript
        t = max(t, end_seg)
    return turns, topics, talk


