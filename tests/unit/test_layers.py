"""The layers keep to their parts: SQL only in the store, transactions opened only by the
domain, servicers reaching the data through the domain, database records never leaving the
store."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import NamedTuple

import pytest

from honcho_grpc.store.rows import columns, every, one

PACKAGE = Path(__file__).resolve().parents[2] / "honcho_grpc"
# Statements are written in upper case here; prose that says "select ... from" is not one.
SQL = re.compile(r"\b(SELECT\b.*\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b",
                 re.DOTALL)


def modules(*parts: str) -> list[Path]:
    return sorted(p for part in parts for p in (PACKAGE / part).rglob("*.py"))


def strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [n.func.attr for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module:
            found.add(n.module)
            found.update(f"{n.module}.{a.name}" for a in n.names)
        elif isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
    return found


def test_the_sql_check_sees_statements() -> None:
    assert SQL.search("SELECT x\n FROM t") and SQL.search("DELETE FROM t")
    assert SQL.search("UPDATE sessions SET last_seq = 1")
    assert not SQL.search("Select the peers from the session")


@pytest.mark.parametrize("path", modules("server", "domain"), ids=lambda p: p.name)
def test_no_sql_outside_the_store(path: Path) -> None:
    assert [s for s in strings(path) if SQL.search(s)] == []


@pytest.mark.parametrize("path", modules("server", "domain"), ids=lambda p: p.name)
def test_transactions_open_in_one_place(path: Path) -> None:
    if path == PACKAGE / "domain" / "transactions.py":
        return
    assert {"acquire", "transaction", "fetch", "fetchrow", "fetchval", "execute"} & set(
        calls(path)) == set()


@pytest.mark.parametrize("path", modules("server/servicers"), ids=lambda p: p.name)
def test_servicers_reach_data_through_the_domain(path: Path) -> None:
    assert [m for m in imported(path) if m.startswith("honcho_grpc.store")] == []


@pytest.mark.parametrize("path", modules("server", "domain", "store"), ids=lambda p: p.name)
def test_records_do_not_cross_layers(path: Path) -> None:
    assert "Record" not in path.read_text()


class Pair(NamedTuple):
    left: str
    right: int


def test_rows_become_values_by_position() -> None:
    assert columns(Pair, "p") == "p.left, p.right"
    assert every(Pair, [("a", 1), ("b", 2)]) == [Pair("a", 1), Pair("b", 2)]
    assert one(Pair, ("a", 1)) == Pair("a", 1) and one(Pair, None) is None


def test_a_row_of_other_columns_is_refused() -> None:
    with pytest.raises(TypeError, match="2 columns, not 3"):
        every(Pair, [("a", 1, "extra")])
    with pytest.raises(TypeError):
        one(Pair, ("a",))
