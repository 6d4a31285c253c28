"""The file app_python3 loads. mod_init() runs once before Kamailio forks its workers and
returns the handler object whose ksr_* methods are the routes; nothing else happens here."""
import os
import sys

_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _root not in sys.path:
    sys.path.insert(0, _root)

from kemi.handler import Handler  # noqa: E402


def mod_init():
    return Handler()
