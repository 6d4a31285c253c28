"""Waiting queue callers hear music on hold and their position (issue 13, section 4), with
the real media service, rtpengine and Kamailio; the audio is checked (FFT, correlation).

- a caller waits on early media (183, not answered), hears the queue's music (660 Hz) and
  "you are caller number", then the agent answers and the caller hears the agent (1300 Hz);
- a caller who hangs up while waiting leaves the line at once (487) and the next caller
  gets the agent;
- the media service down: callers still queue (silence), the agent still gets them, and
  the failure is logged and counted.
"""
from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
import uuid

import numpy as np
import psycopg

from media import audio, sdp, sip
from tests.e2e.helpers import wait_until
from tests.e2e.media_helpers import add_audio, tone_share, wait_until_async
from tests.e2e.media_peer import Phone, register

MUSIC_HZ = 660.0
AGENT_HZ = 1300.0


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Agent(Phone):
    """A registered phone that answers every INVITE after a short ring and sends a tone."""

    def __init__(self, user: str, password: str, busy_then_away: tuple | None = None):
        super().__init__(user, password)
        self.invites: list[sip.Message] = []
        self.legs = []
        self.busy_then_away = busy_then_away   # (proxy address,): unregister, then 486 the first offer

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            msg = sip.parse(data)
        except sip.SipError:
            return
        if msg.is_request and msg.method == "INVITE" and sip.tag_of(msg.get("to", "")) is None:
            self.invites.append(msg)
            asyncio.get_running_loop().create_task(self._answer(msg, addr))
            return
        if msg.is_request and msg.method == "CANCEL":
            self.transport.sendto(sip.response(msg, 200, "OK"), addr)
            return
        super().datagram_received(data, addr)

    async def _answer(self, msg: sip.Message, addr) -> None:
        from media import leg as legmod
        tag = uuid.uuid4().hex[:8]
        self.transport.sendto(sip.response(msg, 180, "Ringing", to_tag=tag), addr)
        if self.busy_then_away:
            target, self.busy_then_away = self.busy_then_away[0], None
            await register(self, target, expires=0)     # not offered again until it registers
            self.transport.sendto(sip.response(msg, 486, "Busy Here", to_tag=tag), addr)
            return
        offer = sdp.parse_offer(msg.body)
        leg = await legmod.open_leg(self.clock, self.address, offer.payload_type, offer.event_type,
                                    (offer.address, offer.port))
        self.legs.append(leg)
        await asyncio.sleep(0.3)
        body = sdp.answer(offer, self.address, leg.port, 7)
        self.transport.sendto(sip.response(msg, 200, "OK", to_tag=tag, body=body,
                                           headers=[("Contact", f"<sip:{self.user}@{self.address}:{self.port}>")]),
                              addr)
        leg.start()
        leg.play(audio.tone((AGENT_HZ,), 2.0, 0.5), 100)


def ncc_peak(signal_pcm: np.ndarray, template: np.ndarray) -> float:
    """Highest normalised cross-correlation of `template` anywhere in `signal_pcm`."""
    x = signal_pcm.astype(np.float64)
    t = template.astype(np.float64)
    t = t[np.abs(t) > 0][: 8000] if np.count_nonzero(t) > 8000 else t
    if len(x) < len(t) or not np.any(t):
        return 0.0
    t = (t - t.mean()) / (np.linalg.norm(t - t.mean()) or 1)
    n = 1 << int(np.ceil(np.log2(len(x) + len(t))))
    corr = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(t, n)), n)[: len(x) - len(t) + 1]
    csum = np.concatenate([[0.0], np.cumsum(x)])
    csum2 = np.concatenate([[0.0], np.cumsum(x * x)])
    m = len(t)
    win_sum = csum[m:] - csum[:-m]
    win_var = (csum2[m:] - csum2[:-m]) - win_sum ** 2 / m
    norm = np.sqrt(np.maximum(win_var, 1e-9))
    return float(np.max(corr / norm))


def stored_audio(proxy, name: str) -> np.ndarray:
    with psycopg.connect(proxy.settings.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT pcm FROM audio WHERE name = %s", (name,)).fetchone()
    assert row is not None, f"no audio {name}"
    return audio.from_pcm_bytes(row[0])


def hold_queue(proxy, agent: str, **hold) -> tuple[str, str]:
    name, number = f"hq{uuid.uuid4().hex[:6]}", f"64{agent[-5:]}"
    music = f"music-{name}"
    add_audio(proxy.settings.database_url, music, audio.tone((MUSIC_HZ,), 4.0, 0.5))
    proxy.kemictl("queue", "add", name, number, "--max-wait", "120", "--ring-timeout", "10")
    proxy.kemictl("queue", "agents", name, agent)
    args = ["--music", music] + [x for k, v in hold.items() for x in (f"--{k}", str(v))]
    proxy.kemictl("queue", "hold", name, *args)
    return name, number


def uri(proxy, user: str) -> str:
    return f"sip:{user}@{proxy.address[0]}:{proxy.address[1]}"


def follow_answer(call) -> None:
    """The agent's 200 may carry another media address than the hold's 183 (rtpengine)."""
    offer = sdp.parse_offer(call.final.body)
    call.leg.remote = (offer.address, offer.port)


def test_waiting_caller_hears_music_and_position_then_the_agent(proxy):
    agent, agent_pw = proxy.subscriber()
    caller, caller_pw = proxy.subscriber()
    name, number = hold_queue(proxy, agent, interval=3, announce="position")

    async def scenario():
        phone = await Phone(caller, caller_pw).open()
        agent_phone = await Agent(agent, agent_pw).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, number), wait_for=(183,))
            assert call.answer is not None and call.answer.status == 183, [r.status for r in call.responses]
            assert call.final is None, "the queue must not answer the call before an agent takes it"
            # the music (660 Hz) on early media
            await wait_until_async(lambda: tone_share(call.received()[-4000:], MUSIC_HZ) > 0.7, timeout=20)
            # after the interval, "you are caller number" (correlated with the stored prompt), then music again
            prompt = stored_audio(proxy, "you-are-caller")
            await wait_until_async(lambda: ncc_peak(call.received(), prompt) > 0.6, timeout=20, step=0.5)
            await wait_until_async(lambda: tone_share(call.received()[-4000:], MUSIC_HZ) > 0.7, timeout=15)
            assert call.final is None
            # an agent becomes available: the music stops and the agent's audio arrives after the 200
            await register(agent_phone, proxy.address)
            final = await call.wait_final(30)
            assert final.status == 200, final.status
            follow_answer(call)
            mark = len(call.received())
            await wait_until_async(lambda: tone_share(call.received_since(mark)[-4000:], AGENT_HZ) > 0.7, timeout=15)
            assert tone_share(call.received_since(mark)[-4000:], MUSIC_HZ) < 0.1
            invite = agent_phone.invites[0]
            assert invite.get("x-kemi-app") is None, "the hold app header must not reach the agent"
            call.bye()
        finally:
            phone.close()
            agent_phone.close()

    run(scenario())
    log = proxy.stack.kamailio.log.read_text()
    assert f"queue {name}: {caller} waits as #1 with music music-{name}" in log


def test_unanswered_offer_puts_the_caller_back_on_music(proxy):
    agent, agent_pw = proxy.subscriber()
    caller, caller_pw = proxy.subscriber()
    name, number = hold_queue(proxy, agent, interval=0, announce="none")

    async def scenario():
        phone = await Phone(caller, caller_pw).open()
        agent_phone = await Agent(agent, agent_pw, busy_then_away=(proxy.address,)).open()
        try:
            await register(agent_phone, proxy.address)
            call = await phone.call(proxy.address, uri(proxy, number), wait_for=(183,))
            await wait_until_async(lambda: len(agent_phone.invites) == 1, timeout=20)   # offered, 486
            mark = len(call.received())
            # back in line at the same place: a new hold branch, the music again
            await wait_until_async(lambda: tone_share(call.received_since(mark)[-4000:], MUSIC_HZ) > 0.7, timeout=20)
            assert call.final is None
            await register(agent_phone, proxy.address)
            final = await call.wait_final(30)
            assert final.status == 200 and len(agent_phone.invites) == 2
            follow_answer(call)
            mark = len(call.received())
            await wait_until_async(lambda: tone_share(call.received_since(mark)[-4000:], AGENT_HZ) > 0.7, timeout=15)
            call.bye()
        finally:
            phone.close()
            agent_phone.close()

    run(scenario())
    assert "back in line (music)" in proxy.stack.kamailio.log.read_text()


def test_caller_who_hangs_up_while_on_hold_leaves_the_line(proxy):
    agent, agent_pw = proxy.subscriber()
    (first, first_pw), (second, second_pw) = proxy.subscriber(), proxy.subscriber()
    name, number = hold_queue(proxy, agent, interval=0, announce="none")

    async def scenario():
        p1, p2 = await Phone(first, first_pw).open(), await Phone(second, second_pw).open()
        agent_phone = await Agent(agent, agent_pw).open()
        try:
            c1 = await p1.call(proxy.address, uri(proxy, number), wait_for=(183,))
            await wait_until_async(lambda: tone_share(c1.received()[-4000:], MUSIC_HZ) > 0.7, timeout=20)
            c2 = await p2.call(proxy.address, uri(proxy, number), wait_for=(183,))
            await wait_until_async(lambda: tone_share(c2.received()[-4000:], MUSIC_HZ) > 0.7, timeout=20)
            c1.cancel()
            final = await c1.wait_final(10)
            assert final.status == 487, final.status
            # the first place is free: the second caller gets the agent
            await register(agent_phone, proxy.address)
            final2 = await c2.wait_final(30)
            assert final2.status == 200
            assert len(agent_phone.invites) == 1 and agent_phone.invites[0].call_id == c2.call_id
            c2.bye()
        finally:
            p1.close()
            p2.close()
            agent_phone.close()

    run(scenario())


def test_callers_still_queue_in_silence_when_the_media_service_is_down(proxy):
    agent, agent_pw = proxy.subscriber()
    caller, caller_pw = proxy.subscriber()
    name, number = hold_queue(proxy, agent, interval=0, announce="none")
    media = proxy.stack.media
    os.kill(media.proc.pid, signal.SIGSTOP)   # no reply at all, like a dead service
    try:
        async def scenario():
            phone = await Phone(caller, caller_pw).open()
            agent_phone = await Agent(agent, agent_pw).open()
            try:
                call = await phone.call(proxy.address, uri(proxy, number), wait_for=(182,))
                await asyncio.sleep(2.0)    # the hold branch times out (0.8 s): the caller stays in line
                assert call.final is None, call.final and call.final.status
                assert tone_share(call.received(), MUSIC_HZ) < 0.2
                await register(agent_phone, proxy.address)
                final = await call.wait_final(30)
                assert final.status == 200, final.status
                follow_answer(call)
                mark = len(call.received())
                await wait_until_async(lambda: tone_share(call.received_since(mark)[-4000:], AGENT_HZ) > 0.7,
                                       timeout=15)
                call.bye()
            finally:
                phone.close()
                agent_phone.close()

        run(scenario())
    finally:
        os.kill(media.proc.pid, signal.SIGCONT)
    log = proxy.stack.kamailio.log.read_text()
    assert "music on hold for" in log and "waits in silence" in log
    wait_until(lambda: f'kemi_queue_hold_failures_total{{queue="{name}"}}' in scrape(proxy), timeout=15)


def scrape(proxy) -> str:
    url = f"http://{proxy.settings.metrics_address}:{proxy.settings.metrics_port}/metrics"
    return urllib.request.urlopen(url, timeout=10).read().decode()


def test_kemictl_queue_hold_refuses_bad_values(proxy):
    agent, _ = proxy.subscriber()
    name, _number = hold_queue(proxy, agent, interval=5, announce="both")
    for args, field in ((["--music", "../../etc/passwd"], "music"), (["--music", "no-such-audio"], "music"),
                        (["--interval", "3601"], "interval"), (["--interval", "-1"], "interval"),
                        (["--announce", "everything"], "announce")):
        out = proxy.kemictl("queue", "hold", name, *args, check=False)
        assert out.returncode == 2 and f"field '{field}'" in out.stderr, (args, out.stderr)
    out = proxy.kemictl("queue", "hold", "no-such-queue", "--music", "music-hold", check=False)
    assert out.returncode == 2 and "field 'queue'" in out.stderr
    with psycopg.connect(proxy.settings.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT hold_music, announce_interval, announce FROM queue WHERE name = %s", (name,)).fetchone()
    assert row == (f"music-{name}", 5, "both"), row   # nothing written


def test_hold_control_info_from_anyone_but_the_proxy_is_refused(proxy):
    agent, _ = proxy.subscriber()
    caller, caller_pw = proxy.subscriber()
    _name, number = hold_queue(proxy, agent, interval=0, announce="none")
    host, _, port = proxy.settings.media_sip.rpartition(":")

    async def scenario():
        phone = await Phone(caller, caller_pw).open()
        attacker = await Phone("attacker").open()
        try:
            call = await phone.call(proxy.address, uri(proxy, number), wait_for=(183,))
            await wait_until_async(lambda: tone_share(call.received()[-4000:], MUSIC_HZ) > 0.7, timeout=20)
            headers = [("Via", f"SIP/2.0/UDP 127.0.0.1:{attacker.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport"),
                       ("Max-Forwards", "70"), ("From", "<sip:attacker@127.0.0.1>;tag=x1"),
                       ("To", f"<sip:hold@{host}:{port}>"), ("Call-ID", call.call_id), ("CSeq", "1 INFO")]
            replies: asyncio.Queue = asyncio.Queue()
            attacker.waiters[call.call_id] = replies
            attacker.transport.sendto(sip.request("INFO", f"sip:hold@{host}:{port}", headers, "end",
                                                  content_type="application/x-kemi-hold"), (host, int(port)))
            reply = await asyncio.wait_for(replies.get(), 10)
            assert reply.status == 403, reply.status
            await asyncio.sleep(1.0)
            assert call.final is None
            assert tone_share(call.received()[-4000:], MUSIC_HZ) > 0.7, "the music must go on"
            call.cancel()
            assert (await call.wait_final(10)).status == 487
        finally:
            phone.close()
            attacker.close()

    run(scenario())
