"""Typed settings read from the environment, parsed strictly, checked once at start.

Every setting is one line below with its variable, default and a comment. A value that does not
parse fails start-up with a :class:`ConfigError` naming the variable. Secrets may be given as
``<NAME>_FILE`` (a path whose content is the value), never logged. The domain derives everything
that keeps domains apart: schema, Redis prefix, queue names, vector collections, metric prefix.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit


class ConfigError(ValueError):
    """Bad configuration; the message names the variable."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DOMAIN_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def parse_bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use one of 1/0, true/false, yes/no, on/off)")


def parse_int(name: str, raw: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is out of range [{minimum}, {maximum}]")
    return value


def parse_float(name: str, raw: str, minimum: float = 0.0) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def parse_choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
        return value
    return parse


def parse_url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        scheme = urlsplit(value).scheme
        if scheme not in schemes:
            raise ConfigError(f"{name} must be a URL with scheme {'/'.join(schemes)}, got {redact_url(value)!r}")
        return value
    return parse


def parse_domain(name: str, raw: str) -> str:
    value = raw.strip()
    if not _DOMAIN_RE.match(value):
        raise ConfigError(f"{name}={raw!r} must be lower-case letters, digits and '_' (e.g. pay_ready)")
    return value


def redact_url(url: Optional[str]) -> Optional[str]:
    """The URL with its password replaced, for logs and `status --json`."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _read(env: Mapping[str, str], name: str, secret: bool = False) -> Optional[str]:
    """The raw value of ``name``, or of the file named by ``name_FILE`` for secrets."""
    if secret and env.get(f"{name}_FILE"):
        path = Path(env[f"{name}_FILE"])
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={str(path)!r} cannot be read: {exc.strerror}") from None
    value = env.get(name)
    return value if value not in (None, "") else None


@dataclass(frozen=True)
class Settings:
    # Which domain this process serves; derives schema, Redis prefix, queues, collections, metrics.
    domain: str = "pay_ready"
    # Postgres SQLAlchemy URL; unset = the embedded Postgres (pgvector) under data_dir.
    database_url: Optional[str] = field(default=None, repr=False)
    # Redis URL for caches and locks; unset = the embedded Redis under data_dir.
    redis_url: Optional[str] = field(default=None, repr=False)
    # Celery broker (redis:// or amqp:// for RabbitMQ); unset = the Redis above.
    broker_url: Optional[str] = field(default=None, repr=False)
    # Where the embedded Postgres and Redis keep their data, kept across restarts.
    data_dir: Path = Path(".payready")
    # Where records come from: "files" (JSONL landing folder) or "airbyte" (destination tables).
    landing: str = "files"
    # Folder of <source>/<stream>.jsonl for landing=files; unset = the bundled sample.
    landing_dir: Optional[Path] = None
    # Schema of the Airbyte destination tables per source: each connection writes to its own
    # namespace (gong and slack both have a `users` stream); "{source}" is replaced by the source.
    airbyte_schema: str = "airbyte_{source}"
    # Postgres holding the Airbyte destination tables; unset = the database above.
    airbyte_database_url: Optional[str] = field(default=None, repr=False)
    # Destination layout: "final" (3.x direct-load typed tables) or "raw" (raw JSON tables).
    airbyte_layout: str = "final"
    # Airbyte connection id per source, "gong=<uuid>,slack=<uuid>" (landing=airbyte).
    airbyte_connections: tuple[tuple[str, str], ...] = ()
    # Seconds between polls of a running Airbyte job (the wait task re-schedules itself).
    airbyte_poll_seconds: int = 15
    # Sources that take part in a sync when none are named.
    sources: tuple[str, ...] = ("gong", "slack", "hubspot", "salesforce")
    # Records per processing batch: big enough to amortise task overhead, small for memory.
    batch_size: int = 1000
    # Overlap re-read behind the checkpoint, seconds: catches rows committed late with older times.
    lookback_seconds: int = 300
    # Vector store: "pgvector" (same Postgres) or "weaviate".
    vector_store: str = "pgvector"
    # Embedder: "local" (MiniLM int8 ONNX, offline) or "openai".
    embedder: str = "local"
    # Chunks per embed task.
    embed_batch_size: int = 256
    # Keep Slack bot messages (CRM-update feeds are bot posts) instead of skipping them.
    include_bot_messages: bool = False
    # Redis key prefix; unset = initials of the domain ("pr:" for pay_ready). Claimed by the domain at
    # start (common/prefix.py): a prefix another domain holds fails start-up.
    redis_prefix: Optional[str] = None
    # API bind address and port for `payready up`.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Flower bind port and "user:password" basic auth (secret; unset = no auth, loopback only).
    flower_port: int = 5555
    # Flower bind address: loopback unless a container must publish it.
    flower_host: str = "127.0.0.1"
    flower_basic_auth: Optional[str] = field(default=None, repr=False)
    # Log level of every process.
    log_level: str = "INFO"
    # Seconds after which a run without heartbeat is presumed dead and resumed.
    run_stale_seconds: int = 600
    # Processing batches one process task does before it re-enqueues itself (keeps tasks short).
    process_batches_per_task: int = 20
    # Embed batches one embed task does before it re-enqueues itself (keeps tasks short).
    embed_batches_per_task: int = 20
    # Seconds Redis waits before redelivering an unacknowledged message (must exceed any task).
    visibility_timeout_seconds: int = 3600
    # Beat's sync interval per source in seconds, "gong=3600,slack=300"; unnamed sources keep
    # the defaults in common/schedule.py.
    sync_intervals: tuple[tuple[str, int], ...] = ()
    # Days finished runs and re-driven dead letters are kept before beat prunes them.
    retention_days: int = 90
    # Port on which a worker's main process serves /metrics for its pool (0 = not served).
    metrics_port: int = 0
    # Address the worker metrics server binds (containers publishing it set 0.0.0.0).
    metrics_host: str = "127.0.0.1"
    # /readyz fails when a queue holds more messages than this.
    queue_depth_limit: int = 10_000
    # /readyz names a source whose last successful sync is older than this many seconds.
    freshness_limit_seconds: int = 86_400
    # Airbyte public API base URL and application credentials (landing=airbyte).
    airbyte_api_url: Optional[str] = None
    airbyte_client_id: Optional[str] = None
    airbyte_client_secret: Optional[str] = field(default=None, repr=False)
    # Weaviate URL (vector_store=weaviate).
    weaviate_url: Optional[str] = None
    # Weaviate API key (secret; unset = anonymous access) and gRPC port (the v4 client needs both).
    weaviate_api_key: Optional[str] = field(default=None, repr=False)
    weaviate_grpc_port: int = 50051
    # OpenAI key and base URL (embedder=openai, answers); base URL for compatible servers.
    openai_api_key: Optional[str] = field(default=None, repr=False)
    openai_base_url: Optional[str] = None
    # OpenAI embedding model (embedder=openai).
    openai_embedding_model: str = "text-embedding-3-small"
    # OpenAI chat model that writes natural-language answers (when OPENAI_API_KEY is set).
    openai_chat_model: str = "gpt-4o-mini"
    # Token budget of the pruned context handed to the chat model per question.
    answer_context_tokens: int = 3000
    # Country (ISO 3166 alpha-2) of phone numbers written without a country code, for entity
    # resolution: with US, (207) 946-0958 is +12079460958 and never the London +44 20 7946 0958.
    default_phone_region: str = "US"

    # ---- derived names: one place, so domains never collide ----
    @property
    def schema(self) -> str:
        return self.domain

    @property
    def key_prefix(self) -> str:
        if self.redis_prefix:
            return self.redis_prefix
        parts = self.domain.split("_")
        return ("".join(p[0] for p in parts if p) if len(parts) > 1 else self.domain) + ":"

    @property
    def celery_key_prefix(self) -> str:
        """Prefix of Celery's Redis keys (kombu's ``global_keyprefix``): queue ``<domain>.ingest`` is
        the Redis list ``<key_prefix>celery:<domain>.ingest``."""
        return self.key_prefix + "celery:"

    @property
    def collection_prefix(self) -> str:
        return "".join(p.capitalize() for p in self.domain.split("_"))

    @property
    def metric_prefix(self) -> str:
        return self.domain + "_"

    def queue(self, phase: str) -> str:
        return f"{self.domain}.{phase}"

    @property
    def embedded(self) -> bool:
        """True when this process must use the embedded Postgres/Redis."""
        return self.database_url is None or self.redis_url is None


# Variable name → (attribute, parser, secret). Vendors keep their own names (DESIGN §8).
_SOURCES = ("gong", "slack", "hubspot", "salesforce")


def _parse_sources(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(s.strip().lower() for s in raw.split(",") if s.strip())
    unknown = [s for s in items if s not in _SOURCES]
    if unknown or not items:
        raise ConfigError(f"{name}={raw!r}: sources must be a comma list of {', '.join(_SOURCES)}")
    return items


def _parse_schema_template(name: str, raw: str) -> str:
    value = raw.strip()
    try:
        rendered = value.format(source="gong")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"{name}={raw!r}: only the placeholder {{source}} is allowed") from None
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", rendered):
        raise ConfigError(f"{name}={raw!r} does not give a valid schema name")
    return value


def _parse_phone_region(name: str, raw: str) -> str:
    import phonenumbers  # only when the variable is set: start-up of every process skips its 55 ms

    value = raw.strip().upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{name}={raw!r} is not a country phone numbers are known for: give an ISO 3166 "
                          "alpha-2 code such as US, GB or DE")
    return value


def _parse_intervals(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    pairs = []
    for item in (x.strip() for x in raw.split(",") if x.strip()):
        source, sep, seconds = item.partition("=")
        if not sep or source.strip() not in _SOURCES:
            raise ConfigError(f"{name}: {item!r} must be <source>=<seconds>, source one of {', '.join(_SOURCES)}")
        pairs.append((source.strip(), parse_int(name, seconds, 10, 7 * 86_400)))
    return tuple(pairs)


def _parse_connections(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in (x.strip() for x in raw.split(",") if x.strip()):
        source, sep, connection = item.partition("=")
        if not sep or source.strip() not in _SOURCES or not connection.strip():
            raise ConfigError(f"{name}: {item!r} must be <source>=<connection id>, source one of {', '.join(_SOURCES)}")
        pairs.append((source.strip(), connection.strip()))
    return tuple(pairs)


_VARS: dict[str, tuple[str, Callable[[str, str], object], bool]] = {
    "PAYREADY_DOMAIN": ("domain", parse_domain, False),
    "PAYREADY_DATABASE_URL": ("database_url", parse_url(("postgresql", "postgresql+psycopg2", "postgres")), True),
    "PAYREADY_REDIS_URL": ("redis_url", parse_url(("redis", "rediss", "unix")), True),
    "PAYREADY_BROKER_URL": ("broker_url", parse_url(("redis", "rediss", "redis+socket", "amqp", "amqps", "pyamqp")), True),
    "PAYREADY_DATA_DIR": ("data_dir", lambda n, v: Path(v).expanduser(), False),
    "PAYREADY_LANDING": ("landing", parse_choice(("files", "airbyte")), False),
    "PAYREADY_LANDING_DIR": ("landing_dir", lambda n, v: Path(v).expanduser(), False),
    "PAYREADY_AIRBYTE_SCHEMA": ("airbyte_schema", lambda n, v: _parse_schema_template(n, v), False),
    "PAYREADY_AIRBYTE_DATABASE_URL": ("airbyte_database_url", parse_url(("postgresql", "postgresql+psycopg2", "postgres")), True),
    "PAYREADY_AIRBYTE_LAYOUT": ("airbyte_layout", parse_choice(("final", "raw")), False),
    "PAYREADY_AIRBYTE_CONNECTIONS": ("airbyte_connections", lambda n, v: _parse_connections(n, v), False),
    "PAYREADY_AIRBYTE_POLL_SECONDS": ("airbyte_poll_seconds", lambda n, v: parse_int(n, v, 1, 3600), False),
    "PAYREADY_SOURCES": ("sources", _parse_sources, False),
    "PAYREADY_BATCH_SIZE": ("batch_size", lambda n, v: parse_int(n, v, 1, 100_000), False),
    "PAYREADY_LOOKBACK_SECONDS": ("lookback_seconds", lambda n, v: parse_int(n, v, 0, 86_400), False),
    "PAYREADY_VECTOR_STORE": ("vector_store", parse_choice(("pgvector", "weaviate")), False),
    "PAYREADY_EMBEDDER": ("embedder", parse_choice(("local", "openai")), False),
    "PAYREADY_EMBED_BATCH_SIZE": ("embed_batch_size", lambda n, v: parse_int(n, v, 1, 4096), False),
    "PAYREADY_INCLUDE_BOT_MESSAGES": ("include_bot_messages", parse_bool, False),
    "PAYREADY_REDIS_PREFIX": ("redis_prefix", lambda n, v: v.strip(), False),
    "PAYREADY_API_HOST": ("api_host", lambda n, v: v.strip(), False),
    "PAYREADY_API_PORT": ("api_port", lambda n, v: parse_int(n, v, 1, 65535), False),
    "PAYREADY_FLOWER_PORT": ("flower_port", lambda n, v: parse_int(n, v, 1, 65535), False),
    "PAYREADY_FLOWER_HOST": ("flower_host", lambda n, v: v.strip(), False),
    "PAYREADY_FLOWER_BASIC_AUTH": ("flower_basic_auth", lambda n, v: v.strip(), True),
    "PAYREADY_LOG_LEVEL": ("log_level", parse_choice(("debug", "info", "warning", "error")), False),
    "PAYREADY_RUN_STALE_SECONDS": ("run_stale_seconds", lambda n, v: parse_int(n, v, 30, 86_400), False),
    "PAYREADY_PROCESS_BATCHES_PER_TASK": ("process_batches_per_task", lambda n, v: parse_int(n, v, 1, 100_000), False),
    "PAYREADY_EMBED_BATCHES_PER_TASK": ("embed_batches_per_task", lambda n, v: parse_int(n, v, 1, 100_000), False),
    "PAYREADY_VISIBILITY_TIMEOUT_SECONDS": ("visibility_timeout_seconds", lambda n, v: parse_int(n, v, 10, 7 * 86_400), False),
    "PAYREADY_SYNC_INTERVALS": ("sync_intervals", _parse_intervals, False),
    "PAYREADY_RETENTION_DAYS": ("retention_days", lambda n, v: parse_int(n, v, 1, 3650), False),
    "PAYREADY_METRICS_PORT": ("metrics_port", lambda n, v: parse_int(n, v, 0, 65535), False),
    "PAYREADY_METRICS_HOST": ("metrics_host", lambda n, v: v.strip(), False),
    "PAYREADY_QUEUE_DEPTH_LIMIT": ("queue_depth_limit", lambda n, v: parse_int(n, v, 1, 10_000_000), False),
    "PAYREADY_FRESHNESS_LIMIT_SECONDS": ("freshness_limit_seconds", lambda n, v: parse_int(n, v, 60, 30 * 86_400), False),
    "AIRBYTE_API_URL": ("airbyte_api_url", parse_url(("http", "https")), False),
    "AIRBYTE_CLIENT_ID": ("airbyte_client_id", lambda n, v: v.strip(), False),
    "AIRBYTE_CLIENT_SECRET": ("airbyte_client_secret", lambda n, v: v.strip(), True),
    "WEAVIATE_URL": ("weaviate_url", parse_url(("http", "https")), False),
    "WEAVIATE_API_KEY": ("weaviate_api_key", lambda n, v: v.strip(), True),
    "PAYREADY_WEAVIATE_GRPC_PORT": ("weaviate_grpc_port", lambda n, v: parse_int(n, v, 1, 65535), False),
    "OPENAI_API_KEY": ("openai_api_key", lambda n, v: v.strip(), True),
    "OPENAI_BASE_URL": ("openai_base_url", parse_url(("http", "https")), False),
    "PAYREADY_OPENAI_EMBEDDING_MODEL": ("openai_embedding_model", lambda n, v: v.strip(), False),
    "PAYREADY_OPENAI_CHAT_MODEL": ("openai_chat_model", lambda n, v: v.strip(), False),
    "PAYREADY_ANSWER_CONTEXT_TOKENS": ("answer_context_tokens", lambda n, v: parse_int(n, v, 200, 200_000), False),
    "PAYREADY_DEFAULT_PHONE_REGION": ("default_phone_region", _parse_phone_region, False),
}


def load(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Settings from ``env`` (default: the process environment); raises ConfigError."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for var, (attr, parser, secret) in _VARS.items():
        raw = _read(env, var, secret)
        if raw is not None:
            values[attr] = parser(var, raw)
    settings = Settings(**values)
    if settings.log_level.islower():
        settings = _replace(settings, log_level=settings.log_level.upper())
    _check_combinations(settings)
    return settings


def _replace(settings: Settings, **changes: object) -> Settings:
    data = {f.name: getattr(settings, f.name) for f in fields(settings)}
    data.update(changes)
    return Settings(**data)


def _check_combinations(s: Settings) -> None:
    if s.landing == "airbyte":
        for var, value in (("AIRBYTE_API_URL", s.airbyte_api_url), ("AIRBYTE_CLIENT_ID", s.airbyte_client_id),
                           ("AIRBYTE_CLIENT_SECRET", s.airbyte_client_secret)):
            if not value:
                raise ConfigError(f"{var} is required when PAYREADY_LANDING=airbyte")
        missing = [src for src in s.sources if src not in dict(s.airbyte_connections)]
        if missing:
            raise ConfigError(f"PAYREADY_AIRBYTE_CONNECTIONS has no connection id for {', '.join(missing)}")
    if s.vector_store == "weaviate" and not s.weaviate_url:
        raise ConfigError("WEAVIATE_URL is required when PAYREADY_VECTOR_STORE=weaviate")
    if s.embedder == "openai" and not s.openai_api_key:
        raise ConfigError("OPENAI_API_KEY is required when PAYREADY_EMBEDDER=openai")
    if s.flower_basic_auth is not None and ":" not in s.flower_basic_auth:
        raise ConfigError("PAYREADY_FLOWER_BASIC_AUTH must be 'user:password'")


def documented_variables() -> list[str]:
    """Every variable the settings read, for the README table and its test."""
    return list(_VARS)


_current: Optional[Settings] = None


def get() -> Settings:
    """The process-wide settings, loaded on first use."""
    global _current
    if _current is None:
        _current = load()
    return _current


def override(settings: Optional[Settings]) -> None:
    """Replace the process-wide settings (CLI start-up, tests)."""
    global _current
    _current = settings
