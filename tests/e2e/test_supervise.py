"""Whisper (5#), barge (6#) and listen (4#) on supervised queue calls (issue 14 section 2),
through the real stack: a queue with supervision on sends its call through the media
service, which calls the agent back through the proxy and bridges both legs; a supervisor
joins that bridge. Everyone plays their own tone; what each one hears is checked by FFT:
whisper - the agent hears the supervisor, the customer does not; barge - both do; the
supervisor's DTMF switches modes; listen - the supervisor hears both, nobody hears the
supervisor. Attacks: a stranger's 5#, 5# on an agent without a call, 6# on a call that is
not bridged, a forged X-Kemi-Origin, bad app headers straight at the media service."""
from __future__ import annotations

import asyncio
import itertools

import numpy as np

from media import audio
from tests.e2e.callback_peer import Carrier
from tests.e2e.media_helpers import tone_share
from tests.e2e.media_peer import Phone, register

CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ = 500.0, 900.0, 1500.0
_n = itertools.count(1)


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def uri(proxy, user: str) -> str:
    return f"sip:{user}@{proxy.address[0]}:{proxy.address[1]}"


def setup_queue(proxy, supervised: bool = True):
    agent = proxy.subscriber()
    boss = proxy.subscriber()
    customer = proxy.subscriber()
    name = f"supq{next(_n)}"
    number = f"67{agent[0][-5:]}{next(_n)}"
    proxy.kemictl("queue", "add", name, number, "--ring-timeout", "20")
    proxy.kemictl("queue", "agents", name, agent[0])
    proxy.kemictl("supervisor", "add", boss[0], "queue", name)
    if supervised:
        proxy.kemictl("queue", "supervision", name, "on")
    return agent, boss, customer, number


async def agent_phone(proxy, agent) -> Carrier:
    phone = Carrier("127.0.0.1")
    await phone.open()
    phone.user, phone.password = agent
    reply = await register(phone, proxy.address)
    assert reply.status == 200, reply.status
    return phone


def tone(freq: float) -> np.ndarray:
    return audio.tone((freq,), 1.0)


async def window(getters: dict, seconds: float = 1.5) -> dict:
    """What each party heard during the next `seconds` (after a settling pause)."""
    await asyncio.sleep(0.6)          # the mix change reaches everyone (buffers, rtpengine)
    start = {k: len(g()) for k, g in getters.items()}
    await asyncio.sleep(seconds)
    return {k: g()[start[k]:] for k, g in getters.items()}


async def connected_call(proxy, number, agent, customer):
    """The customer calls the queue; the agent's phone rings (from the media service, through
    the proxy) and answers; returns (agent phone, agent's incoming call, customer phone, call)."""
    aphone = await agent_phone(proxy, agent)
    cphone = await Phone(*customer).open()
    calling = asyncio.ensure_future(cphone.call(proxy.address, uri(proxy, number), wait_for=(200,)))
    incoming = await aphone.next_call(timeout=30)
    assert "kemi-media" in incoming.invite.call_id, "the agent is called by the media service"
    assert incoming.from_user == customer[0], "the agent sees the customer's number"
    assert not calling.done(), "the customer must not be answered before the agent answers"
    await asyncio.sleep(0.5)
    assert not calling.done()
    await incoming.answer()
    ccall = await asyncio.wait_for(calling, 30)
    assert ccall.final is not None and ccall.final.status == 200, [r.status for r in ccall.responses]
    assert any(r.status == 180 for r in ccall.responses), "the agent's ringing is relayed"
    incoming.play(tone(AGENT_HZ), loops=1000)
    ccall.play(tone(CUSTOMER_HZ), loops=1000)
    return aphone, incoming, cphone, ccall


def test_whisper_barge_listen_and_switching_by_dtmf(proxy):
    agent, boss, customer, number = setup_queue(proxy)

    async def go():
        aphone, incoming, cphone, ccall = await connected_call(proxy, number, agent, customer)
        sphone = await Phone(*boss).open()
        try:
            heard = await window({"agent": incoming.received, "customer": ccall.received})
            assert tone_share(heard["agent"], CUSTOMER_HZ) > 0.5, "the bridge carries the call"
            assert tone_share(heard["customer"], AGENT_HZ) > 0.5

            scall = await sphone.call(proxy.address, uri(proxy, f"5%23{agent[0]}"), wait_for=(200,))
            assert scall.final is not None and scall.final.status == 200, [r.status for r in scall.responses]
            scall.play(tone(SUPERVISOR_HZ), loops=1000)
            getters = {"agent": incoming.received, "customer": ccall.received, "sup": scall.received}

            heard = await window(getters)          # whisper
            assert tone_share(heard["agent"], SUPERVISOR_HZ) > 0.2, "whisper: the agent hears the supervisor"
            assert tone_share(heard["customer"], SUPERVISOR_HZ) < 0.02, "whisper: the customer does not"
            assert tone_share(heard["agent"], CUSTOMER_HZ) > 0.2, "the agent still hears the customer"
            assert tone_share(heard["sup"], CUSTOMER_HZ) > 0.2 and tone_share(heard["sup"], AGENT_HZ) > 0.2
            assert tone_share(heard["sup"], SUPERVISOR_HZ) < 0.02, "nobody hears themselves"

            scall.leg.send_digit("6")              # barge
            heard = await window(getters)
            assert tone_share(heard["agent"], SUPERVISOR_HZ) > 0.2, "barge: the agent hears the supervisor"
            assert tone_share(heard["customer"], SUPERVISOR_HZ) > 0.2, "barge: the customer does too"

            scall.leg.send_digit("4")              # listen
            heard = await window(getters)
            assert tone_share(heard["agent"], SUPERVISOR_HZ) < 0.02, "listen: the agent does not hear"
            assert tone_share(heard["customer"], SUPERVISOR_HZ) < 0.02, "listen: the customer does not hear"
            assert tone_share(heard["sup"], CUSTOMER_HZ) > 0.2 and tone_share(heard["sup"], AGENT_HZ) > 0.2

            scall.leg.send_digit("5")              # back to whisper
            heard = await window(getters)
            assert tone_share(heard["agent"], SUPERVISOR_HZ) > 0.2
            assert tone_share(heard["customer"], SUPERVISOR_HZ) < 0.02

            scall.bye()                             # the supervisor leaves: the call goes on
            heard = await window({"agent": incoming.received, "customer": ccall.received})
            assert tone_share(heard["agent"], CUSTOMER_HZ) > 0.5
            assert not incoming.ended.is_set() and not ccall.ended_by_peer.is_set()

            ccall.bye()                             # the customer hangs up: the agent gets BYE
            await asyncio.wait_for(incoming.ended.wait(), 15)
        finally:
            for p in (aphone, cphone, sphone):
                p.close()

    run(go())


def test_barge_from_the_start_and_listen_by_4_on_a_bridged_call(proxy):
    agent, boss, customer, number = setup_queue(proxy)

    async def go():
        aphone, incoming, cphone, ccall = await connected_call(proxy, number, agent, customer)
        sphone = await Phone(*boss).open()
        try:
            scall = await sphone.call(proxy.address, uri(proxy, f"6%23{agent[0]}"), wait_for=(200,))
            assert scall.final.status == 200
            scall.play(tone(SUPERVISOR_HZ), loops=1000)
            heard = await window({"agent": incoming.received, "customer": ccall.received})
            assert tone_share(heard["agent"], SUPERVISOR_HZ) > 0.2
            assert tone_share(heard["customer"], SUPERVISOR_HZ) > 0.2
            scall.bye()
            # 4# on a bridged call: through the media service too (it has SDP: no late offer needed)
            lphone = await Phone(*boss).open()
            lcall = await lphone.call(proxy.address, uri(proxy, f"4%23{agent[0]}"), wait_for=(200,))
            assert lcall.final.status == 200
            lcall.play(tone(SUPERVISOR_HZ), loops=1000)
            heard = await window({"agent": incoming.received, "customer": ccall.received, "sup": lcall.received})
            assert tone_share(heard["sup"], CUSTOMER_HZ) > 0.2 and tone_share(heard["sup"], AGENT_HZ) > 0.2
            assert tone_share(heard["agent"], SUPERVISOR_HZ) < 0.02
            assert tone_share(heard["customer"], SUPERVISOR_HZ) < 0.02
            lcall.bye()
            lphone.close()
            incoming.bye()                          # the agent hangs up: the customer gets BYE
            await ccall.wait_bye(15)
        finally:
            for p in (aphone, cphone, sphone):
                p.close()

    run(go())


def test_supervision_refusals(proxy):
    agent, boss, customer, number = setup_queue(proxy)
    stranger = proxy.subscriber()

    async def status_of(who, dialled: str) -> tuple[int, str]:
        phone = await Phone(*who).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, dialled), wait_for=(200,))
            final = call.final
            if final.status == 200:
                call.bye()
            return final.status, final.reason
        finally:
            phone.close()

    async def go():
        # no current call: a clear answer
        status, reason = await status_of(boss, f"5%23{agent[0]}")
        assert (status, "has no current call" in reason) == (480, True), (status, reason)
        aphone, incoming, cphone, ccall = await connected_call(proxy, number, agent, customer)
        try:
            for code in ("5", "6", "4"):        # a stranger: refused whatever the mode
                status, reason = await status_of(stranger, f"{code}%23{agent[0]}")
                assert status == 403 and "does not supervise" in reason, (code, status, reason)
            # the agent's call still runs, and nobody got into it
            heard = await window({"customer": ccall.received})
            assert tone_share(heard["customer"], AGENT_HZ) > 0.5
        finally:
            ccall.bye()
            for p in (aphone, cphone):
                p.close()

    run(go())


def test_whisper_on_a_call_that_is_not_bridged_says_what_is_missing(proxy):
    agent, boss, customer, number = setup_queue(proxy, supervised=False)

    async def go():
        aphone = await agent_phone(proxy, agent)
        cphone = await Phone(*customer).open()
        sphone = await Phone(*boss).open()
        try:
            calling = asyncio.ensure_future(cphone.call(proxy.address, uri(proxy, number), wait_for=(200,)))
            incoming = await aphone.next_call(timeout=30)
            assert "kemi-media" not in incoming.invite.call_id, "supervision off: the queue rings the agent directly"
            await incoming.answer()
            ccall = await asyncio.wait_for(calling, 30)
            assert ccall.final.status == 200
            scall = await sphone.call(proxy.address, uri(proxy, f"5%23{agent[0]}"), wait_for=(200,))
            assert scall.final.status == 501 and "supervision on" in scall.final.reason, scall.final.reason
            ccall.bye()
        finally:
            for p in (aphone, cphone, sphone):
                p.close()

    run(go())


def test_forged_supervise_origin_is_not_trusted(proxy):
    agent, _boss, customer, _number = setup_queue(proxy)

    async def go():
        aphone = await agent_phone(proxy, agent)
        phone = await Phone(*customer).open()     # a phone claiming to be the media service's leg
        try:
            calling = asyncio.ensure_future(phone.call(
                proxy.address, uri(proxy, agent[0]), headers=[("X-Kemi-Origin", f"supervise;agent={agent[0]}")],
                wait_for=(200,)))
            incoming = await aphone.next_call(timeout=20)
            # routed as the phone it is (digest checked, its own From), the header removed
            assert "x-kemi-origin" not in {k.lower() for k, _ in incoming.invite.headers}
            assert incoming.from_user == customer[0]
            incoming.reject(486, "Busy Here")
            call = await asyncio.wait_for(calling, 20)
            assert call.final.status == 486
        finally:
            aphone.close()
            phone.close()

    run(go())
    assert "supervise from" in open(proxy.stack.kamailio.log, errors="replace").read()   # other tests log raw bytes


def test_media_service_refuses_a_spy_from_anyone_but_the_proxy(proxy):
    """Straight at the media service: an untrusted source is refused (403) before anything is
    parsed (bad headers: tests/unit/test_whisper_barge.py); phones' own X-Kemi-App headers are
    stripped by the proxy (kemi/voicemail_route.py)."""
    header = "spy;call=nosuchcall@x;mode=barge"
    host, port = proxy.settings.media_sip.split(":")

    async def go():
        phone = await Phone("intruder").open()
        try:
            call = await phone.call((host, int(port)), f"sip:spy@{host}:{port}",
                                    headers=[("X-Kemi-App", header)], wait_for=(200,))
            return call.final.status
        finally:
            phone.close()

    assert run(go()) == 403
