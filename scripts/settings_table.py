"""Render every setting (environment name, config.toml key, type, default) as the README's
configuration table, from the settings classes themselves, so the table cannot drift.

    python scripts/settings_table.py          # rewrite the table in README.md
    python scripts/settings_table.py --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from honcho_grpc import settings

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def _type(field: FieldInfo) -> str:
    if field.annotation is SecretStr:
        return "secret"
    choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
    if choices:
        return " \\| ".join(f"`{c}`" for c in choices)
    text = getattr(field.annotation, "__name__", None) or str(field.annotation)
    limits = settings.bounds(field).strip()
    return f"{text.replace('typing.', '')} {limits}".strip()


def _default(value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value == "" or value == []:
        return "(empty)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and value >= 1024 * 1024 and value % (1024 * 1024) == 0:
        return f"{value // (1024 * 1024)} MiB"
    return f"`{value}`"


def table() -> str:
    lines = ["| env | config.toml | type | default |", "| --- | --- | --- | --- |"]
    for section in settings.SECTIONS:
        for name, field in section.model_fields.items():
            env = f"{section.section.upper()}_{name.upper()}"
            lines.append(f"| `{env}` | `[{section.section}] {name}` | {_type(field)} | "
                         f"{_default(field.default)} |")
    return "\n".join(lines)


def documented(readme: str) -> list[tuple[str, str]]:
    """(section, name) of every row of the README's table, in order."""
    _, rest = readme.split(BEGIN, 1)
    body, _ = rest.split(END, 1)
    return [(m.group(1), m.group(2)) for m in re.finditer(r"\| `\[(\w+)\] (\w+)` \|", body)]


def render(readme: str) -> str:
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    current = README.read_text()
    fresh = render(current)
    if argv[:1] == ["--check"]:
        if fresh != current:
            print("README.md configuration table is stale: run python scripts/settings_table.py")
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
