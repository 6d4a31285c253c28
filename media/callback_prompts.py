"""The callback extension's prompts, made like the built-in ones (media/builtin.py: espeak-ng
speech, numpy tones) on the service's first start; operators replace them with
`kemictl audio add NAME file.wav --replace`. The credit is said with `cb-digit-0..9` and
`cb-point` (falling back to the built-in `digit-N`)."""
from __future__ import annotations

import shutil

import psycopg

from media import audio, builtin

SPEECH = {
    "cb-enter-password": "Please enter your password, followed by the pound key.",
    "cb-wrong-password": "That password is not correct.",
    "cb-locked": "This account is locked after too many wrong passwords.",
    "cb-menu": "Press 1 to hear your credit, or 2 to place a call.",
    "cb-credit-is": "Your credit is",
    "cb-point": "point",
    "cb-dial": "Please dial the number you want to call, followed by the pound key.",
    "cb-timeout": "No number was dialled. Goodbye.",
    "cb-no-route": "That destination is not allowed. Goodbye.",
    "cb-failed": "The call could not be completed. Goodbye.",
    "cb-credit-out": "Your credit is used up. Goodbye.",
    "cb-goodbye": "Goodbye.",
}


def ensure(dsn: str, log=print) -> int:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        have = {r[0] for r in conn.execute("SELECT name FROM audio WHERE name LIKE 'cb-%%'")}
        missing = [n for n in SPEECH if n not in have]
        if missing and shutil.which("espeak-ng") is None:
            log("callback prompts: espeak-ng not installed; tones instead")
        added = 0
        for name in missing:
            pcm = builtin.speak(SPEECH[name]) if shutil.which("espeak-ng") else None
            if pcm is None:
                pcm = audio.tone((660,), 0.5)
            conn.execute("INSERT INTO audio (name, pcm, builtin, source) VALUES (%s, %s, true, 'espeak-ng') "
                         "ON CONFLICT DO NOTHING", (name, audio.pcm_bytes(pcm)))
            added += 1
    if added:
        log(f"callback prompts: added {added}")
    return added
