"""Query-string validators: each returns the typed value or raises BadRequest naming the parameter."""
from __future__ import annotations

import datetime as dt
from typing import Mapping, Optional

from api.services import BadRequest

SOURCES = ("gong", "slack", "hubspot", "salesforce")
KINDS = ("call", "thread", "note", "email", "meeting", "task", "event")


def time_param(args: Mapping[str, str], name: str) -> Optional[dt.datetime]:
    """An ISO-8601 date or time; naive values are taken as UTC."""
    return parse_time(name, args.get(name))


def parse_time(name: str, raw: Optional[str]) -> Optional[dt.datetime]:
    """``raw`` as an aware datetime (naive is UTC); an empty value is no value, as for every
    optional parameter here (the OpenAPI document says so with ``allowEmptyValue``)."""
    if raw is None or not raw.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        # in UTC: Postgres refuses offsets beyond ±15:59 that Python takes (up to ±23:59)
        return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 date or time, got {raw[:40]!r}") from None
    except OverflowError:  # year 1 at +01:00 is before year 1 in UTC
        raise BadRequest(f"{name} is out of range: {raw[:40]!r}") from None


def choices_param(args: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> Optional[list[str]]:
    """A comma list drawn from ``allowed``; duplicates dropped, order kept."""
    raw = args.get(name)
    if not raw:
        return None
    values = list(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise BadRequest(f"{name} must be drawn from {', '.join(allowed)}; got {', '.join(bad)[:80]}")
    return values


def int_param(args: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be between {minimum} and {maximum}")
    return value


def required(args: Mapping[str, str], name: str) -> str:
    value = (args.get(name) or "").strip()
    if not value:
        raise BadRequest(f"{name} is required")
    return value


def time_window(start: Optional[dt.datetime], end: Optional[dt.datetime]) -> None:
    if start and end and start >= end:
        raise BadRequest("from must be earlier than to")
