"""common/settings.py: defaults, derived names, strict parsing, secrets from files, combinations."""
from __future__ import annotations

from pathlib import Path

import pytest

from common import settings as settings_mod
from common.settings import ConfigError, load, redact_url

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- defaults / derived names


def test_defaults_derive_pay_ready_names():
    s = load({})
    assert s.domain == "pay_ready"
    assert s.schema == "pay_ready"
    assert s.key_prefix == "pr:"
    assert s.collection_prefix == "PayReady"
    assert s.metric_prefix == "pay_ready_"
    assert s.queue("ingest") == "pay_ready.ingest"
    assert s.queue("embed") == "pay_ready.embed"
    assert s.landing == "files" and s.embedder == "local" and s.vector_store == "pgvector"
    assert s.batch_size == 1000
    assert s.sources == ("gong", "slack", "hubspot", "salesforce")


def test_single_word_domain_keeps_its_name_as_prefix_and_queues():
    s = load({"PAYREADY_DOMAIN": "paragon"})
    assert s.schema == "paragon"
    assert s.key_prefix == "paragon:"
    assert s.collection_prefix == "Paragon"
    assert s.metric_prefix == "paragon_"
    assert [s.queue(p) for p in ("ingest", "resolve", "embed")] == [
        "paragon.ingest", "paragon.resolve", "paragon.embed"]


def test_domains_do_not_share_derived_names():
    a, b = load({}), load({"PAYREADY_DOMAIN": "paragon"})
    assert a.key_prefix != b.key_prefix
    assert a.queue("ingest") != b.queue("ingest")
    assert a.collection_prefix != b.collection_prefix


def test_explicit_redis_prefix_wins_over_derived_one():
    assert load({"PAYREADY_REDIS_PREFIX": "custom:"}).key_prefix == "custom:"


def test_values_are_parsed_to_their_types():
    s = load({"PAYREADY_BATCH_SIZE": " 250 ", "PAYREADY_INCLUDE_BOT_MESSAGES": "Yes",
              "PAYREADY_API_PORT": "9000", "PAYREADY_SOURCES": "Slack, gong",
              "PAYREADY_LANDING": "AIRBYTE", "AIRBYTE_API_URL": "https://api.airbyte.com/v1",
              "AIRBYTE_CLIENT_ID": "cid", "AIRBYTE_CLIENT_SECRET": "csecret",
              "PAYREADY_AIRBYTE_CONNECTIONS": "gong=c1, slack=c2",
              "PAYREADY_LOG_LEVEL": "debug"})
    assert s.batch_size == 250
    assert s.include_bot_messages is True
    assert s.api_port == 9000
    assert s.sources == ("slack", "gong")
    assert s.landing == "airbyte"
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize("raw, expected", [(None, "US"), ("GB", "GB"), (" de ", "DE"), ("us", "US")])
def test_default_phone_region_is_a_country_phone_numbers_know(raw, expected):
    env = {} if raw is None else {"PAYREADY_DEFAULT_PHONE_REGION": raw}
    assert load(env).default_phone_region == expected


@pytest.mark.parametrize("raw", ["XX", "usa", "U", "1", "001", "United Kingdom", "U.S."])
def test_unknown_phone_region_fails_start_naming_the_variable(raw):
    with pytest.raises(ConfigError, match=r"PAYREADY_DEFAULT_PHONE_REGION=.*ISO 3166 alpha-2"):
        load({"PAYREADY_DEFAULT_PHONE_REGION": raw})


def test_empty_value_means_unset():
    assert load({"PAYREADY_BATCH_SIZE": ""}).batch_size == 1000


# ----------------------------------------------------------------------------- strict parsing


@pytest.mark.parametrize("var, raw", [
    ("PAYREADY_BATCH_SIZE", "ten"),
    ("PAYREADY_BATCH_SIZE", "0"),
    ("PAYREADY_API_PORT", "70000"),
    ("PAYREADY_FLOWER_PORT", "0"),
    ("PAYREADY_INCLUDE_BOT_MESSAGES", "maybe"),
    ("PAYREADY_LANDING", "ftp"),
    ("PAYREADY_EMBEDDER", "cohere"),
    ("PAYREADY_DATABASE_URL", "mysql://u@h/db"),
    ("PAYREADY_REDIS_URL", "http://localhost:6379"),
    ("WEAVIATE_URL", "ftp://weaviate"),
    ("PAYREADY_DOMAIN", "Pay-Ready"),
    ("PAYREADY_DOMAIN", "1abc"),
    ("PAYREADY_SOURCES", "gong,zoom"),
])
def test_bad_value_fails_naming_the_variable(var, raw):
    with pytest.raises(ConfigError, match=var):
        load({var: raw})


def test_out_of_range_port_reports_the_range():
    with pytest.raises(ConfigError, match=r"PAYREADY_API_PORT=70000 is out of range \[1, 65535\]"):
        load({"PAYREADY_API_PORT": "70000"})


def test_bad_url_error_does_not_leak_the_password():
    with pytest.raises(ConfigError) as info:
        load({"PAYREADY_DATABASE_URL": "mysql://admin:topsecret@db.example/app"})
    assert "PAYREADY_DATABASE_URL" in str(info.value)
    assert "topsecret" not in str(info.value)


@pytest.mark.parametrize("raw, expected", [("1", True), ("on", True), ("FALSE", False), ("no", False)])
def test_boolean_spellings(raw, expected):
    assert load({"PAYREADY_INCLUDE_BOT_MESSAGES": raw}).include_bot_messages is expected


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# ----------------------------------------------------------------------------- secrets from files


def test_secret_read_from_file_and_stripped(tmp_path):
    key = tmp_path / "openai_key"
    key.write_text("sk-from-file\n")
    db = tmp_path / "db_url"
    db.write_text("postgresql://app:pw@db.example:5432/app\n")
    s = load({"OPENAI_API_KEY_FILE": str(key), "PAYREADY_DATABASE_URL_FILE": str(db),
              "PAYREADY_EMBEDDER": "openai"})
    assert s.openai_api_key == "sk-from-file"
    assert s.database_url == "postgresql://app:pw@db.example:5432/app"


def test_file_content_is_parsed_strictly_too(tmp_path):
    db = tmp_path / "db_url"
    db.write_text("mysql://app@db/app")
    with pytest.raises(ConfigError, match="PAYREADY_DATABASE_URL"):
        load({"PAYREADY_DATABASE_URL_FILE": str(db)})


def test_unreadable_secret_file_names_the_file_variable(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="OPENAI_API_KEY_FILE") as info:
        load({"OPENAI_API_KEY_FILE": str(missing)})
    assert str(missing) in str(info.value)


def test_unreadable_database_url_file_names_the_file_variable(tmp_path):
    with pytest.raises(ConfigError, match="PAYREADY_DATABASE_URL_FILE"):
        load({"PAYREADY_DATABASE_URL_FILE": str(tmp_path)})  # a directory cannot be read as text


# ----------------------------------------------------------------------------- combinations


AIRBYTE = {"AIRBYTE_API_URL": "https://api.airbyte.com/v1", "AIRBYTE_CLIENT_ID": "cid",
           "AIRBYTE_CLIENT_SECRET": "csecret",
           "PAYREADY_AIRBYTE_CONNECTIONS": "gong=c1,slack=c2,hubspot=c3,salesforce=c4"}


@pytest.mark.parametrize("missing", sorted(AIRBYTE))
def test_airbyte_landing_requires_each_airbyte_variable(missing):
    env = {"PAYREADY_LANDING": "airbyte", **{k: v for k, v in AIRBYTE.items() if k != missing}}
    with pytest.raises(ConfigError, match=missing):
        load(env)


def test_airbyte_landing_with_all_variables_loads():
    s = load({"PAYREADY_LANDING": "airbyte", **AIRBYTE})
    assert s.landing == "airbyte" and s.airbyte_client_secret == "csecret"


def test_openai_embedder_requires_key():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load({"PAYREADY_EMBEDDER": "openai"})
    assert load({"PAYREADY_EMBEDDER": "openai", "OPENAI_API_KEY": "sk-x"}).embedder == "openai"


def test_weaviate_store_requires_url():
    with pytest.raises(ConfigError, match="WEAVIATE_URL"):
        load({"PAYREADY_VECTOR_STORE": "weaviate"})


def test_flower_basic_auth_must_be_user_colon_password():
    with pytest.raises(ConfigError, match="PAYREADY_FLOWER_BASIC_AUTH"):
        load({"PAYREADY_FLOWER_BASIC_AUTH": "justapassword"})


# ----------------------------------------------------------------------------- redaction


def test_redact_url_hides_password_and_keeps_the_rest():
    out = redact_url("postgresql://app:s3cret@db.example:5432/payready?sslmode=require")
    assert "s3cret" not in out
    assert out == "postgresql://app:***@db.example:5432/payready?sslmode=require"


def test_redact_url_with_at_sign_in_password():
    out = redact_url("redis://user:p@ss@cache:6379/0")
    assert "p@ss" not in out and "ss@" not in out
    assert out == "redis://user:***@cache:6379/0"


@pytest.mark.parametrize("url", [None, "", "redis://cache:6379/0", "postgresql://app@db/x"])
def test_redact_url_leaves_urls_without_password_alone(url):
    assert redact_url(url) == url


def test_secrets_not_in_repr():
    s = load({"OPENAI_API_KEY": "sk-very-secret", "PAYREADY_FLOWER_BASIC_AUTH": "admin:flowerpw",
              "PAYREADY_LANDING": "airbyte", **{**AIRBYTE, "AIRBYTE_CLIENT_SECRET": "airbyte-shh"}})
    text = repr(s)
    assert s.openai_api_key == "sk-very-secret"  # the value is there, only hidden from repr
    for secret in ("sk-very-secret", "flowerpw", "airbyte-shh"):
        assert secret not in text


def test_url_passwords_not_in_repr():
    s = load({"PAYREADY_DATABASE_URL": "postgresql://app:dbpw123@db/x",
              "PAYREADY_REDIS_URL": "redis://:redispw456@cache:6379/0"})
    text = repr(s)
    assert "dbpw123" not in text and "redispw456" not in text


# ----------------------------------------------------------------------------- process-wide settings


def test_override_replaces_process_settings():
    before = settings_mod._current
    try:
        s = load({"PAYREADY_DOMAIN": "paragon"})
        settings_mod.override(s)
        assert settings_mod.get() is s
    finally:
        settings_mod.override(before)


# ----------------------------------------------------------------------------- documentation


def test_documented_variables_lists_the_known_variables_once():
    names = settings_mod.documented_variables()
    assert "PAYREADY_DOMAIN" in names and "OPENAI_API_KEY" in names and "AIRBYTE_CLIENT_SECRET" in names
    assert len(names) == len(set(names))


def test_every_documented_variable_is_in_readme():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md does not exist yet")
    text = readme.read_text()
    missing = [v for v in settings_mod.documented_variables() if v not in text]
    assert not missing, f"variables missing from README.md: {missing}"


def test_airbyte_needs_a_connection_per_source_and_a_valid_schema_template():
    env = {"PAYREADY_LANDING": "airbyte", **AIRBYTE, "PAYREADY_AIRBYTE_CONNECTIONS": "gong=c1"}
    with pytest.raises(ConfigError, match="PAYREADY_AIRBYTE_CONNECTIONS.*slack"):
        load(env)
    with pytest.raises(ConfigError, match="PAYREADY_AIRBYTE_CONNECTIONS"):
        load({**env, "PAYREADY_AIRBYTE_CONNECTIONS": "zoom=c9"})
    with pytest.raises(ConfigError, match="PAYREADY_AIRBYTE_SCHEMA"):
        load({"PAYREADY_AIRBYTE_SCHEMA": "ab_{connection}"})
    s = load({"PAYREADY_LANDING": "airbyte", **AIRBYTE, "PAYREADY_AIRBYTE_SCHEMA": "ab_{source}"})
    assert dict(s.airbyte_connections)["salesforce"] == "c4"
    assert s.airbyte_schema.format(source="slack") == "ab_slack"
