"""Conference rooms through the real stack (issue 14, section 1): Kamailio routes the room's
number to the media service (rtpengine in between), callers enter the PIN by RFC 4733 or
SIP INFO, and the audio is checked by FFT: in a room of three each hears the other two and
not itself; music while alone; waiting for the moderator; the room full; kick; recording
stored and exported. Attacks: an untrusted source, bad app parameters, PIN guessing (three
per call, then locked across calls), the control socket (token, flood, oversize), kemictl
input rules, and a room whose node is down (503 with a reason)."""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time

import numpy as np
import psycopg
import pytest

from media import audio, conference_control
from tests.e2e.media_helpers import DirectService, tone_share, wait_until_async
from tests.e2e.media_peer import Phone
from tools.ports import free_port

PIN = "4321"
MODERATOR_PIN = "86420"
TONES = (450.0, 1150.0, 1850.0)     # one per caller: away from the join tones (660/880) and cues (1400)
MUSIC_NOTES = (220.0, 261.63, 329.63, 196.0, 246.94, 293.66, 392.0, 164.81)
_rooms = itertools.count(1)


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def room(proxy, *args: str, pin: str = PIN) -> str:
    number = f"86{os.getpid() % 100:02d}{next(_rooms):03d}"
    proxy.kemictl("conference", "add", number, "--pin", pin, *args)
    return number


def uri(proxy, user: str) -> str:
    return f"sip:{user}@{proxy.address[0]}:{proxy.address[1]}"


def live(proxy, number: str) -> dict:
    return conference_control.request(proxy.settings.var_dir, "status", room=number)


async def live_async(proxy, number: str) -> dict:
    return await asyncio.to_thread(live, proxy, number)


async def wait_in_room(proxy, number: str, caller: str, present: bool = True, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        people = (await live_async(proxy, number))["participants"]
        if any(p["caller"] == caller for p in people) == present:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{caller} {'not in' if present else 'still in'} room {number}: {people}")
        await asyncio.sleep(0.2)


async def dial_in(proxy, number: str, who: tuple[str, str], pin: str | None = PIN, info: bool = False):
    """Call the room, enter the PIN (RFC 4733, or INFO), return (phone, call)."""
    phone = await Phone(*who).open()
    try:
        call = await phone.call(proxy.address, uri(proxy, number), wait_for=(200,))
        assert call.final is not None and call.final.status == 200, [r.status for r in call.responses]
        await wait_until_async(lambda: len(call.received()) > 2400, timeout=15)   # the PIN prompt plays
        if pin is not None:
            for digit in pin + "#":
                call.info(digit) if info else call.leg.send_digit(digit)
                await asyncio.sleep(0.15)
        return phone, call
    except BaseException:
        phone.close()
        raise


def last(call, seconds: float) -> np.ndarray:
    return call.received()[-int(seconds * 8000):]


def test_three_callers_each_hear_the_other_two_and_not_themselves(proxy):
    number = room(proxy)
    callers = [proxy.subscriber() for _ in range(3)]

    async def scenario():
        legs = []
        try:
            for i, who in enumerate(callers):
                legs.append(await dial_in(proxy, number, who, info=(i == 1)))   # the second one uses SIP INFO
                await wait_in_room(proxy, number, who[0])
            for (_phone, call), freq in zip(legs, TONES):
                call.play(audio.tone((freq,), 1.0, 0.25), 1000)
            await asyncio.sleep(3.0)
            heard = [last(call, 1.5) for _phone, call in legs]
            status = await asyncio.to_thread(proxy.kemictl, "conference", "status", number)
            return heard, status.stdout
        finally:
            for phone, call in legs:
                call.bye()
                phone.close()

    heard, status = run(scenario())
    for i, pcm in enumerate(heard):
        own = tone_share(pcm, TONES[i])
        others = [tone_share(pcm, TONES[j]) for j in range(3) if j != i]
        assert min(others) > 0.2, f"caller {i} hears the others at {others} (own {own})"
        assert own < 0.02, f"caller {i} hears itself ({own:.3f}; others {others})"
    assert "3 of 10 in" in status and all(c[0] in status for c in callers), status


def test_music_while_alone_then_the_second_caller_is_heard(proxy):
    number = room(proxy)
    first, second = proxy.subscriber(), proxy.subscriber()

    async def scenario():
        phone1, call1 = await dial_in(proxy, number, first)
        phone2 = call2 = None
        try:
            await wait_in_room(proxy, number, first[0])
            await asyncio.sleep(2.0)
            alone = last(call1, 1.0)
            phone2, call2 = await dial_in(proxy, number, second)
            await wait_in_room(proxy, number, second[0])
            call2.play(audio.tone((TONES[2],), 1.0, 0.25), 1000)
            await asyncio.sleep(2.0)
            return alone, last(call1, 1.0)
        finally:
            call1.bye()
            phone1.close()
            if call2 is not None:
                call2.bye()
                phone2.close()

    alone, together = run(scenario())
    assert np.sqrt(np.mean(alone.astype(float) ** 2)) > 300, "silence while alone, not music"
    dominant = audio.dominant_frequency(alone)
    assert any(abs(dominant - f) < 8 or abs(dominant - 2 * f) < 16 for f in MUSIC_NOTES), dominant
    assert tone_share(together, TONES[2]) > 0.6, "the second caller is not heard (music still on?)"


def test_members_wait_for_the_moderator(proxy):
    number = room(proxy, "--moderator-pin", MODERATOR_PIN, "--wait-for-moderator", "yes")
    a, b, mod = proxy.subscriber(), proxy.subscriber(), proxy.subscriber()

    async def scenario():
        legs = []
        try:
            for who in (a, b):
                legs.append(await dial_in(proxy, number, who))
                await wait_in_room(proxy, number, who[0])
            legs[1][1].play(audio.tone((TONES[1],), 1.0, 0.25), 1000)
            await asyncio.sleep(2.0)
            before = last(legs[0][1], 1.0)
            waiting = await live_async(proxy, number)
            legs.append(await dial_in(proxy, number, mod, pin=MODERATOR_PIN))
            await wait_in_room(proxy, number, mod[0])
            await asyncio.sleep(2.0)
            return before, last(legs[0][1], 1.0), waiting, await live_async(proxy, number)
        finally:
            for phone, call in legs:
                call.bye()
                phone.close()

    before, after, waiting, started = run(scenario())
    assert not waiting["mixing"] and started["mixing"], (waiting, started)
    assert tone_share(before, TONES[1]) < 0.05, "members heard each other before the moderator came"
    assert tone_share(after, TONES[1]) > 0.5, "the room did not start when the moderator joined"
    roles = {p["caller"]: p["role"] for p in started["participants"]}
    assert roles[mod[0]] == "moderator" and roles[a[0]] == "member"


def test_wrong_pin_three_times_is_goodbye(proxy):
    number = room(proxy)
    caller = proxy.subscriber()

    async def scenario():
        phone, call = await dial_in(proxy, number, caller, pin="1111")
        try:
            for wrong in ("2222", "3333"):
                await asyncio.sleep(2.5)
                await call.dtmf_slow(wrong + "#")
            await call.wait_bye(30)
            return await live_async(proxy, number)
        finally:
            phone.close()

    status = run(scenario())
    assert status["participants"] == []


def test_pin_guessing_is_locked_across_calls(proxy):
    """Two calls of three wrong PINs lock the caller out of the room: the right PIN is then
    refused too (locked-out prompt, BYE), while another caller still gets in."""
    number = room(proxy)
    attacker, other = proxy.subscriber(), proxy.subscriber()

    async def guess_three():
        phone, call = await dial_in(proxy, number, attacker, pin="0000")
        try:
            for wrong in ("0001", "0002"):
                await asyncio.sleep(2.5)
                await call.dtmf_slow(wrong + "#")
            await call.wait_bye(30)
        finally:
            phone.close()

    async def scenario():
        await guess_three()
        await guess_three()
        phone, call = await dial_in(proxy, number, attacker, pin=PIN)
        try:
            await call.wait_bye(30)
            locked = await live_async(proxy, number)
        finally:
            phone.close()
        phone, call = await dial_in(proxy, number, other)
        try:
            await wait_in_room(proxy, number, other[0])
        finally:
            call.bye()
            phone.close()
        return locked

    locked = run(scenario(), timeout=180)
    assert locked["participants"] == []
    log = proxy.stack.media.log.read_text()
    assert f"PIN entry locked for {attacker[0]}" in log and f"{attacker[0]} is locked out" in log


def test_room_full_is_refused_with_503(proxy):
    number = room(proxy, "--max-size", "2")
    callers = [proxy.subscriber() for _ in range(3)]

    async def scenario():
        legs = []
        try:
            for who in callers[:2]:
                legs.append(await dial_in(proxy, number, who))
                await wait_in_room(proxy, number, who[0])
            phone = await Phone(*callers[2]).open()
            try:
                call = await phone.call(proxy.address, uri(proxy, number), wait_for=(200,))
                return call.final
            finally:
                phone.close()
        finally:
            for phone, call in legs:
                call.bye()
                phone.close()

    final = run(scenario())
    assert final.status == 503 and "full" in final.reason, (final.status, final.reason)


def test_kick_ends_that_participant_only(proxy):
    number = room(proxy)
    a, b = proxy.subscriber(), proxy.subscriber()

    async def scenario():
        legs = []
        try:
            for who in (a, b):
                legs.append(await dial_in(proxy, number, who))
                await wait_in_room(proxy, number, who[0])
            out = await asyncio.to_thread(proxy.kemictl, "conference", "kick", number, b[0])
            await legs[1][1].wait_bye(20)
            await wait_in_room(proxy, number, b[0], present=False)
            still = await live_async(proxy, number)
            missing = await asyncio.to_thread(proxy.kemictl, "conference", "kick", number, "55555", check=False)
            return out.stdout, still, missing
        finally:
            for phone, call in legs:
                call.bye()
                phone.close()

    out, still, missing = run(scenario())
    assert f"kicked {b[0]}" in out
    assert [p["caller"] for p in still["participants"]] == [a[0]]
    assert missing.returncode == 2 and "'participant'" in missing.stderr


def db(proxy, sql: str, params=()):
    with psycopg.connect(proxy.settings.database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def test_recording_is_stored_listed_and_exported(proxy, tmp_path):
    number = room(proxy, "--record", "yes")
    a, b = proxy.subscriber(), proxy.subscriber()

    async def scenario():
        legs = []
        try:
            for who in (a, b):
                legs.append(await dial_in(proxy, number, who))
                await wait_in_room(proxy, number, who[0])
            legs[0][1].play(audio.tone((TONES[0],), 1.0, 0.2), 1000)
            legs[1][1].play(audio.tone((TONES[2],), 1.0, 0.2), 1000)
            await asyncio.sleep(3.0)
        finally:
            for phone, call in legs:
                call.bye()
                phone.close()

    run(scenario())
    deadline = time.monotonic() + 20
    while not db(proxy, "SELECT 1 FROM conference_recording WHERE room = %s AND complete", (number,)):
        assert time.monotonic() < deadline, "recording not completed"
        time.sleep(0.2)
    listed = proxy.kemictl("conference", "recordings", number).stdout
    rec_id = db(proxy, "SELECT id, duration_ms FROM conference_recording WHERE room = %s", (number,))[0]
    assert str(rec_id[0]) in listed and rec_id[1] >= 2000, (listed, rec_id)
    wav = tmp_path / "room.wav"
    proxy.kemictl("conference", "recordings", number, "--export", str(rec_id[0]), str(wav))
    pcm = audio.from_wav(wav.read_bytes())
    assert tone_share(pcm, TONES[0]) > 0.2 and tone_share(pcm, TONES[2]) > 0.2
    assert "yes" in proxy.kemictl("conference", "list").stdout


def test_room_on_a_node_that_is_down_gets_503_with_a_reason(proxy):
    number = room(proxy, "--node", f"127.0.0.1:{free_port()}")
    caller = proxy.subscriber()

    async def scenario():
        phone = await Phone(*caller).open()
        try:
            call = await phone.call(proxy.address, uri(proxy, number), wait_for=(200,))
            return call.final
        finally:
            phone.close()

    final = run(scenario())
    assert final.status == 503 and "conference service is not reachable" in final.reason, final.reason


# ---------------------------------------------------------------- attacks

def test_untrusted_source_cannot_call_a_room_directly(proxy):
    number = room(proxy)
    host, port = proxy.settings.media_sip.rsplit(":", 1)

    async def scenario():
        phone = await Phone("intruder").open()
        try:
            call = await phone.call((host, int(port)), f"sip:conference@{host}:{port}",
                                    [("X-Kemi-App", f"conference;room={number}")], wait_for=(200,))
            return call.final
        finally:
            phone.close()

    final = run(scenario())
    assert final.status == 403 and "through the proxy only" in final.reason


@pytest.fixture(scope="module")
def direct(proxy):
    svc = DirectService(proxy.settings, proxy.workdir).start()
    yield svc
    svc.stop()


@pytest.mark.parametrize("header,status,reason", [
    ("conference", 400, "room is required"), ("conference;room=abc", 400, "2-32 digits"),
    ("conference;room=1", 400, "2-32 digits"), ("conference;room=12%0d%0aX:1", 400, "2-32 digits"),
    ("conference;room=99999999", 404, "no conference room"),
])
def test_bad_app_parameters_get_a_clear_answer(proxy, direct, header, status, reason):
    async def scenario():
        phone = await Phone("tester").open()
        try:
            call = await phone.call(direct.address, f"sip:conference@{direct.address[0]}:{direct.address[1]}",
                                    [("X-Kemi-App", header)], wait_for=(200,))
            return call.final
        finally:
            phone.close()

    final = run(scenario())
    assert final.status == status and reason in final.reason, (final.status, final.reason)


def control_raw(info: dict, payload: bytes) -> dict:
    with socket.create_connection((info["address"], info["port"]), timeout=5) as sock:
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data or b"{}")


def test_control_socket_needs_the_token_and_is_rate_limited(proxy):
    path = conference_control.control_path(proxy.settings.var_dir)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    info = json.loads(path.read_text())
    assert control_raw(info, b'{"token": "guess", "op": "status"}\n')["status"] == 401
    assert control_raw(info, b'{"op": "status"}\n')["status"] == 401
    assert control_raw(info, b"x" * 10000 + b"\n")["status"] == 400
    statuses = [control_raw(info, json.dumps({"token": f"guess{i}", "op": "kick", "room": "8100",
                                              "id": "x"}).encode() + b"\n")["status"] for i in range(12)]
    assert 429 in statuses and set(statuses) <= {401, 429}, statuses
    time.sleep(3)   # the buckets refill: the owner's requests work again
    ok = control_raw(info, json.dumps({"token": info["token"], "op": "status"}).encode() + b"\n")
    assert ok["status"] == 200 and "rooms" in ok


@pytest.mark.parametrize("args,field", [
    (("8", "--pin", PIN), "number"), (("8600991", "--pin", "12"), "pin"),
    (("8600992", "--pin", PIN, "--max-size", "101"), "max-size"),
    (("8600993", "--pin", PIN, "--max-size", "1"), "max-size"),
    (("8600994", "--pin", PIN, "--name", "a\r\nVia: x"), "name"),
    (("8600995", "--pin", PIN, "--wait-for-moderator", "yes"), "wait-for-moderator"),
    (("8600996", "--pin", PIN, "--moderator-pin", PIN), "moderator-pin"),
    (("8600997", "--pin", PIN, "--node", "evil host"), "node"),
])
def test_kemictl_refuses_bad_rooms_naming_the_field(proxy, args, field):
    out = proxy.kemictl("conference", "add", *args, check=False)
    assert out.returncode == 2 and f"'{field}'" in out.stderr, out.stderr
    assert not db(proxy, "SELECT 1 FROM conference_room WHERE number = %s", (args[0],))


def test_one_namespace_for_room_numbers(proxy):
    sub, _ = proxy.subscriber()
    out = proxy.kemictl("conference", "add", sub, "--pin", PIN, check=False)
    assert out.returncode == 2 and "a SIP number" in out.stderr
    number = room(proxy)
    out = proxy.kemictl("subscriber", "add", number, "--password", "secret-pass-1", check=False)
    assert out.returncode == 2 and "conference room" in out.stderr, out.stderr
    stored = db(proxy, "SELECT pin_hash FROM conference_room WHERE number = %s", (number,))[0][0]
    assert stored.startswith("scrypt$") and PIN not in stored


def test_keys_mute_yourself_and_the_moderator_locks_the_room(proxy):
    number = room(proxy, "--moderator-pin", MODERATOR_PIN)
    member, moderator, late = proxy.subscriber(), proxy.subscriber(), proxy.subscriber()

    async def scenario():
        legs = []
        try:
            legs.append(await dial_in(proxy, number, member))
            await wait_in_room(proxy, number, member[0])
            legs.append(await dial_in(proxy, number, moderator, pin=MODERATOR_PIN))
            await wait_in_room(proxy, number, moderator[0])
            (_p, m_call), (_q, mod_call) = legs
            m_call.play(audio.tone((TONES[0],), 1.0, 0.25), 1000)
            await asyncio.sleep(2.0)
            heard = last(mod_call, 1.0)
            m_call.leg.send_digit("6")                        # the member mutes itself
            await asyncio.sleep(2.0)
            muted = last(mod_call, 1.0)
            status = await live_async(proxy, number)
            mod_call.leg.send_digit("5")                      # the moderator locks the room
            await asyncio.sleep(1.0)
            locked = (await live_async(proxy, number))["locked"]
            phone, call = await dial_in(proxy, number, late)   # right PIN, locked room
            try:
                await call.wait_bye(30)
            finally:
                phone.close()
            return heard, muted, status, locked, await live_async(proxy, number)
        finally:
            for phone, call in legs:
                call.bye()
                phone.close()

    heard, muted, status, locked, after = run(scenario())
    assert tone_share(heard, TONES[0]) > 0.6
    assert tone_share(muted, TONES[0]) < 0.05, "a muted member is still heard"
    assert [p["muted"] for p in status["participants"] if p["caller"] == member[0]] == [True]
    assert locked and len(after["participants"]) == 2
    assert f"{late[0]} not admitted: room locked" in proxy.stack.media.log.read_text()
