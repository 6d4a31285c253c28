"""A real SIP client from Debian's archive (baresip 1.0) leaves a voicemail through the
proxy: digest auth, rtpengine, the media service's 200/SDP, G.711 both ways, the service's
BYE after silence. The message must hold the tone baresip played from a WAV file."""
from __future__ import annotations

import shutil
import subprocess
import wave

import numpy as np
import psycopg
import pytest

from media import audio
from tests.e2e.helpers import wait_until
from tests.e2e.media_helpers import tone_share
from tools.ports import free_port

BARESIP = shutil.which("baresip")
TONE = 587.0


def write_wav(path, pcm):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.astype("<i2").tobytes())


@pytest.mark.skipif(BARESIP is None, reason="baresip-core is installed by tools/setup.sh")
def test_baresip_leaves_a_message(proxy, tmp_path):
    owner, _ = proxy.subscriber()
    caller, caller_pw = proxy.subscriber()
    greeting = tmp_path / "greeting.wav"
    write_wav(greeting, audio.tone((440,), 1.0))
    proxy.kemictl("voicemail", "box", "add", owner, "--pin", "1234", "--always", "yes", "--max-seconds", "20")
    proxy.kemictl("voicemail", "box", "greeting", owner, str(greeting))
    speech = tmp_path / "speech.wav"   # what the caller "says": silence, the tone, silence
    write_wav(speech, np.concatenate([audio.silence(2.0), audio.tone((TONE,), 3.0, 0.5), audio.silence(12.0)]))
    heard = tmp_path / "heard.wav"
    conf = tmp_path / "baresip"
    conf.mkdir()
    host, port = proxy.address
    (conf / "config").write_text(f"""poll_method epoll
sip_listen 127.0.0.1:{free_port()}
audio_player aufile,{heard}
audio_source aufile,{speech}
audio_alert aufile,{heard}
audio_srate 8000
audio_channels 1
rtp_timeout 0
module_path /usr/lib/baresip/modules
module stdio.so
module g711.so
module aufile.so
module_tmp account.so
module_app menu.so
""")
    (conf / "accounts").write_text(f"<sip:{caller}@{host}:{port};transport=udp>;auth_pass={caller_pw};"
                                   f"regint=0;audio_codecs=PCMU,PCMA\n")
    (conf / "contacts").write_text("")
    log = tmp_path / "baresip.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([BARESIP, "-f", str(conf), "-t", "45", "-e", f"/dial sip:{owner}@{host}:{port}"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
    try:
        def stored():
            with psycopg.connect(proxy.settings.database_url, autocommit=True) as conn:
                return conn.execute("SELECT caller, complete, pcm FROM voicemail_message WHERE box = %s",
                                    (owner,)).fetchall()
        wait_until(lambda: stored() and stored()[0][1], timeout=50)
        # after silence the service says goodbye and hangs up: baresip sees the BYE
        wait_until(lambda: "terminated (duration" in log.read_text(errors="replace"), timeout=20)
    finally:
        proc.terminate()
        proc.wait(10)
    text = log.read_text(errors="replace")
    (who, complete, pcm), = stored()
    assert who == caller and complete, text[-2000:]
    assert tone_share(audio.from_pcm_bytes(bytes(pcm)), TONE) > 0.6, "baresip's tone is not in the message"
    assert "terminated by signal" not in text.split("terminated (duration")[0], "the call ended before its BYE"
