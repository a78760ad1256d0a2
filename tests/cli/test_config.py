"""Configuration as a user meets it: `config.toml` with any subset of its sections, found at
./config.toml, `$HONCHO_CONFIG` or `--config`; every mistake one line on stderr naming the
variable or key, exit status 2, before PostgreSQL starts; misspelt names warned with the
closest real one; secrets never echoed."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from honcho_grpc.cli import load_settings
from honcho_grpc.db.embedded import free_port
from honcho_grpc.providers.llm import Message
from honcho_grpc.settings import ConfigError, Settings
from tests.cli.cli_process import clean_env, honcho, one_line
from tests.providers.conftest import serving

KEY = "sk-test-0123456789abcdef-secret"


def nothing_answers(port: int) -> str:
    return f"no honcho-grpc server answers on 127.0.0.1:{port}"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In-process Settings() in an empty folder with no honcho setting in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in set(os.environ) - set(clean_env()):
        monkeypatch.delenv(name)
    return tmp_path


# --- the file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["cwd", "HONCHO_CONFIG", "--config"])
def test_a_file_with_one_section_is_read_from_each_place(how: str, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / ("config.toml" if how == "cwd" else "elsewhere.toml")
    config.write_text(f"[server]\nport = {port}\n")
    env = {"HONCHO_CONFIG": str(config)} if how == "HONCHO_CONFIG" else {}
    flags = ["--config", str(config)] if how == "--config" else []
    done = honcho(*flags, "status", cwd=tmp_path, **env)
    assert done.returncode == 1
    assert nothing_answers(port) in one_line(done)  # the port came from the file


def test_sections_and_precedence(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = isolated / "config.toml"
    config.write_text('[llm]\nprovider = "openai"\nmodel = "m"\nopenai_base_url = '
                      '"http://127.0.0.1:9/v1"\n\n[queue]\nworkspaces = ["acme"]\n'
                      'poll_seconds = 2.5\n')
    monkeypatch.setenv("QUEUE_POLL_SECONDS", "0.5")  # the environment wins over the file
    settings = Settings()
    assert settings.llm.provider == "openai" and settings.llm.model == "m"
    assert settings.queue.workspaces == ["acme"] and settings.queue.poll_seconds == 0.5
    assert settings.server.port == 50051  # sections the file leaves out keep their defaults
    assert settings.warnings == []


@pytest.mark.parametrize(("value", "expected"), [
    ("acme", ["acme"]), ("acme, beta", ["acme", "beta"]), ('["acme","beta"]', ["acme", "beta"]),
    ("", [])])
def test_queue_workspaces_json_or_commas(value: str, expected: list[str], isolated: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_WORKSPACES", value)
    assert Settings().queue.workspaces == expected


# --- mistakes: one line each, exit 2, nothing started -----------------------------------------


MISTAKES = [
    ({"EMBEDDING_PROVIDER": "foo"}, "EMBEDDING_PROVIDER=foo: expected one of 'local', 'openai'"),
    ({"SERVER_PORT": "abc"}, "SERVER_PORT=abc: expected a whole number from 0 to 65535"),
    ({"SERVER_PORT": "99999"}, "SERVER_PORT=99999: expected a whole number from 0 to 65535"),
    ({"QUEUE_WORKSPACES": '["acme"'}, "QUEUE_WORKSPACES='[\"acme\"': not a valid JSON list"),
    ({"QUEUE_WORKSPACES": "acme,bad id"}, "QUEUE_WORKSPACES='acme,bad id': 'bad id' is not a "
                                          "workspace id"),
    ({"APP_LOG_LEVEL": "verbose"}, "APP_LOG_LEVEL=verbose: expected one of 'DEBUG', 'INFO'"),
    ({"DB_FSYNC": "maybe"}, "DB_FSYNC=maybe: expected true or false"),
    ({"QUEUE_POLL_SECONDS": "0"}, "QUEUE_POLL_SECONDS=0: expected a number > 0"),
    ({"LLM_PROVIDER": "openai"}, "LLM_PROVIDER=openai needs LLM_MODEL"),
    ({"LLM_PROVIDER": "openai", "LLM_MODEL": "gpt-4o-mini"},
     "LLM_PROVIDER=openai needs LLM_OPENAI_API_KEY (or OPENAI_API_KEY)"),
    ({"LLM_PROVIDER": "anthropic"}, "LLM_PROVIDER=anthropic needs LLM_MODEL"),
    ({"LLM_PROVIDER": "anthropic", "LLM_MODEL": "claude-sonnet-4-5"},
     "LLM_PROVIDER=anthropic needs LLM_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)"),
    ({"EMBEDDING_PROVIDER": "openai"}, "EMBEDDING_PROVIDER=openai needs EMBEDDING_OPENAI_API_KEY"),
    ({"EMBEDDING_MODEL": "bge-small"}, "EMBEDDING_MODEL=bge-small: the offline model is"),
    ({"EMBEDDING_DIMENSIONS": "768"}, "EMBEDDING_DIMENSIONS=768: the offline model"),
    ({"AUTH_USE_AUTH": "true"}, "AUTH_JWT_SECRET must be at least 32 bytes"),
]


@pytest.mark.parametrize(("env", "message"), MISTAKES,
                         ids=[next(iter(e)) + "=" + next(iter(e.values())) for e, _ in MISTAKES])
def test_a_mistake_is_one_line_before_postgres_starts(env: dict[str, str], message: str,
                                                      tmp_path: Path) -> None:
    data = tmp_path / "pg"
    done = honcho("up", cwd=tmp_path, DB_DATA_DIR=str(data), **env)
    assert done.returncode == 2, done.stderr
    line = one_line(done)
    assert line.startswith("honcho-grpc: ") and message in line, line
    assert not data.exists()  # the embedded PostgreSQL never started


@pytest.mark.parametrize(("text", "message"), [
    ('[server]\nport = "fifty"\n', '[server] port = "fifty": expected a whole number'),
    ("[server\nport = 1\n", "not valid TOML: Expected ']' at the end of a table declaration "
                            "(at line 1"),
    ("port = 1\n", "port = ... must be inside a section table"),
    ('[embedding]\nprovider = "onnx"\n', "[embedding] provider = \"onnx\": expected one of"),
])
def test_a_mistake_in_the_file_names_the_key(text: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(text)
    done = honcho("worker", cwd=tmp_path)
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith("honcho-grpc: config.toml") and message in line, line


def test_a_config_file_asked_for_must_exist(tmp_path: Path) -> None:
    done = honcho("--config", str(tmp_path / "missing.toml"), "status", cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done) == (f"honcho-grpc: config file {tmp_path / 'missing.toml'} does not "
                              "exist (given by --config or HONCHO_CONFIG)")
    done = honcho("status", cwd=tmp_path, HONCHO_CONFIG=str(tmp_path))
    assert "is a directory" in one_line(done) and done.returncode == 2


def test_several_mistakes_are_one_line_each(tmp_path: Path) -> None:
    done = honcho("serve", cwd=tmp_path, SERVER_PORT="x", DB_POOL_MAX_SIZE="0")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "honcho-grpc: SERVER_PORT=x: expected a whole number from 0 to 65535",
        "honcho-grpc: DB_POOL_MAX_SIZE=0: expected a whole number >= 1"]


# --- misspelt names ---------------------------------------------------------------------------


def test_a_misspelt_variable_is_warned_with_the_real_name(tmp_path: Path) -> None:
    port = free_port()
    done = honcho("status", "--address", f"127.0.0.1:{port}", cwd=tmp_path, SEVER_PORT="6000",
                  OPENAI_API_KEY="not-ours-to-warn-about")
    warnings = [line for line in done.stderr.splitlines() if "is not a setting" in line]
    assert len(warnings) == 1, done.stderr
    assert "SEVER_PORT (in the environment) is not a setting; did you mean SERVER_PORT?" in (
        warnings[0])
    assert nothing_answers(port) in done.stderr


def test_unknown_keys_and_sections_in_the_file_are_warned(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[server]\nprot = 6000\n\n[sever]\nport = 1\n")
    (tmp_path / ".env").write_text("QUEUE_CONCURENCY=2\n")
    done = honcho("status", "--address", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert "config.toml: [server] prot is not a setting (did you mean port?)" in done.stderr
    assert "config.toml: [sever] is not a section (did you mean server?)" in done.stderr
    assert "QUEUE_CONCURENCY (in .env) is not a setting; did you mean QUEUE_CONCURRENCY?" in (
        done.stderr)


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_stay_out_of_reprs_and_errors(isolated: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLM_OPENAI_API_KEY", "LLM_ANTHROPIC_API_KEY", "EMBEDDING_OPENAI_API_KEY",
                 "AUTH_JWT_SECRET", "WEBHOOK_SECRET"):
        monkeypatch.setenv(name, KEY)
    monkeypatch.setenv("DB_CONNECTION_URI", f"postgresql://u:{KEY}@db/honcho")
    settings = Settings()
    assert KEY not in repr(settings) and KEY not in str(vars(settings))
    assert settings.auth.jwt_secret.get_secret_value() == KEY
    assert settings.webhook.secret.get_secret_value() == KEY
    # A secret of the wrong type is named, never shown.
    (isolated / "config.toml").write_text(f"[auth]\njwt_secret = {len(KEY)}\n")
    monkeypatch.delenv("AUTH_JWT_SECRET")
    with pytest.raises(ConfigError) as caught:
        Settings()
    assert caught.value.lines == ["config.toml: [auth] jwt_secret: expected text"]


def test_a_mistake_next_to_a_key_does_not_print_the_key(tmp_path: Path) -> None:
    done = honcho("serve", cwd=tmp_path, LLM_PROVIDER="openai", LLM_MODEL="m",
                  LLM_OPENAI_API_KEY=KEY, SERVER_PORT="-1")
    assert done.returncode == 2
    assert KEY not in done.stderr + done.stdout
    assert one_line(done) == "honcho-grpc: SERVER_PORT=-1: expected a whole number from 0 to 65535"


def test_override_values_are_secret_too(isolated: Path) -> None:
    settings = Settings(llm={"openai_api_key": KEY})
    assert isinstance(settings.llm.openai_api_key, SecretStr) and KEY not in repr(settings)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_secret_key_still_reaches_its_provider(kind: str) -> None:
    """Through the official SDK to a local fake of the provider's wire protocol."""
    async with serving(kind) as remote:
        provider = remote.provider(**{f"{kind}_api_key": KEY})
        await provider.complete([Message("user", "Hi")], max_tokens=5)
        headers = remote.fake.requests[0].headers
    # OpenAI sends a bearer token; the Anthropic SDK x-api-key or, in recent versions, a bearer.
    sent = {headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer ")}
    assert KEY in sent


def test_the_config_flag_reaches_child_processes(isolated: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` starts its worker as another `honcho-grpc` process: it must read the same file."""
    (isolated / "chosen.toml").write_text("[queue]\nconcurrency = 7\n")
    monkeypatch.setenv("HONCHO_CONFIG", "")  # so that the variable is restored afterwards
    settings = load_settings(argparse.Namespace(config=Path("chosen.toml"), command="status"))
    assert settings.queue.concurrency == 7
    assert os.environ["HONCHO_CONFIG"] == str(isolated / "chosen.toml")
    monkeypatch.chdir("/")
    assert Settings().queue.concurrency == 7  # as a child started elsewhere would read it
