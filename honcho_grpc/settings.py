"""One settings model for the server, the worker and the CLI.

Each section is its own `BaseSettings` with an env prefix, so a value is named `SECTION_KEY` in
the environment (`DB_CONNECTION_URI`, `LLM_OPENAI_API_KEY`, `AUTH_USE_AUTH`) and lives under
`[section]` in `config.toml`. Precedence: defaults < config.toml < .env < environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE = Path(os.environ.get("HONCHO_CONFIG_FILE", "config.toml"))


class _Section(BaseSettings):
    """Base for a settings section: env prefix `<SECTION>_`, TOML table `[<section>]`."""

    section: ClassVar[str] = ""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        prefix = f"{cls.section.upper()}_" if cls.section else ""
        cls.model_config = SettingsConfigDict(
            env_prefix=prefix, env_file=".env", extra="ignore", case_sensitive=False,
            toml_file=CONFIG_FILE,
            toml_table_header=(cls.section,) if cls.section else (),
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: explicit arguments, environment, .env, config.toml, then defaults.
        return (init_settings, env_settings, dotenv_settings,
                TomlConfigSettingsSource(settings_cls))


class AppSettings(_Section):
    section: ClassVar[str] = "app"
    log_level: str = "INFO"
    max_message_chars: int = 25_000
    max_file_bytes: int = 5 * 1024 * 1024
    get_context_max_tokens: int = 100_000
    session_observers_limit: int = 10
    default_page_size: int = 50
    max_page_size: int = 100
    idempotency_retention_hours: int = 72


class ServerSettings(_Section):
    section: ClassVar[str] = "server"
    host: str = "127.0.0.1"
    port: int = 50051
    max_receive_message_bytes: int = 8 * 1024 * 1024
    max_send_message_bytes: int = 8 * 1024 * 1024
    max_concurrent_rpcs: int = 1000
    shutdown_grace_seconds: float = 10.0
    # On SIGTERM: health NOT_SERVING at once, calls still served this long (so that load
    # balancers move traffic), then the shutdown grace. Not on SIGINT (Ctrl-C).
    drain_seconds: float = 5.0
    reflection: bool = True
    # Let clients ping every 10 s during long quiet streams without being told "too_many_pings".
    min_ping_interval_ms: int = 10_000
    # Run the embedding backlog inside the server process (the worker can run it too).
    embed_in_server: bool = True


class DBSettings(_Section):
    section: ClassVar[str] = "db"
    # Empty: start the embedded PostgreSQL under `data_dir`.
    connection_uri: str = ""
    data_dir: Path = Path(".data/pg")
    embedded_port: int = 0  # 0 picks a free port
    pool_min_size: int = 2
    pool_max_size: int = 10
    # How long a call waits for a pooled connection before it is answered UNAVAILABLE
    # (SERVER_BUSY, with a retry delay) instead of hanging until its deadline.
    pool_acquire_timeout_seconds: float = 3.0
    command_timeout_seconds: float = 30.0
    fsync: bool = True

    def uri(self) -> str:
        return self.connection_uri or os.environ.get("DATABASE_URL", "")


class EmbeddingSettings(_Section):
    section: ClassVar[str] = "embedding"
    provider: Literal["local", "openai", "fake"] = "local"
    model: str = "all-MiniLM-L6-v2-onnx-int8"
    dimensions: int = 384
    openai_api_key: str = ""
    openai_base_url: str = ""
    batch_size: int = 64
    threads: int = 2
    backlog_poll_seconds: float = 5.0


class LLMSettings(_Section):
    section: ClassVar[str] = "llm"
    provider: Literal["local", "openai", "anthropic"] = "local"
    model: str = ""
    fallback_model: str = ""
    openai_api_key: str = ""
    openai_base_url: str = ""
    anthropic_api_key: str = ""
    anthropic_base_url: str = ""
    timeout_seconds: float = 60.0
    max_retries: int = 3
    structured_output_mode: Literal["json_schema", "json_object"] = "json_schema"
    max_output_tokens: int = 2048


class AuthSettings(_Section):
    section: ClassVar[str] = "auth"
    use_auth: bool = False
    jwt_secret: str = ""


class SummarySettings(_Section):
    section: ClassVar[str] = "summary"
    enabled: bool = True
    messages_per_short_summary: int = 20
    messages_per_long_summary: int = 60


class QueueSettings(_Section):
    """The background queue and its worker processes."""

    section: ClassVar[str] = "queue"
    # Work units (one session + observed peer, one summary tier...) one worker runs at once.
    concurrency: int = 4
    # A crashed worker's units are taken over this long after its last heartbeat.
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    # NOTIFY wakes workers at once; the poll only covers a missed notification.
    poll_seconds: float = 5.0
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    # Pending messages of one unit are derived together up to this many tokens. Never a wait:
    # whatever is pending when a worker is free is taken at once.
    batch_max_tokens: int = 4096
    batch_max_messages: int = 50
    completed_retention_seconds: float = 24 * 3600
    housekeeping_seconds: float = 60.0
    pool_max_size: int = 10
    # Empty: "<hostname>-<pid>".
    worker_id: str = ""
    # Only work of these workspaces (JSON list in the environment); empty: all of them.
    workspaces: list[str] = []


class DreamSettings(_Section):
    section: ClassVar[str] = "dream"
    enabled: bool = True
    # New explicit conclusions about a pair since its last dream that trigger the next one.
    conclusion_threshold: int = 50
    min_interval_seconds: float = 3600.0
    max_conclusions: int = 200


class PeerCardSettings(_Section):
    section: ClassVar[str] = "peer_card"
    create: bool = True


class WebhookSettings(_Section):
    section: ClassVar[str] = "webhook"
    # Signs every delivery (X-Honcho-Signature: hex HMAC-SHA256 of the body).
    secret: str = ""
    # Private, loopback and link-local targets are refused unless this is set.
    allow_private: bool = False
    timeout_seconds: float = 10.0
    max_endpoints: int = 10


class TelemetrySettings(_Section):
    """OpenTelemetry traces and metrics (honcho_grpc/telemetry.py)."""

    section: ClassVar[str] = "telemetry"
    exporter: Literal["none", "console", "otlp"] = "none"
    # OTLP over HTTP: /v1/traces and /v1/metrics are appended.
    otlp_endpoint: str = "http://127.0.0.1:4318"
    service_name: str = "honcho-grpc"
    # Of the traces that start here; a caller's sampled flag is followed.
    sample_ratio: float = 1.0
    metric_interval_seconds: float = 30.0


class Settings:
    """All sections, read once at start-up and passed down explicitly (no globals)."""

    def __init__(self, **overrides: dict[str, Any]) -> None:
        self.app = AppSettings(**overrides.get("app", {}))
        self.server = ServerSettings(**overrides.get("server", {}))
        self.db = DBSettings(**overrides.get("db", {}))
        self.embedding = EmbeddingSettings(**overrides.get("embedding", {}))
        self.llm = LLMSettings(**overrides.get("llm", {}))
        self.auth = AuthSettings(**overrides.get("auth", {}))
        self.summary = SummarySettings(**overrides.get("summary", {}))
        self.queue = QueueSettings(**overrides.get("queue", {}))
        self.dream = DreamSettings(**overrides.get("dream", {}))
        self.peer_card = PeerCardSettings(**overrides.get("peer_card", {}))
        self.webhook = WebhookSettings(**overrides.get("webhook", {}))
        self.telemetry = TelemetrySettings(**overrides.get("telemetry", {}))
