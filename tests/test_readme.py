"""The README's Architecture section names every module of the tree, so it cannot drift from it."""

import re

from data.settings import PROJECT_ROOT


def test_the_architecture_section_names_every_module():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("## Architecture"):readme.index("## Tests")]
    missing = []
    for package in ("data", "models", "diagnostics", "pages"):
        for module in sorted((PROJECT_ROOT / package).rglob("*.py")):  # subpackages too
            if module.stem != "__init__" and not re.search(rf"\b{re.escape(module.name)}\b|\b{re.escape(module.stem)}\b",
                                                           section):
                missing.append(f"{package}/{module.name}")
    assert not missing, f"not in the README's Architecture section: {missing}"
