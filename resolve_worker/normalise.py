"""Normalisation of the values entity resolution compares, pure and total (bad input gives None).

Emails, domains, phones, company names and person names are reduced to the forms two tools
would agree on. Nothing here raises on junk: empty, placeholder, over-long or non-text values
normalise to ``None`` (or an empty part) so they never become evidence.
"""
from __future__ import annotations

import email.utils
import functools
import re
import unicodedata
from pathlib import Path
from typing import NamedTuple, Optional

import jellyfish

MAX_LEN = 200  # longer values are junk or pasted text; they are cut before any comparison

# Local parts many people share: such an address never identifies one person.
SHARED_LOCAL_PARTS = frozenset({
    "sales", "support", "info", "hello", "contact", "admin", "team", "billing", "noreply", "no-reply",
    "help", "office", "marketing", "hr", "jobs", "accounts", "accounting", "ap", "ar", "finance",
    "invoices", "payables", "procurement", "service", "webmaster", "postmaster", "enquiries", "inquiries",
    "careers", "press", "legal", "security", "it", "ops", "operations", "orders", "customerservice",
    "donotreply", "do-not-reply", "mail", "all", "everyone",
})
# Webmail providers: the domain says nothing about the employer.
WEBMAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "outlook.com", "hotmail.com",
    "hotmail.co.uk", "live.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com",
    "gmx.com", "gmx.de", "gmx.net", "msn.com", "mail.com", "zoho.com", "yandex.com", "yandex.ru",
    "fastmail.com", "hey.com", "web.de", "qq.com", "163.com", "comcast.net", "verizon.net", "att.net",
})
# Providers that ignore dots in the local part.
_DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
# Values people type when they do not know a name.
PLACEHOLDERS = frozenset({
    "n/a", "na", "n.a.", "none", "null", "nil", "unknown", "unknown user", "test", "test user", "tbd", "tba",
    "-", "--", "?", "??", "x", "xx", "xxx", "user", "customer", "contact", "guest", "anonymous", "no name",
    "noname", "not provided", "undefined", "todo", "asdf", "demo", "sample", "placeholder", "someone",
    "first last", "firstname lastname", "john doe", "jane doe",
})
# Legal suffixes, dropped from the end of a company name ("Acme Co. Inc." -> "acme"), each word
# with or without one trailing dot.
LEGAL_SUFFIXES = frozenset({
    "incorporated", "inc", "llc", "l.l.c", "ltd", "limited", "gmbh", "corp", "corporation", "co", "company",
    "plc", "sa", "ag", "bv", "llp", "lp", "pty", "pte", "srl", "sarl", "oy", "ab", "as", "nv", "kg", "group",
    "holdings",
})
_HONORIFIC = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "sir", "mx"})
_GENERATIONAL = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "cpa", "esq", "mba"})
_LAST_PREFIXES = frozenset({"van", "der", "den", "de", "da", "di", "del", "la", "le", "von", "du", "dos", "st"})


# compiled once: these run on every distinct raw value of a run
_EMAIL_DOMAIN = re.compile(r"[a-z0-9.\-]+")
_EMAIL_LOCAL = re.compile(r"[\w.'\-!#$%&*=?^`{|}~]+")
_URL_SCHEME = re.compile(r"^[a-z]+://")
_NOT_NAME_CHAR = re.compile(r"[^a-z0-9.&]+")
_PHONE_EXTENSION = re.compile(r"(?i)\s*(x|ext\.?|extension)\s*\d+$")
_WORDS = re.compile(r"[a-z0-9]+")
_PARENTHESES = re.compile(r"\([^)]*\)")
_NAME_TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_DOTTED_INITIALS = re.compile(r"[a-z](?:\.[a-z])+\.?")  # "s.a.", "n.v", "l.l.c."

_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffd]")


def clip(raw: object) -> Optional[str]:
    """Text or None: non-strings, empty, control and invisible characters dropped, cut to MAX_LEN."""
    if not isinstance(raw, str):
        return None
    if len(raw) <= MAX_LEN and raw.isascii() and raw.isprintable():
        # the common case: printable ASCII holds none of the invisible characters, skip the regex
        return " ".join(raw.split()) or None
    text = " ".join(_INVISIBLE.sub("", raw[:MAX_LEN * 2]).split())[:MAX_LEN]
    return text or None


def _text_cache(fn):  # noqa: ANN001, ANN202
    """Memoise a normaliser of one text value: the same names and addresses recur across sources."""
    cached = functools.lru_cache(maxsize=262_144)(fn)

    @functools.wraps(fn)
    def wrapper(raw: object):  # noqa: ANN202
        return cached(raw) if isinstance(raw, str) else None

    wrapper.cache_clear = cached.cache_clear
    return wrapper


# letters NFKD does not decompose into an ASCII base
_FOLD = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ł": "l", "Ł": "L", "đ": "d",
                       "Đ": "D", "þ": "th", "Þ": "TH", "œ": "oe", "Œ": "OE", "ı": "i"})


def ascii_fold(text: str) -> str:
    """Accents off, compatibility forms folded (ﬁ -> fi), lower case; other scripts dropped."""
    if text.isascii():
        return text.lower()  # nothing to fold, the common case: skip the Unicode round trip
    return unicodedata.normalize("NFKD", text.translate(_FOLD)).encode("ascii", "ignore").decode().lower()


# an address already in its normal form, the common case: lower-case ASCII, no tag, no space, no
# stray dot, not a provider that ignores dots; normalising gives it back unchanged
_PLAIN_EMAIL = re.compile(r"[a-z0-9_.'\-!#$%&*=?^`{|}~]+@([a-z0-9\-]+(?:\.[a-z0-9\-]+)+)")


@_text_cache
def normalise_email(raw: object) -> Optional[str]:
    if isinstance(raw, str) and len(raw) <= MAX_LEN and raw.isascii():
        plain = _PLAIN_EMAIL.fullmatch(raw)
        if plain and plain.group(1) not in _DOTLESS:
            return raw
    text = clip(raw)
    if not text or "@" not in text:
        return None
    if len(text) == MAX_LEN and len(_INVISIBLE.sub("", raw.strip())) > MAX_LEN:
        return None  # cut to MAX_LEN it could read as another, valid-looking address
    text = _address_part(text)
    if " " in text:
        return None
    local, _, domain = text.lower().rpartition("@")
    local = local.split("+", 1)[0]
    domain = domain.strip(".")
    if domain in _DOTLESS:
        local, domain = local.replace(".", ""), _DOTLESS[domain]
    if not local or not domain or "." not in domain or "@" in local:
        return None
    if not _EMAIL_DOMAIN.fullmatch(domain) or not _EMAIL_LOCAL.fullmatch(local):
        return None
    return f"{local}@{domain}"


def _address_part(text: str) -> str:
    """The address of ``Name <addr>`` (what mail headers and CRM exports hold) or of a
    ``mailto:addr?subject=...`` link; any other text unchanged."""
    text = text.strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].split("?", 1)[0].strip()
    if "<" in text:
        text = email.utils.parseaddr(text)[1]
    return text


def is_shared_inbox(email: str) -> bool:
    return email.split("@", 1)[0] in SHARED_LOCAL_PARTS


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[1]


def is_webmail(domain: Optional[str]) -> bool:
    return bool(domain) and (domain in WEBMAIL or registrable(domain) in WEBMAIL)


@_text_cache
def normalise_domain(raw: object) -> Optional[str]:
    text = clip(raw)
    if not text:
        return None
    value = _URL_SCHEME.sub("", text.strip().lower()).split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    value = value.split("@")[-1].split(":", 1)[0].strip(".")
    value = value.removeprefix("www.")
    if "." not in value or not _EMAIL_DOMAIN.fullmatch(value):
        return None
    return value


# Second-level public suffixes common in company domains (acme.co.uk is registrable, co.uk is not).
_SECOND_LEVEL = frozenset({"co.uk", "org.uk", "ac.uk", "com.au", "net.au", "co.nz", "co.jp", "com.br",
                           "com.mx", "co.in", "co.za", "com.sg", "com.cn", "co.kr", "com.tr"})


@functools.lru_cache(maxsize=65_536)
def registrable(domain: str) -> str:
    """The part of a domain its owner registered: mail.eu.acme.com -> acme.com."""
    parts = domain.split(".")
    keep = 3 if ".".join(parts[-2:]) in _SECOND_LEVEL else 2
    return ".".join(parts[-keep:])


def company_domains(raws: list) -> list[str]:
    """Registrable, non-webmail domains, first seen first."""
    try:
        return list(_company_domains(tuple(raws)))
    except TypeError:  # junk (unhashable) values: not memoised
        return list(_company_domains.__wrapped__(raws))


@functools.lru_cache(maxsize=65_536)
def _company_domains(raws: tuple) -> tuple[str, ...]:
    out: list[str] = []
    for raw in raws:
        d = normalise_domain(raw)
        if d and not is_webmail(d):
            d = registrable(d)
            if d not in out:
                out.append(d)
    return tuple(out)


@_text_cache
def normalise_company_name(raw: object) -> Optional[str]:
    text = clip(raw)
    if not text:
        return None
    text = ascii_fold(text)
    # single spaces from here on: words are split on " " alone
    words = _NOT_NAME_CHAR.sub(" ", text.replace(",", " ")).strip().split(" ")
    if words[0] == "the" and len(words) > 1:
        del words[0]
    # "GmbH & Co. KG": the "&" between two legal forms goes with them
    while words and (_is_legal_suffix(words[-1]) or words[-1] == "&"):
        words.pop()
    text = " ".join(" ".join(words).replace(".", " ").split())
    if not text or text in PLACEHOLDERS:
        return None
    return text


def _is_legal_suffix(word: str) -> bool:
    return word in LEGAL_SUFFIXES or (word[-1:] == "." and word[:-1] in LEGAL_SUFFIXES) or \
        (_DOTTED_INITIALS.fullmatch(word) is not None and word.replace(".", "") in LEGAL_SUFFIXES)


DEFAULT_PHONE_REGION = "US"  # PAYREADY_DEFAULT_PHONE_REGION's default, for callers that name none

# A North American number in its everyday forms: +1 415 555 0101, +1.415.555.0101, (415) 555-0101,
# 415.555.0101, 1-415-555-0101, 4155550101. The area code begins with 2-9: a leading 0 or 1 may be
# a trunk or an international prefix, which only the full parser reads right.
_NANP_FORM = re.compile(r"(\+?1[ .\-]?)?(?:\(([2-9]\d\d)\)[ .\-]?|([2-9]\d\d)[ .\-]?)(\d{3})[ .\-]?(\d{4})",
                        re.ASCII)  # \d alone takes any script's digits, which the parser converts


def normalise_phone(raw: object, region: str = DEFAULT_PHONE_REGION) -> Optional[str]:
    """The number in E.164 (+14155550101), extension dropped; written without a country code, it is
    read as a number of ``region`` (ISO 3166 alpha-2, upper case). None unless it is a possible
    number with its area code (a seven-digit local number names a different line per area), and
    not a number typed for want of one (``is_placeholder_phone``)."""
    if not isinstance(raw, str) or not isinstance(region, str):
        return None
    number = _e164(raw, region)
    return None if number is None or is_placeholder_phone(number) else number


# what forms ask for and people type when they have no number: many records share one, so as
# evidence it would join strangers (a phone is +6.5 log-odds, a blocking key too)
_PLACEHOLDER_TAILS = frozenset({"1234567890", "0123456789", "9876543210"})


def is_placeholder_phone(e164: str) -> bool:
    """000-000-0000, 555-555-5555, 123-456-7890 and the like: its last seven digits one digit
    repeated, or its last ten a run up or down."""
    return len(set(e164[-7:])) == 1 or e164[-10:] in _PLACEHOLDER_TAILS


@functools.lru_cache(maxsize=262_144)
def _e164(raw: str, region: str) -> Optional[str]:
    text = clip(raw)
    if not text:
        return None
    if "x" in text or "X" in text:  # every way of writing an extension has one; the regex scans the whole text
        text = _PHONE_EXTENSION.split(text)[0]
    nanp = _NANP_FORM.fullmatch(text)
    # the parser costs ~30 µs a number: the common forms are read here, to the same result
    if nanp and (text[0] == "+" or _is_nanp_region(region)):
        return "+1" + (nanp.group(2) or nanp.group(3)) + nanp.group(4) + nanp.group(5)
    return parse_phone(text, region)


def parse_phone(text: str, region: str) -> Optional[str]:
    """E.164 of ``text`` as libphonenumber reads it (the reference the fast path above must match)."""
    import phonenumbers  # imported on first use: 55 ms that the API and CLI, which never read phones, skip

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:  # not a number, or no country code and no known region
        return None
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=256)
def _is_nanp_region(region: str) -> bool:
    """Whether a number written without a country code is read in the North American plan (+1)."""
    import phonenumbers

    return phonenumbers.country_code_for_region(region) == 1


@_text_cache
def normalise_title(raw: object) -> Optional[str]:
    text = clip(raw)
    return " ".join(_WORDS.findall(ascii_fold(text))) or None if text else None


class PersonName(NamedTuple):
    first: str  # lower-case ascii, may be one initial
    last: str
    full: str  # "first last"


def _tokens(text: str) -> list[str]:
    text = ascii_fold(text)
    text = _PARENTHESES.sub(" ", text)  # "Robert (Bob) Smith"
    return [t for t in _NAME_TOKEN.findall(text.replace(".", ". "))
            if any(c.isalpha() for c in t)]


@_text_cache
def parse_person_name(raw: object) -> Optional[PersonName]:
    """First and last name from how tools write them: "Last, First", initials, accents, honorifics."""
    text = clip(raw)
    if not text or "@" in text or text.strip().lower() in PLACEHOLDERS:
        return None
    if "," in text:
        last_part, _, first_part = text.partition(",")
        # "Smith Jr., Dr. John": titles and suffixes drop on either side of the comma too
        first_tokens = [t for t in _tokens(first_part) if t not in _HONORIFIC and t not in _GENERATIONAL]
        last_tokens = [t for t in _tokens(last_part) if t not in _HONORIFIC and t not in _GENERATIONAL]
        tokens = first_tokens[:1] + last_tokens if first_tokens else last_tokens
        if first_tokens and last_tokens:
            return _make(first_tokens[0], last_tokens)
    tokens = [t for t in _tokens(text) if t not in _HONORIFIC and t not in _GENERATIONAL]
    if not tokens or " ".join(tokens) in PLACEHOLDERS:
        return None
    if len(tokens) == 1:
        return _make(tokens[0], [])
    # middle names and initials drop; particles stay with the last name ("van der berg")
    last = [tokens[-1]]
    i = len(tokens) - 2
    while i >= 1 and tokens[i] in _LAST_PREFIXES:
        last.insert(0, tokens[i])
        i -= 1
    return _make(tokens[0], last)


def _make(first: str, last_tokens: list[str]) -> Optional[PersonName]:
    last = "".join(t.replace("'", "").replace("-", "") for t in last_tokens)
    first = first.replace("'", "").replace("-", "")
    if not first and not last:
        return None
    return PersonName(first, last, f"{first} {last}".strip())


@functools.lru_cache(maxsize=65536)
def first_name_forms(first: str) -> frozenset[str]:
    """The name, the formal names it shortens and their nicknames (bob -> robert, rob, bobby...).

    One step only: the genealogical nickname list links many names through rare forms, and
    following those chains would make Robert agree with William.
    """
    if len(first) <= 1:
        return frozenset({first})
    forms = {first}
    for formal in canonical_first_names(first):
        forms.add(formal)
        forms.update(_nicknames_of(formal))
    return frozenset(forms)


@functools.lru_cache(maxsize=65536)
def canonical_first_names(first: str) -> frozenset[str]:
    """The formal names a first name may stand for: itself when it is a formal name (robert),
    else the formal names it is a nickname of (bob -> robert)."""
    if _nicknames_of(first):
        return frozenset({first})
    extra = {c for c, nicks in _extra_nicknames().items() if first in nicks}
    return frozenset({first} | set(_nicknamer().canonicals_of(first)) | extra)


@functools.lru_cache(maxsize=65536)
def formal_initials(first: str) -> frozenset[str]:
    """Initials of the formal names a first name may shorten (bob -> r, for Robert), itself aside."""
    extra = {c for c, nicks in _extra_nicknames().items() if first in nicks}
    return frozenset(formal[:1] for formal in set(_nicknamer().canonicals_of(first)) | extra if formal)


def _nicknames_of(formal: str) -> frozenset[str]:
    return frozenset(_nicknamer().nicknames_of(formal)) | _extra_nicknames().get(formal, frozenset())


@functools.lru_cache(maxsize=1)
def _nicknamer():  # noqa: ANN202 - the package's own class
    from nicknames import NickNamer

    return NickNamer()


@functools.lru_cache(maxsize=1)
def _extra_nicknames() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for line in (Path(__file__).parent / "nicknames_extra.csv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            canonical, *nicks = line.strip().split(",")
            out[canonical] = out.get(canonical, frozenset()) | frozenset(nicks)
    return out


def local_part_fits_name(local: str, name: Optional["PersonName"]) -> bool:
    """Whether an address's local part is built from the name (jsmith, john.smith, smith.j, ...)."""
    if name is None or not name.first or not name.last:
        return False
    bare = _NOT_ALNUM.sub("", ascii_fold(local))
    f, l_ = name.first, name.last
    forms = {f + l_, f[0] + l_, f, f + l_[0], l_ + f, l_ + f[0], l_}
    forms |= {c + l_ for c in canonical_first_names(f)} | {c for c in canonical_first_names(f)}
    return bare in forms


@functools.lru_cache(maxsize=65536)
def phonetic(word: str) -> str:
    return jellyfish.metaphone(word) if word else ""
