"""baresip (Debian's package) as a real SIP phone in the end-to-end tests: its own config
directory, a sine tone as microphone, commands as JSON netstrings over TCP (ctrl_tcp module)."""
from __future__ import annotations

import json
import math
import random
import socket
import struct
import wave
import subprocess
from pathlib import Path

MODULES = "/usr/lib/baresip/modules"


def sip_port_pair() -> int:
    """A port P free for UDP and TCP whose P+1 is free for TCP too. baresip 1.0 always opens
    UDP and TCP on its sip_listen port and SIP/TLS on the port after it (its main() calls
    ua_init(..., udp=true, tcp=true, tls=true); no setting turns a transport off). The pair
    comes from 29000-32767: below the kernel's ephemeral range (32768-60999), where outgoing
    connections of every other process on the machine take ports at any moment (one took a
    P+1 between this check and baresip's bind), and above SIPp's media ports (20000-28999)."""
    for _ in range(500):
        port = random.randrange(29000, 32766)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tls:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
                tls.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of loopback ports for baresip in 29000-32767")


class Baresip:
    def __init__(self, proxy: tuple[str, int], number: str, password: str, workdir: Path):
        self.number = number
        self.dir = workdir / f"baresip-{number}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sip_port = sip_port_pair()
        self.cons_port = sip_port_pair()     # ctrl_tcp: out of the ephemeral range as well
        while self.cons_port in (self.sip_port - 1, self.sip_port, self.sip_port + 1):
            self.cons_port = sip_port_pair()
        self.rtp_base = 40000 + (self.sip_port % 200) * 10
        host, port = proxy
        (self.dir / "config").write_text("\n".join([
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "sip_trans_def udp",
            f"rtp_ports {self.rtp_base}-{self.rtp_base + 9}",
            "rtcp_mux no",
            f"audio_source aufile,{self._tone()}",
            f"audio_player aufile,{self.dir / 'heard.wav'}",
            "audio_alert aufile,/dev/null",
            f"module_path {MODULES}",
            "module g711.so", "module aufile.so", "module ctrl_tcp.so", "module menu.so",
            "module_app account.so", "module_app contact.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.cons_port}",
            "",
        ]))
        (self.dir / "accounts").write_text(
            f"<sip:{number}@{host}:{port};transport=udp>;auth_user={number};auth_pass={password};"
            f"regint=300;audio_codecs=PCMU\n")
        (self.dir / "contacts").write_text("")
        self.log = self.dir / "baresip.log"
        self.proc = subprocess.Popen(["baresip", "-f", str(self.dir), "-v"], stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)

    def _tone(self, seconds: int = 30) -> Path:
        """A 440 Hz tone, 8 kHz mono 16-bit (ausine only does 48 kHz, G.711 is 8 kHz)."""
        path = self.dir / "tone.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                                   for i in range(8000 * seconds)))
        return path

    def command(self, command: str, params: str = "") -> dict:
        """One ctrl_tcp command (e.g. dial, hangup, quit); its JSON response."""
        body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        with socket.create_connection(("127.0.0.1", self.cons_port), timeout=5) as s:
            s.sendall(str(len(body)).encode() + b":" + body + b",")
            data = b""
            while b'"response"' not in data or not data.endswith(b","):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        text = data.decode(errors="replace")
        start = text.find('{"response"')
        return json.loads(text[start:text.rfind("}") + 1]) if start >= 0 else {}

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("quit")
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
