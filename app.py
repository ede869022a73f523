"""PhishLens dashboard entry point: `python cli.py serve` (or `bash tasks.sh run`).

st.navigation lists every page; this file runs before each of them and draws the
shared sidebar (which store, model and device are in use).
"""

import streamlit as st

from data.settings import PROJECT_ROOT, load_settings
from data.store import StoreError
from pages._cache import device_in_use, explainer_warm_up
from pages._safe import md

# A local favicon: a ":material/...:" page icon makes the browser fetch it from Google's font CDN.
st.set_page_config(page_title="PhishLens", page_icon=str(PROJECT_ROOT / "assets" / "phishlens.png"), layout="wide")

settings = load_settings()
st.session_state.setdefault("settings", settings)

overview = st.Page("pages/overview.py", title="Overview", icon=":material/grid_on:", url_path="matrix", default=True)


def overview_by_name() -> None:
    """/overview: Streamlit serves the default page at / only, so its own name redirects there."""
    st.switch_page(overview, query_params=st.query_params.to_dict())


pages = [
    overview,
    st.Page(overview_by_name, title="Overview", url_path="overview", visibility="hidden"),
    st.Page("pages/inbox.py", title="Inbox", icon=":material/inbox:", url_path="inbox"),
    st.Page("pages/analyze.py", title="Analyze an email", icon=":material/content_paste_search:", url_path="analyze"),
    st.Page("pages/explain.py", title="Explain", icon=":material/insights:", url_path="explain"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("pages/drivers.py", title="Drivers", icon=":material/leaderboard:", url_path="drivers"),
    st.Page("pages/study.py", title="Study", icon=":material/science:", url_path="study"),
    st.Page("pages/heads.py", title="Heads", icon=":material/hub:", url_path="heads"),
    st.Page("pages/demo.py", title="Live demo", icon=":material/slideshow:", url_path="demo"),
    st.Page("pages/corpora.py", title="Corpora", icon=":material/database:", url_path="corpora"),
    st.Page("pages/runs.py", title="Runs", icon=":material/play_circle:", url_path="runs"),
]
page = st.navigation(pages)
explainer_warm_up()  # a background thread: the first explanation's map then comes without shap's start-up

with st.sidebar:
    st.caption("PhishLens")
    st.text(f"Store: {settings.store_path}\nModel: {settings.model}\nDevice: {device_in_use(settings.device)}")

try:
    page.run()
except StoreError as exc:  # a missing, busy or damaged store: say what to do instead of a traceback
    st.error(md(exc, 2000))
