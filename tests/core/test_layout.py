"""The house: a pure core that imports no database driver, no CLI library and no HTTP client,
and modules short enough to read in one sitting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import statemachine

CORE = ["events", "spec", "precedence", "records", "notices", "decide", "dispatch", "engine"]
ADAPTERS = {
    "sqlite3",
    "sqlite_utils",
    "psycopg",
    "psycopg_pool",
    "click",
    "tqdm",
    "httpx",
    "httpcore",
}
PACKAGE = Path(statemachine.__file__).parent


def test_the_core_imports_no_database_driver_no_cli_library_and_no_http_client() -> None:
    modules = ", ".join(f"statemachine.{name}" for name in CORE)
    probe = (
        f"import sys, {modules}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(ADAPTERS)!r}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_no_module_is_longer_than_one_sitting() -> None:
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > 460} == {}
