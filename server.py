"""The dashboard's web server: Streamlit's ASGI app for app.py behind a Host and Origin check.

`python cli.py serve` runs this file with `streamlit run` (which finds `app` below and
serves it with uvicorn). pages/_host_guard.py says why every request's Host and Origin are
checked. No request leaves the machine: Streamlit's look-ups of this machine's addresses (an
HTTP request to an outside IP-lookup service, a socket towards 8.8.8.8) are switched off.
"""

import ctypes
import signal
import sys

import streamlit as st
import streamlit.net_util
from starlette.middleware import Middleware

from data.settings import PROJECT_ROOT
from pages._host_guard import HostGuard, configured_names, configured_origins
from pages._preload import import_page_libraries

if sys.platform.startswith("linux"):  # stop when the `cli.py serve` that started us dies, instead of lingering
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

# The banner's "External URL" and Streamlit's origin allow-list would ask the network; the guard
# decides origins itself, so neither is needed (cli.STREAMLIT_LAUNCHER does the same before start-up).
streamlit.net_util.get_external_ip = lambda: None
streamlit.net_util.get_internal_ip = lambda: None
import_page_libraries()  # before any browser session starts: see pages/_preload.py
app = st.App(PROJECT_ROOT / "app.py", middleware=[Middleware(HostGuard, names=configured_names(),
                                                                         origins=configured_origins())])
