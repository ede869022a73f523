"""The server imports, before any session starts, every module a page can reach (see
pages/_preload.py): so no two session threads ever import one for the first time at once."""

import ast
import json
import subprocess
import sys

from data.settings import PROJECT_ROOT
from pages._preload import NOT_PRELOADED, PROJECT_PACKAGES

OURS = {*PROJECT_PACKAGES, "pages", "streamlit", "tests"}  # streamlit is loaded before server.py runs


def _imported_modules(path) -> set[str]:
    """Absolute module names a file imports, at any depth (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_every_library_a_page_can_reach_is_imported_before_serving():
    sources = [PROJECT_ROOT / "app.py", *(PROJECT_ROOT / "pages").glob("*.py")]
    for package in PROJECT_PACKAGES:
        sources += (PROJECT_ROOT / package).rglob("*.py")
    wanted = {name for path in sources for name in _imported_modules(path)
              if name.split(".")[0] not in OURS | set(NOT_PRELOADED) | set(sys.stdlib_module_names)}
    assert {"torch", "shap", "scipy.stats", "plotly.graph_objects"} <= wanted  # the scan sees what it should
    loaded = subprocess.run(
        [sys.executable, "-c", "import json, sys; from pages._preload import import_page_libraries; "
                               "import_page_libraries(); print(json.dumps(sorted(sys.modules)))"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    missing = sorted(wanted - set(json.loads(loaded.splitlines()[-1])))
    assert missing == [], f"add these to pages/_preload.py's LAZY_LIBRARIES (or NOT_PRELOADED): {missing}"
