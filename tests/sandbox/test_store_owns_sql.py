"""ARCHITECTURE.md's rule that a sandbox table's SQL lives in its ``store/`` module, as a check."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[2] / "tl_mcp" / "sandbox"
_SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\s", re.IGNORECASE)


def _sql_strings(path: Path) -> list[int]:
    """Lines where a string starts with SQL (an f-string's leading text counts too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sorted(
        {
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _SQL.match(node.value)
            # Route method lists say "DELETE" alone; SQL always has more after the verb.
            and " " in node.value.strip()
        }
    )


def test_only_store_modules_hold_sql() -> None:
    offenders = []
    for path in sorted(SANDBOX.rglob("*.py")):
        rel = path.relative_to(SANDBOX).as_posix()
        if rel.startswith("store/"):
            continue
        offenders += [f"{rel}:{line}" for line in _sql_strings(path)]
    assert not offenders, f"SQL outside sandbox/store/ (move it to the table's store module): {offenders}"


def test_the_check_sees_sql_in_a_module(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        'def f(db, x):\n    return db.one("SELECT * FROM t WHERE id = ?", (x,))\n'
        'ROUTE = ["DELETE"]\n'
        'def g(db, n):\n    db.run(f"DELETE FROM t WHERE n > {n}")\n',
        encoding="utf-8",
    )
    assert _sql_strings(sample) == [2, 5]
