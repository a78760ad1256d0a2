"""Every setting in the README's configuration table is read by the service: a setting that
nothing reads promises behaviour that does not exist.

Read statically, from the source of honcho_grpc/: a setting `[section] name` counts as read in
a module that accesses an attribute `name` and names its section (`settings.section`, or its
settings class, as a parameter's type usually does). In settings.py only the methods count
(`DBSettings.uri` reads `connection_uri` for its callers). This cannot prove that a read is
reached, but a setting read nowhere fails here."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from honcho_grpc import settings
from scripts.settings_table import README, documented

PACKAGE = Path(settings.__file__).parent


@dataclass
class Module:
    attributes: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


def _scan(nodes: list[ast.AST]) -> Module:
    found = Module()
    for node in (n for root in nodes for n in ast.walk(root)):
        if isinstance(node, ast.Attribute):
            found.attributes.add(node.attr)
        elif isinstance(node, ast.Name):
            found.names.add(node.id)
        elif isinstance(node, ast.alias):
            found.names.add(node.asname or node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.names.add(node.value)  # string annotations: "AuthSettings"
    return found


def modules() -> dict[Path, Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        if path.name == "settings.py" and path.parent == PACKAGE:
            methods: list[ast.AST] = [n for cls in tree.body if isinstance(cls, ast.ClassDef)
                                      for n in cls.body if isinstance(n, ast.FunctionDef)]
            out[path] = _scan(methods)
        else:
            out[path] = _scan([tree])
    return out


def sections() -> dict[str, type[settings._Section]]:
    return {cls.section: cls for cls in settings._Section.__subclasses__()}


def readers(section: str, name: str, scanned: dict[Path, Module]) -> list[Path]:
    cls = sections()[section]
    return [path for path, m in scanned.items() if name in m.attributes
            and (section in m.attributes or cls.__name__ in m.names)]


def test_the_table_lists_settings_that_exist() -> None:
    rows = documented(README.read_text())
    known = {(s, n) for s, cls in sections().items() for n in cls.model_fields}
    assert rows and set(rows) == known


def test_every_setting_in_the_table_is_read() -> None:
    scanned = modules()
    unread = [f"{s.upper()}_{n.upper()}" for s, n in documented(README.read_text())
              if not readers(s, n, scanned)]
    assert unread == [], f"settings read nowhere in honcho_grpc/: {unread}"


def test_the_scan_tells_a_read_from_a_name() -> None:
    def scan(source: str) -> dict[Path, Module]:
        return {Path("m.py"): _scan([ast.parse(source)])}

    assert readers("peer_card", "create", scan("settings.peer_card.create"))
    assert readers("auth", "jwt_secret", scan("def f(a: AuthSettings): return a.jwt_secret"))
    assert not readers("peer_card", "create", scan("card.create()"))  # a name alone
    assert not readers("peer_card", "create", scan("settings.peer_card.enabled"))
    scanned = modules()
    assert readers("webhook", "max_endpoints", scanned)
    assert PACKAGE / "settings.py" in readers("db", "connection_uri", scanned)  # DBSettings.uri
