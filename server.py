"""The dashboard's web server: Streamlit's ASGI app for app.py behind a Host check.

`python cli.py serve` runs this file with `streamlit run` (which finds `app` below and
serves it with uvicorn). pages/_host_guard.py says why every request's Host is checked.
"""

import ctypes
import signal
import sys

import streamlit as st
from starlette.middleware import Middleware

from data.settings import PROJECT_ROOT
from pages._host_guard import HostGuard, configured_names
from pages._preload import import_page_libraries

if sys.platform.startswith("linux"):  # stop when the `cli.py serve` that started us dies, instead of lingering
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

import_page_libraries()  # before any browser session starts: see pages/_preload.py
app = st.App(PROJECT_ROOT / "app.py", middleware=[Middleware(HostGuard, names=configured_names())])
