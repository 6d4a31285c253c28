"""The file app_python3 loads. mod_init() runs once before Kamailio forks its workers and
returns the handler object whose ksr_* methods are the routes; nothing else happens here."""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)
# app_python3 puts this file's directory on sys.path; its modules must not shadow the
# standard library (kemi/queue_strategy.py was once kemi/queue.py). Import them as kemi.*.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
if _root not in sys.path:
    sys.path.insert(0, _root)

from kemi.handler import Handler  # noqa: E402


def mod_init():
    return Handler()
