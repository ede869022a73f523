"""The dashboard's libraries, imported once in the server's main thread before it serves.

Streamlit runs each browser session's script in a thread of its own, and CPython does not make
two threads' first imports of one package safe: seen here, shap's warm-up thread and the
Overview page importing scipy at once, one failing with "cannot import name 'PytestTester'
from partially initialized module 'scipy._lib._testutils'" (2 of 16 tries of the race), after
which the pages that need scipy failed until a restart. server.py calls import_page_libraries()
first, so no session ever imports these for the first time.
"""

import importlib
import pkgutil

from data.settings import PROJECT_ROOT

# Packages whose every module is pure (no Streamlit), so importable before the runtime exists.
# pages/ helpers are not: their st.cache_data would bind to a throwaway cache.
PROJECT_PACKAGES = ("data", "models", "diagnostics")
# What those modules and the page scripts import inside functions or at their top, beyond what
# importing PROJECT_PACKAGES loads. tests/pages/test_preload.py keeps this list complete.
LAZY_LIBRARIES = ("captum.attr", "peft", "plotly.graph_objects", "safetensors.torch", "scipy.stats",
                  "shap", "sklearn.feature_extraction.text", "sklearn.linear_model", "sklearn.model_selection",
                  "sklearn.pipeline", "sklearn.preprocessing", "transformer_lens.model_bridge",
                  "transformer_lens.model_bridge.sources", "transformer_lens.tools.analysis")
# Only the CLI's jobs use these (distributed evaluation, int8 scoring, the label and near-duplicate
# audits), in processes of their own.
NOT_PRELOADED = ("ray", "torchao", "cleanlab", "datasketch")


def import_page_libraries() -> None:
    """Import every module of PROJECT_PACKAGES and every LAZY_LIBRARIES entry (about 6 s on
    the 2-core machine, most of it torch, transformers and peft, which a page would load anyway)."""
    for package in PROJECT_PACKAGES:  # subpackages too (diagnostics.contracts, .runners, .analyses)
        for module in pkgutil.walk_packages([str(PROJECT_ROOT / package)], prefix=f"{package}."):
            importlib.import_module(module.name)
    for name in LAZY_LIBRARIES:
        importlib.import_module(name)
