"""Slack: users, channels, and messages grouped into one interaction per thread.

Parents come from ``channel_messages`` and replies from ``threads``, in any order and often in
later batches (replies are re-read within the lookback window), so every thread interaction is
*partial*: it carries the turns this batch saw, and ``occurred_at`` only when the parent is
among them. Messages of one thread within a batch are merged into a single interaction.
"""
from __future__ import annotations

import html
import re
from typing import Any, Iterable, Optional

from ingest_worker.model import (PERSON, THREAD, Identity, IdentityKey, Interaction, Outcome,
                                 Participant, Turn)
from ingest_worker.sources.text import (BadRecord, directory_name, leftover, normalize_email,
                                        required_time, require_id, run, safe_str, slack_ts_ms)

SOURCE = "slack"
STREAMS = ("users", "channels", "channel_members", "channel_messages", "threads")
CHANNEL = "channel"  # entity_type of channel lookups: not a person or company

# Housekeeping events, not conversation: counted as processed, produce nothing.
SKIP_SUBTYPES = frozenset({
    "channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name",
    "channel_archive", "channel_unarchive", "channel_convert_to_private",
    "channel_convert_to_public", "group_join", "group_leave", "group_topic", "group_purpose",
    "group_name", "group_archive", "group_unarchive", "pinned_item", "unpinned_item",
    "bot_add", "bot_remove", "reminder_add", "tombstone", "joiner_notification",
})

_MARKUP = re.compile(r"<([@#!])?([^<>|]+)(?:\|([^<>]*))?>")


def user_key(user_id: str) -> IdentityKey:
    return IdentityKey(SOURCE, "users", user_id)


def channel_key(channel_id: str) -> IdentityKey:
    return IdentityKey(SOURCE, "channels", channel_id)


def thread_key(channel_id: str, thread_ts: str) -> IdentityKey:
    return IdentityKey(SOURCE, "threads", f"{channel_id}:{thread_ts}")


def _users(rec: dict, ctx: Any, out: Outcome) -> None:
    uid = require_id(rec, "id")
    profile = rec.get("profile") if isinstance(rec.get("profile"), dict) else {}
    email = normalize_email(profile.get("email"))
    attributes = leftover(rec, {"id", "real_name", "profile"})
    rest = leftover(profile, {"email", "real_name", "title", "phone"})
    if rest:
        attributes["profile"] = rest
    attributes["is_bot"] = bool(rec.get("is_bot"))
    out.identities.append(Identity(
        key=user_key(uid), entity_type=PERSON,
        name=(safe_str(rec.get("real_name")) or safe_str(profile.get("real_name"))
              or safe_str(profile.get("display_name")) or safe_str(rec.get("name"))),
        emails=[email] if email else [], phone=safe_str(profile.get("phone")),
        title=safe_str(profile.get("title")), is_internal=True, attributes=attributes,
    ))


def _channels(rec: dict, ctx: Any, out: Outcome) -> None:
    cid = require_id(rec, "id")
    name = safe_str(rec.get("name"))
    out.identities.append(Identity(
        key=channel_key(cid), entity_type=CHANNEL, name=f"#{name}" if name else None,
        attributes=leftover(rec, {"id"}),
    ))


def _members(rec: dict, ctx: Any, out: Outcome) -> None:
    # Membership adds nothing the messages do not show; only checked so bad rows are visible.
    require_id(rec, "member_id")
    require_id(rec, "channel_id")


def render(text: Optional[str], ctx: Any) -> str:
    """Slack mrkdwn to readable text: <@U1> -> @Name, <#C1|x> -> #x, <url|label> -> label (url)."""
    if not text:
        return ""

    def sub(match: re.Match) -> str:
        sigil, target, label = match.group(1), match.group(2), match.group(3)
        if sigil == "@":
            name = directory_name(ctx, user_key(target)) or label or target
            return f"@{name}"
        if sigil == "#":
            found = directory_name(ctx, channel_key(target))
            return found or f"#{label or target}"
        if sigil == "!":
            return f"@{(label or target).lstrip('@').split('^')[0]}"
        return f"{label} ({target})" if label and label != target else target

    return html.unescape(_MARKUP.sub(sub, text)).strip()


def _participant(role: str, uid: str, ctx: Any) -> Participant:
    key = user_key(uid)
    found = ctx.directory.get(key) if ctx is not None else None
    return Participant(role=role, identity=key, name=found.name if found else None,
                       email=found.emails[0] if found and found.emails else None)


def _message(rec: dict, ctx: Any, out: Outcome) -> None:
    cid = require_id(rec, "channel_id", "channel")
    ts = require_id(rec, "ts")
    thread_ts = safe_str(rec.get("thread_ts")) or ts
    try:
        start_ms = slack_ts_ms(ts)
        slack_ts_ms(thread_ts)
    except ValueError as exc:
        raise BadRecord(str(exc)) from None
    subtype = safe_str(rec.get("subtype"))
    if subtype in SKIP_SUBTYPES:
        return
    is_bot = bool(rec.get("bot_id")) or subtype == "bot_message"
    if is_bot and not getattr(ctx, "include_bot_messages", False):
        return

    uid = safe_str(rec.get("user"))
    text = render(safe_str(rec.get("text")), ctx)
    if not text:
        names = [safe_str(f.get("name") or f.get("title")) for f in rec.get("files") or []
                 if isinstance(f, dict)]
        text = " ".join(f"[file: {n}]" for n in names if n)
    speaker_name = directory_name(ctx, user_key(uid)) if uid else None
    if is_bot and not speaker_name:
        bot = rec.get("bot_profile") if isinstance(rec.get("bot_profile"), dict) else {}
        speaker_name = safe_str(bot.get("name")) or safe_str(rec.get("username"))

    participants = [_participant("author", uid, ctx)] if uid else []
    for mentioned in dict.fromkeys(re.findall(r"<@([A-Z0-9]+)(?:\|[^>]*)?>", rec.get("text") or "")):
        if mentioned != uid:
            participants.append(_participant("mentioned", mentioned, ctx))

    extra = leftover(rec, {"channel_id", "ts", "thread_ts", "user", "text", "float_ts", "type"})
    is_parent = thread_ts == ts
    metadata: dict[str, Any] = {"channel_id": cid, "thread_ts": thread_ts}
    if extra:
        metadata["extra"] = {ts: extra}  # keyed by ts so turns of later batches merge cleanly
    if is_bot:
        metadata["bot_messages"] = [ts]
    out.interactions.append(Interaction(
        key=thread_key(cid, thread_ts), kind=THREAD,
        occurred_at=required_time(ts, "ts") if is_parent else None,
        title=directory_name(ctx, channel_key(cid)),
        participants=participants,
        turns=[Turn(turn_key=ts, text=text, start_ms=start_ms, speaker_id=uid,
                    speaker_name=speaker_name, speaker_identity=user_key(uid) if uid else None)],
        metadata=metadata, partial=True,
    ))


def _merge(interactions: list[Interaction]) -> list[Interaction]:
    """One interaction per thread: turns unique by turn_key (last wins), participants unique."""
    merged: dict[IdentityKey, Interaction] = {}
    for item in interactions:
        into = merged.get(item.key)
        if into is None:
            merged[item.key] = item
            continue
        into.occurred_at = into.occurred_at or item.occurred_at
        into.title = into.title or item.title
        turns = {t.turn_key: t for t in into.turns}
        turns.update({t.turn_key: t for t in item.turns})
        into.turns = list(turns.values())
        seen = {(p.role, p.identity) for p in into.participants}
        for p in item.participants:
            if (p.role, p.identity) not in seen:
                seen.add((p.role, p.identity))
                into.participants.append(p)
        into.metadata.setdefault("extra", {}).update(item.metadata.get("extra", {}))
        if item.metadata.get("bot_messages"):
            into.metadata.setdefault("bot_messages", []).extend(item.metadata["bot_messages"])
        if not into.metadata["extra"]:
            del into.metadata["extra"]
    for item in merged.values():
        item.turns.sort(key=lambda t: (t.start_ms, t.turn_key))
    return list(merged.values())


_HANDLERS = {"users": _users, "channels": _channels, "channel_members": _members,
             "channel_messages": _message, "threads": _message}


def process(stream: str, records: Iterable[dict], ctx: Any) -> Outcome:
    out = run(stream, records, _HANDLERS.get(stream), ctx)
    out.interactions = _merge(out.interactions)
    return out
