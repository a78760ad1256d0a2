"""One settings model for the server, the worker and the CLI.

Each section is its own `BaseSettings` with an env prefix, so a value is named `SECTION_KEY` in
the environment (`DB_CONNECTION_URI`, `LLM_OPENAI_API_KEY`, `AUTH_USE_AUTH`) and lives under
`[section]` in `config.toml`. Precedence: defaults < config.toml < .env < environment.

The config file is `--config PATH` (CLI), else `$HONCHO_CONFIG`, else `./config.toml` if it
exists. Any subset of its sections may be given. `Settings()` raises `ConfigError` with one line
per mistake, each naming the environment variable or TOML key and what it expects; names that
look like misspelt settings become `warnings` with the closest real name.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from annotated_types import Ge, Gt, Le, Lt
from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

CONFIG_ENV = "HONCHO_CONFIG"
DEFAULT_CONFIG = Path("config.toml")
ENV_FILE = ".env"
# Read by us or by the SDKs although they are not `SECTION_KEY` settings: never "misspelt".
OTHER_NAMES = frozenset({"DATABASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", CONFIG_ENV,
                         "HONCHO_ADDRESS", "HONCHO_API_KEY", "HONCHO_WORKSPACE_ID"})
MISSPELLING_CUTOFF = 0.85  # difflib ratio; SEVER_PORT/SERVER_PORT is 0.95

Port = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port (tests, embedded PostgreSQL)
Count = Annotated[int, Field(ge=1)]
Size = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0)]
Interval = Annotated[float, Field(gt=0)]  # a wait between polls: 0 would spin
Secret = Annotated[SecretStr, Field(default=SecretStr(""))]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Effort = Literal["", "minimal", "low", "medium", "high"]

# The `[section]` table of config.toml that the section being built reads (set by `Settings`).
_TABLE: ContextVar[dict[str, Any] | None] = ContextVar("honcho_toml_table", default=None)


class ConfigError(ValueError):
    """Configuration mistakes, one line each, found before anything starts."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


class _Section(BaseSettings):
    """Base for a settings section: env prefix `<SECTION>_`, TOML table `[<section>]`."""

    section: ClassVar[str] = ""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", case_sensitive=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.model_config = SettingsConfigDict(
            env_prefix=f"{cls.section.upper()}_", env_file=ENV_FILE, extra="ignore",
            case_sensitive=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: explicit arguments, environment, .env, config.toml, then defaults. The
        # TOML table comes from `Settings`, which reads the file once: pydantic-settings' own
        # TomlConfigSettingsSource raises KeyError for a file without this section's table.
        table = _TABLE.get()
        sources = (init_settings, env_settings, dotenv_settings)
        return (*sources, InitSettingsSource(settings_cls, table)) if table else sources

    @classmethod
    def env_name(cls, field: str) -> str:
        return f"{cls.section.upper()}_{field.upper()}"


class AppSettings(_Section):
    section: ClassVar[str] = "app"
    log_level: LogLevel = "INFO"
    # `json`: one JSON object a line (honcho_grpc/logs.py); `text`: for people; `auto`: text
    # when stderr is a terminal, JSON otherwise (containers, files, pipes).
    log_format: Literal["auto", "json", "text"] = "auto"
    max_message_chars: Count = 25_000
    max_file_bytes: Count = 5 * 1024 * 1024
    get_context_max_tokens: Count = 100_000
    session_observers_limit: Count = 10
    default_page_size: Count = 50
    max_page_size: Count = 100
    idempotency_retention_hours: Size = 72
    # Streams (ImportMessages, UploadFile, StreamChat, WatchEvents) one workspace, and one
    # bearer token, may hold open at once, per kind; more are refused RESOURCE_EXHAUSTED.
    max_streams_per_workspace: Count = 16
    max_streams_per_token: Count = 16
    # Messages one ImportMessages stream may carry (it is buffered, then written in one
    # transaction): split larger imports into several streams.
    max_import_messages: Count = 100_000

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


class ServerSettings(_Section):
    section: ClassVar[str] = "server"
    host: str = "127.0.0.1"
    port: Port = 50051
    max_receive_message_bytes: Count = 8 * 1024 * 1024
    max_send_message_bytes: Count = 8 * 1024 * 1024
    max_concurrent_rpcs: Count = 1000
    shutdown_grace_seconds: Seconds = 10.0
    # On SIGTERM: health NOT_SERVING at once, calls still served this long (so that load
    # balancers move traffic), then the shutdown grace. Not on SIGINT (Ctrl-C).
    drain_seconds: Seconds = 5.0
    reflection: bool = True
    # Let clients ping every 10 s during long quiet streams without being told "too_many_pings".
    min_ping_interval_ms: Size = 10_000
    # Run the embedding backlog inside the server process (the worker can run it too).
    embed_in_server: bool = True
    # A connection is sent GOAWAY after this long (+-10% jitter; 0: never): clients open a
    # new one for their next calls, so long-lived HTTP/2 connections spread over new servers
    # behind an L4 balancer. Calls in flight finish on the old connection, for at most the
    # grace (0: no limit, so a WatchEvents stream is never cut for this).
    max_connection_age_seconds: Seconds = 300.0
    max_connection_age_grace_seconds: Seconds = 0.0
    # The server pings a quiet connection this often and drops it when the ping is not
    # answered in time (half-open connections behind NAT and balancers).
    keepalive_time_seconds: Interval = 60.0
    keepalive_timeout_seconds: Interval = 20.0
    # TLS: PEM certificate chain and key (both, or neither: plaintext). With a client CA
    # every client must present a certificate it signed (mTLS). Files are re-read when they
    # change (certificate rotation) for new connections.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # A second, plaintext listener serving only grpc.health.v1 (0: none): for probes that
    # cannot speak TLS, such as the kubelet's gRPC probes.
    health_port: Port = 0


class HttpSettings(_Section):
    """Honcho's v3 HTTP API (honcho_grpc/http), served by the same process as gRPC, on
    SERVER_HOST."""

    section: ClassVar[str] = "http"
    enabled: bool = True
    port: Port = 8000  # 0 picks a free port


class DBSettings(_Section):
    section: ClassVar[str] = "db"
    # Empty: start the embedded PostgreSQL under `data_dir`. Kept out of reprs: it may hold a
    # password.
    connection_uri: str = Field(default="", repr=False)
    data_dir: Path = Path(".data/pg")
    embedded_port: Port = 0  # 0 picks a free port
    pool_min_size: Size = 2
    pool_max_size: Count = 10
    # How long a call waits for a pooled connection before it is answered UNAVAILABLE
    # (SERVER_BUSY, with a retry delay) instead of hanging until its deadline.
    pool_acquire_timeout_seconds: Interval = 3.0
    command_timeout_seconds: Interval = 30.0
    fsync: bool = True

    def uri(self) -> str:
        return self.connection_uri or os.environ.get("DATABASE_URL", "")


def _needs_key(provider: str, prefix: str, key: SecretStr, base_url: str,
               sdk_env: str | None) -> None:
    """A remote provider needs a key, unless it is a self-hosted compatible server (a base
    URL), which usually takes none."""
    if key.get_secret_value() or base_url or (sdk_env and os.environ.get(sdk_env)):
        return
    also = f" (or {sdk_env})" if sdk_env else ""
    raise ValueError(
        f"{prefix}_PROVIDER={provider} needs {prefix}_{provider.upper()}_API_KEY{also}, or "
        f"{prefix}_{provider.upper()}_BASE_URL for a compatible server that takes no key")


class EmbeddingSettings(_Section):
    section: ClassVar[str] = "embedding"
    provider: Literal["local", "openai", "fake"] = "local"
    model: str = "all-MiniLM-L6-v2-onnx-int8-dynamic"
    dimensions: Count = 384
    openai_api_key: Secret
    openai_base_url: str = ""
    batch_size: Count = 64
    threads: Count = 2
    backlog_poll_seconds: Interval = 5.0

    @model_validator(mode="after")
    def _remote_needs_a_key(self) -> Self:
        if self.provider == "openai":
            _needs_key("openai", "EMBEDDING", self.openai_api_key, self.openai_base_url, None)
        return self


class LLMSettings(_Section):
    section: ClassVar[str] = "llm"
    provider: Literal["local", "openai", "anthropic"] = "local"
    model: str = ""
    fallback_model: str = ""
    openai_api_key: Secret
    openai_base_url: str = ""
    anthropic_api_key: Secret
    anthropic_base_url: str = ""
    # A plain call's whole reply, and each event of a stream, must arrive within this (each
    # attempt; a trickling server cannot stretch it).
    timeout_seconds: Interval = 60.0
    max_retries: Size = 3
    structured_output_mode: Literal["json_schema", "json_object"] = "json_schema"
    max_output_tokens: Count = 2048
    # Reasoning effort of every call (OpenAI `reasoning_effort`; Anthropic: a thinking budget,
    # see providers/llm/tasks.py); empty: none is sent (the model's default).
    reasoning_effort: Effort = ""
    # Per task (the worker's extraction, card, summary and dream; the dialectic's levels):
    # model, fallback model, output budget and effort. Empty or 0: the values above (the
    # output budget: the task's own default).
    extraction_model: str = ""
    extraction_fallback_model: str = ""
    extraction_max_output_tokens: Size = 0
    extraction_reasoning_effort: Effort = ""
    card_model: str = ""
    card_fallback_model: str = ""
    card_max_output_tokens: Size = 0
    card_reasoning_effort: Effort = ""
    summary_model: str = ""
    summary_fallback_model: str = ""
    summary_max_output_tokens: Size = 0
    summary_reasoning_effort: Effort = ""
    dream_model: str = ""
    dream_fallback_model: str = ""
    dream_max_output_tokens: Size = 0
    dream_reasoning_effort: Effort = ""
    dialectic_minimal_model: str = ""
    dialectic_minimal_fallback_model: str = ""
    dialectic_minimal_max_output_tokens: Size = 0
    dialectic_minimal_reasoning_effort: Effort = ""
    dialectic_low_model: str = ""
    dialectic_low_fallback_model: str = ""
    dialectic_low_max_output_tokens: Size = 0
    dialectic_low_reasoning_effort: Effort = ""
    dialectic_medium_model: str = ""
    dialectic_medium_fallback_model: str = ""
    dialectic_medium_max_output_tokens: Size = 0
    dialectic_medium_reasoning_effort: Effort = ""
    dialectic_high_model: str = ""
    dialectic_high_fallback_model: str = ""
    dialectic_high_max_output_tokens: Size = 0
    dialectic_high_reasoning_effort: Effort = ""
    dialectic_max_model: str = ""
    dialectic_max_fallback_model: str = ""
    dialectic_max_max_output_tokens: Size = 0
    dialectic_max_reasoning_effort: Effort = ""

    def task_settings(self, task: str) -> tuple[str, str, int, str]:
        """(model, fallback model, output budget, effort) set for one task, as given (empty
        or 0 when unset; providers/llm/tasks.py applies the fallbacks)."""
        own = {
            "extraction": (self.extraction_model, self.extraction_fallback_model,
                   self.extraction_max_output_tokens, self.extraction_reasoning_effort),
            "card": (self.card_model, self.card_fallback_model,
                   self.card_max_output_tokens, self.card_reasoning_effort),
            "summary": (self.summary_model, self.summary_fallback_model,
                   self.summary_max_output_tokens, self.summary_reasoning_effort),
            "dream": (self.dream_model, self.dream_fallback_model,
                   self.dream_max_output_tokens, self.dream_reasoning_effort),
            "dialectic_minimal": (self.dialectic_minimal_model,
                   self.dialectic_minimal_fallback_model,
                   self.dialectic_minimal_max_output_tokens,
                   self.dialectic_minimal_reasoning_effort),
            "dialectic_low": (self.dialectic_low_model, self.dialectic_low_fallback_model,
                   self.dialectic_low_max_output_tokens, self.dialectic_low_reasoning_effort),
            "dialectic_medium": (self.dialectic_medium_model, self.dialectic_medium_fallback_model,
                   self.dialectic_medium_max_output_tokens, self.dialectic_medium_reasoning_effort),
            "dialectic_high": (self.dialectic_high_model, self.dialectic_high_fallback_model,
                   self.dialectic_high_max_output_tokens, self.dialectic_high_reasoning_effort),
            "dialectic_max": (self.dialectic_max_model, self.dialectic_max_fallback_model,
                   self.dialectic_max_max_output_tokens, self.dialectic_max_reasoning_effort),
        }
        if task not in own:
            raise ValueError(f"unknown model task {task!r}")
        return own[task]

    @model_validator(mode="after")
    def _remote_needs_model_and_key(self) -> Self:
        if self.provider == "local":
            return self
        if not self.model:
            example = "gpt-4o-mini" if self.provider == "openai" else "claude-sonnet-4-5"
            raise ValueError(f"LLM_PROVIDER={self.provider} needs LLM_MODEL (the model to call, "
                             f"e.g. {example})")
        if self.provider == "openai":
            _needs_key("openai", "LLM", self.openai_api_key, self.openai_base_url,
                       "OPENAI_API_KEY")
        else:
            _needs_key("anthropic", "LLM", self.anthropic_api_key, self.anthropic_base_url,
                       "ANTHROPIC_API_KEY")
        return self


class AuthSettings(_Section):
    section: ClassVar[str] = "auth"
    use_auth: bool = False
    jwt_secret: Secret


class SummarySettings(_Section):
    section: ClassVar[str] = "summary"
    enabled: bool = True
    messages_per_short_summary: Count = 20
    messages_per_long_summary: Count = 60


WORKSPACE_ID = re.compile(r"[A-Za-z0-9_-]{1,512}")


class QueueSettings(_Section):
    """The background queue and its worker processes."""

    section: ClassVar[str] = "queue"
    # Work units (one session + observed peer, one summary tier...) one worker runs at once.
    concurrency: Size = 4
    # A crashed worker's units are taken over this long after its last heartbeat.
    lease_seconds: Interval = 30.0
    heartbeat_seconds: Interval = 5.0
    # NOTIFY wakes workers at once; the poll only covers a missed notification.
    poll_seconds: Interval = 5.0
    max_attempts: Count = 5
    retry_base_seconds: Seconds = 2.0
    retry_max_seconds: Seconds = 300.0
    # Pending messages of one unit are derived together up to this many tokens.
    batch_max_tokens: Count = 4096
    batch_max_messages: Count = 50
    # Live traffic is batched: a sender's messages wait until the conversation the extraction
    # will read (other speakers' messages included) reaches batch_min_tokens, or the sender
    # has been quiet batch_idle_seconds, or the oldest has waited batch_wait_seconds (the
    # bound: nothing waits longer) -- one model call per stretch of conversation instead of
    # per message, at a lag of seconds. batch_min_tokens or batch_wait_seconds at 0: no wait
    # (every message is taken as soon as it is pending); batch_idle_seconds at 0: no idle rule.
    batch_min_tokens: Size = 1024
    batch_wait_seconds: Seconds = 60.0
    batch_idle_seconds: Seconds = 20.0
    # While messages wait for their embedding, a worker waits up to this long before each
    # batch of derivation (webhook deliveries never wait); 0: never. On one machine the
    # server's embedder and the worker share the cores: derivation after embedding makes
    # messages searchable sooner (bench.ingest under `up`: ~490 msg/s beside derivation, ~660
    # without it). `honcho-grpc up` gives the worker it starts UP_YIELD_TO_EMBEDDING_SECONDS
    # unless this is set; a worker on a machine of its own has nothing to give way to.
    yield_to_embedding_seconds: Seconds = 0.0
    completed_retention_seconds: Seconds = 24 * 3600
    housekeeping_seconds: Interval = 60.0
    # On SIGTERM, running units may finish their current batch this long; then they are
    # cancelled and their rows handed back (attempt refunded).
    shutdown_grace_seconds: Seconds = 10.0
    # Each of a worker's two pools: the queue transport's (psycopg) and the store's (asyncpg).
    pool_max_size: Count = 10
    # Empty: "<hostname>-<pid>".
    worker_id: str = ""
    # Only work of these workspaces; empty: all of them. In the environment a JSON list or
    # comma-separated ids (`acme,beta`): pydantic-settings would insist on JSON.
    workspaces: Annotated[list[str], NoDecode] = []

    @field_validator("workspaces", mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError("not a valid JSON list (or give comma-separated ids: "
                                     "acme,beta)") from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, list):
            bad = [v for v in value if not (isinstance(v, str) and WORKSPACE_ID.fullmatch(v))]
            if bad:
                raise ValueError(f"{bad[0]!r} is not a workspace id (1-512 characters of "
                                 "letters, digits, '_' or '-')")
        return value
    # The worker's liveness signal: grpc.health.v1 served on SERVER_HOST at this port
    # (0: none), answered by the worker's own event loop, so a wedged worker stops answering.
    # `honcho-grpc health --worker` and Kubernetes gRPC probes ask it.
    health_port: Port = 0


class DreamSettings(_Section):
    section: ClassVar[str] = "dream"
    enabled: bool = True
    # New explicit conclusions about a pair since its last dream that trigger the next one.
    conclusion_threshold: Count = 50
    min_interval_seconds: Seconds = 3600.0
    max_conclusions: Count = 200
    # The messages the shown conclusions were drawn from, newest first, up to this many
    # tokens: the dream reads what was said, not only what was concluded (0: none).
    message_tokens: Size = 2000
    # Rounds of lookups (the dialectic's tools, from the observer's viewpoint) the dream may
    # make before it must answer; 0: one call, no tools.
    max_tool_rounds: Size = 3


class PeerCardSettings(_Section):
    section: ClassVar[str] = "peer_card"
    create: bool = True
    # A card is its own task (not part of every extraction): refreshed at most this often per
    # observer and peer, from the newest explicit conclusions; the first one at once.
    refresh_seconds: Seconds = 300.0


class WebhookSettings(_Section):
    section: ClassVar[str] = "webhook"
    # Signs every delivery (X-Honcho-Signature: hex HMAC-SHA256 of the body).
    secret: Secret
    # Private, loopback and link-local targets are refused unless this is set.
    allow_private: bool = False
    timeout_seconds: Interval = 10.0
    max_endpoints: Count = 10


class TelemetrySettings(_Section):
    """OpenTelemetry traces and metrics (honcho_grpc/telemetry.py)."""

    section: ClassVar[str] = "telemetry"
    exporter: Literal["none", "console", "otlp"] = "none"
    # OTLP over HTTP: /v1/traces and /v1/metrics are appended.
    otlp_endpoint: str = "http://127.0.0.1:4318"
    service_name: str = "honcho-grpc"
    # Of the traces that start here; a caller's sampled flag is followed.
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    metric_interval_seconds: Interval = 30.0


SECTIONS: tuple[type[_Section], ...] = (
    AppSettings, ServerSettings, HttpSettings, DBSettings, EmbeddingSettings, LLMSettings,
    AuthSettings, SummarySettings, QueueSettings, DreamSettings, PeerCardSettings, WebhookSettings,
    TelemetrySettings)
BY_SECTION = {cls.section: cls for cls in SECTIONS}
ENV_NAMES = frozenset(cls.env_name(f) for cls in SECTIONS for f in cls.model_fields)

S = TypeVar("S", bound=_Section)


def config_path(explicit: Path | str | None = None) -> tuple[Path, bool]:
    """The config file to read and whether it was asked for (then it must exist)."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    return (Path(chosen), True) if chosen else (DEFAULT_CONFIG, False)


class Settings:
    """All sections, read once at start-up and passed down explicitly (no globals).

    `overrides` are per-section values that win over every source (tests use them).
    """

    def __init__(self, *, config_file: Path | str | None = None,
                 **overrides: dict[str, Any]) -> None:
        path, required = config_path(config_file)
        self.config_file = path
        sources = _Sources(path, _read_toml(path, required))
        self.warnings: list[str] = sources.unknown_toml_keys() + sources.misspelt_env_names()
        problems: list[str] = []

        def build(cls: type[S]) -> S:
            given = overrides.get(cls.section, {})
            try:
                with _toml_table(sources.toml.get(cls.section) or None):
                    return cls(**given)
            except ValidationError as exc:
                problems.extend(sources.describe(cls, exc, given))
            except SettingsError as exc:  # a source could not decode a value
                problems.append(f"[{cls.section}]: {exc}")
            return cls.model_construct()  # a stand-in: the problems are raised below

        self.app = build(AppSettings)
        self.server = build(ServerSettings)
        self.http = build(HttpSettings)
        self.db = build(DBSettings)
        self.embedding = build(EmbeddingSettings)
        self.llm = build(LLMSettings)
        self.auth = build(AuthSettings)
        self.summary = build(SummarySettings)
        self.queue = build(QueueSettings)
        self.dream = build(DreamSettings)
        self.peer_card = build(PeerCardSettings)
        self.webhook = build(WebhookSettings)
        self.telemetry = build(TelemetrySettings)
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        sections = ", ".join(repr(getattr(self, cls.section)) for cls in SECTIONS)
        return f"Settings(config_file={str(self.config_file)!r}, {sections})"


class _Sources:
    """What the user wrote, kept only while loading (the environment holds secrets), to say
    where a rejected value came from and which names look misspelt."""

    def __init__(self, config_file: Path, toml: dict[str, dict[str, Any]]) -> None:
        self.config_file = config_file
        self.toml = toml
        self.environ = {k.upper(): v for k, v in os.environ.items()}
        self.dotenv = {k.upper(): v for k, v in _read_dotenv().items() if v is not None}

    def unknown_toml_keys(self) -> list[str]:
        found = []
        for section, table in self.toml.items():
            cls = BY_SECTION.get(section)
            if cls is None:
                found.append(f"{self.config_file}: [{section}] is not a section"
                             f"{_closest(section, BY_SECTION)}; ignored")
                continue
            found += [f"{self.config_file}: [{section}] {key} is not a setting"
                      f"{_closest(key, cls.model_fields)}; ignored"
                      for key in table if key not in cls.model_fields]
        return found

    def misspelt_env_names(self) -> list[str]:
        found = []
        for where, names in (("the environment", self.environ), (ENV_FILE, self.dotenv)):
            for name in sorted(set(names) - ENV_NAMES - OTHER_NAMES):
                match = difflib.get_close_matches(name, ENV_NAMES, n=1,
                                                  cutoff=MISSPELLING_CUTOFF)
                if match:
                    found.append(f"{name} (in {where}) is not a setting; did you mean "
                                 f"{match[0]}? ignored")
        return found

    def describe(self, cls: type[_Section], exc: ValidationError,
                 overrides: dict[str, Any]) -> Iterator[str]:
        for error in exc.errors():
            if not error["loc"]:  # a check across fields: its message names them
                yield str(error.get("ctx", {}).get("error", error["msg"]))
                continue
            name = str(error["loc"][0])
            field = cls.model_fields.get(name)
            where = self.origin(cls, name, overrides, secret=_is_secret(field))
            yield f"{where}: {_expected(error, field)}"

    def origin(self, cls: type[_Section], name: str, overrides: dict[str, Any],
               secret: bool) -> str:
        """Where the rejected value came from, in the user's own words (never a secret)."""
        env = cls.env_name(name)
        if name in overrides:
            label, value = f"{cls.section}.{name}", overrides[name]
        elif env in self.environ:
            label, value = env, self.environ[env]
        elif env in self.dotenv:
            label, value = f"{env} (in {ENV_FILE})", self.dotenv[env]
        else:
            label = f"{self.config_file}: [{cls.section}] {name}"
            value = self.toml.get(cls.section, {}).get(name)
            return label if secret else f"{label} = {json.dumps(value, default=str)}"
        return label if secret else f"{label}={_shown(value)}"


# --- helpers ----------------------------------------------------------------------------------


@contextmanager
def _toml_table(table: dict[str, Any] | None) -> Iterator[None]:
    token = _TABLE.set(table)
    try:
        yield
    finally:
        _TABLE.reset(token)


def _read_dotenv() -> dict[str, str | None]:
    return dotenv_values(ENV_FILE) if Path(ENV_FILE).is_file() else {}


def _read_toml(path: Path, required: bool) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        if required:
            why = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError([f"config file {path} {why} (given by --config or {CONFIG_ENV})"])
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    not_tables = [k for k, v in document.items() if not isinstance(v, dict)]
    if not_tables:
        raise ConfigError([f"{path}: {k} = ... must be inside a section table, e.g. "
                           f"[server] port = 50051" for k in not_tables])
    return document


def _closest(name: str, choices: Any) -> str:
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def _shown(value: Any) -> str:
    """A value as the user would type it: bare when unambiguous, else quoted."""
    text = str(value)
    return text if re.fullmatch(r"[\w.:/@+-]+", text) else repr(value)


def _is_secret(field: FieldInfo | None) -> bool:
    return field is not None and field.annotation is SecretStr


def bounds(field: FieldInfo | None) -> str:
    if field is None:
        return ""
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    above = next((m.gt for m in field.metadata if isinstance(m, Gt)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    below = next((m.lt for m in field.metadata if isinstance(m, Lt)), None)
    if low is not None and high is not None:
        return f" from {low} to {high}"
    parts = [f"{sign} {v}" for sign, v in ((">=", low), (">", above), ("<=", high), ("<", below))
             if v is not None]
    return f" {' and '.join(parts)}" if parts else ""


def _expected(error: Any, field: FieldInfo | None) -> str:
    """What the setting expects, in a few words, from a pydantic error."""
    kind: str = error["type"]
    ctx = error.get("ctx", {})
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}"
    if kind.startswith("int_") or (field is not None and field.annotation is int
                                   and kind in ("greater_than_equal", "less_than_equal",
                                                "greater_than", "less_than")):
        return f"expected a whole number{bounds(field)}"
    if kind.startswith("float_") or kind in ("greater_than_equal", "less_than_equal",
                                             "greater_than", "less_than"):
        return f"expected a number{bounds(field)}"
    if kind.startswith("bool_"):
        return "expected true or false"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "string_type":
        return "expected text"
    if kind.startswith("list_"):
        return "expected a list"
    msg: str = error["msg"]
    return "expected: " + msg[:1].lower() + msg[1:]
