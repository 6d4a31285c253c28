"""Conference rooms, the pure parts: the app header, PIN guard, admission, keys, the control
socket's request decisions, kemictl's room rules, the proxy's room -> node routing."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kemi import conference_route
from media import apps, conference_control as ctl, conference_core as core
from provision import conference as pconf
from provision.store import ProvisioningError


@pytest.mark.parametrize("header,expected", [
    ("conference;room=8100", apps.Conference("8100")),
    ("conference;room=81%30", apps.Conference("810")),
])
def test_app_header(header, expected):
    assert apps.parse(header) == expected


@pytest.mark.parametrize("header,status", [
    ("conference", 400), ("conference;room=", 400), ("conference;room=1", 400), ("conference;room=81a", 400),
    ("conference;room=" + "1" * 33, 400), ("conference;room=8100%0d%0aX: y", 400),
])
def test_app_header_refusals(header, status):
    with pytest.raises(apps.AppError) as err:
        apps.parse(header)
    assert err.value.status == status


def test_three_wrong_pins_per_call_then_caller_locked_after_six():
    g = core.PinGuard()
    for i in range(core.PIN_LIMIT_CALLER - 1):
        assert not g.failed("8100", "alice", 100.0 + i)
    assert g.failed("8100", "alice", 110.0)
    assert g.locked("8100", "alice", 111.0)
    assert not g.locked("8100", "bob", 111.0)            # others still get in
    assert not g.locked("8200", "alice", 111.0)          # other rooms too
    assert not g.locked("8100", "alice", 110.0 + core.LOCK_SECONDS + 1)


def test_failures_outside_the_window_are_forgotten_and_success_resets():
    g = core.PinGuard()
    for i in range(core.PIN_LIMIT_CALLER - 1):
        g.failed("8100", "alice", float(i))
    assert not g.failed("8100", "alice", core.PIN_WINDOW + 10)
    g.succeeded("8100", "alice")
    for i in range(core.PIN_LIMIT_CALLER - 1):
        assert not g.failed("8100", "alice", 2000.0 + i)


def test_a_distributed_guess_locks_the_room_for_everyone():
    g = core.PinGuard()
    locked = [g.failed("8100", f"caller{i}", 10.0 + i) for i in range(core.PIN_LIMIT_ROOM)]
    assert locked[-1] and not any(locked[:-1])
    assert g.locked("8100", "somebody-new", 40.0)
    g.unlock("8100")
    assert not g.locked("8100", "somebody-new", 41.0)


@pytest.mark.parametrize("size,max_size,locked,moderator,expected", [
    (0, 2, False, False, "join"), (1, 2, False, False, "join"), (2, 2, False, False, "full"),
    (2, 2, False, True, "full"), (1, 3, True, False, "locked"), (1, 3, True, True, "join"),
])
def test_admit(size, max_size, locked, moderator, expected):
    assert core.admit(size, max_size, locked, moderator) == expected


@pytest.mark.parametrize("people,moderators,wait,expected", [
    (0, 0, False, False), (1, 0, False, False), (2, 0, False, True), (2, 0, True, False), (3, 1, True, True),
])
def test_music_while_alone_or_waiting_for_the_moderator(people, moderators, wait, expected):
    assert core.mixing(people, moderators, wait) is expected


@pytest.mark.parametrize("key,moderator,muted,locked,action", [
    ("6", False, False, False, "mute"), ("6", False, True, False, "unmute"), ("5", False, False, False, "ignore"),
    ("5", True, False, False, "lock"), ("5", True, False, True, "unlock"), ("1", True, False, False, "ignore"),
])
def test_keys(key, moderator, muted, locked, action):
    assert core.on_key(key, moderator, muted, locked).action == action


TOKEN = "t" * 43


def line(**fields) -> bytes:
    return json.dumps(fields).encode() + b"\n"


@pytest.mark.parametrize("request_line,status", [
    (b"not json\n", 400), (b"[1, 2]\n", 400), (b"\xff\xfe\n", 400),
    (line(op="status"), 401), (line(token="x" * 43, op="status"), 401), (line(token=5, op="status"), 401),
    (line(token=TOKEN, op="drop"), 400), (line(token=TOKEN, op="status", room="1"), 400),
    (line(token=TOKEN, op="status", room="81 00"), 400), (line(token=TOKEN, op="kick", id="x"), 400),
    (line(token=TOKEN, op="kick", room="8100"), 400), (line(token=TOKEN, op="kick", room="8100", id="a b"), 400),
    (line(token=TOKEN, op="kick", room="8100", id="x" * 201), 400),
])
def test_control_refusals(request_line, status):
    decision = ctl.decide(request_line, TOKEN)
    assert isinstance(decision, ctl.Refusal) and decision.status == status, decision


def test_control_commands():
    assert ctl.decide(line(token=TOKEN, op="status", room="8100"), TOKEN) == ctl.Command("status", "8100", None)
    assert ctl.decide(line(token=TOKEN, op="status"), TOKEN) == ctl.Command("status", None, None)
    assert ctl.decide(line(token=TOKEN, op="kick", room="8100", id="abc@h"), TOKEN) == ctl.Command("kick", "8100", "abc@h")


class FakeRooms:
    def __init__(self):
        self.calls = []

    def status(self, room):
        return {"room": room, "participants": []}

    def kick(self, room, who):
        self.calls.append(("kick", room, who))
        return who == "here"

    def mute(self, room, who, muted):
        self.calls.append(("mute", room, who, muted))
        return True


def test_control_execute():
    rooms = FakeRooms()
    assert ctl.execute(ctl.Command("status", "8100", None), rooms) == {"status": 200, "room": "8100", "participants": []}
    assert ctl.execute(ctl.Command("kick", "8100", "here"), rooms)["status"] == 200
    assert ctl.execute(ctl.Command("kick", "8100", "gone"), rooms)["status"] == 404
    assert ctl.execute(ctl.Command("unmute", "8100", "here"), rooms)["status"] == 200
    assert rooms.calls[-1] == ("mute", "8100", "here", False)


GOOD = dict(number="8100", name="Sales weekly", max_size=10, node=None, pin_value="4321",
            moderator_pin=None, wait_for_moderator=False)


@pytest.mark.parametrize("change,field", [
    (dict(number="8"), "number"), (dict(number="81a0"), "number"), (dict(name=""), "name"),
    (dict(name="Sales\r\nX: y"), "name"), (dict(name="x" * 65), "name"), (dict(name="a\u202eb"), "name"),
    (dict(max_size=1), "max-size"), (dict(max_size=101), "max-size"),
    (dict(pin_value="123"), "pin"), (dict(pin_value="123456789"), "pin"), (dict(pin_value="12a4"), "pin"),
    (dict(moderator_pin="12"), "moderator-pin"), (dict(moderator_pin="4321"), "moderator-pin"),
    (dict(wait_for_moderator=True), "wait-for-moderator"), (dict(node="host"), "node"),
    (dict(node="a b:5060"), "node"), (dict(node="media2:99999"), "node"),
])
def test_room_rules_name_the_field(change, field):
    with pytest.raises(ProvisioningError) as err:
        pconf.check_room(**{**GOOD, **change})
    assert f"'{field}'" in str(err.value)


def test_room_rules_accept_good_rooms():
    pconf.check_room(**GOOD)
    pconf.check_room(**{**GOOD, "moderator_pin": "99887766", "wait_for_moderator": True, "max_size": 100,
                        "node": "media2.example:5080", "name": "Ünï \"VIP\" <room>"})


def test_proxy_routes_a_room_to_its_node():
    rooms = {"8100": "", "8200": "10.0.0.7:5080"}
    assert conference_route.node_for(rooms, "8100", "127.0.0.1:5080") == "127.0.0.1:5080"
    assert conference_route.node_for(rooms, "8200", "127.0.0.1:5080") == "10.0.0.7:5080"
    assert conference_route.node_for(rooms, "8300", "127.0.0.1:5080") is None
    assert conference_route.header("8100") == "conference;room=8100"


def test_room_mixing_frame_per_tick():
    """The live room: one mix per clock tick whoever asks first; each hears the others."""
    import asyncio

    from media import conference, g711

    class Clock:
        ticks = 0

    class Leg:
        def __init__(self):
            self.clock, self.payload_type, self.recording, self.player = Clock, g711.PCMU, None, None

        def stop_playing(self):
            self.player = None

    async def scenario():
        info = conference.RoomInfo("8100", "r", "", None, False, 5, False)
        room = conference.Room(info, None, lambda m: None, np.zeros(160, np.int16))
        legs = [Leg() for _ in range(3)]
        members = [room.join(f"k{i}", f"c{i}", "member", leg) for i, leg in enumerate(legs)]
        room.tone = None
        for tick in range(1, 4):
            Clock.ticks = tick
            for i, leg in enumerate(legs):
                leg.recording.append(np.full(160, 1000 * (i + 1), np.int16))
            out = [g711.decode(leg.player.next_frame(), g711.PCMU)[0] for leg in legs]
            assert room.mixes == tick
            assert abs(out[0] - 5000) < 200 and abs(out[1] - 4000) < 200 and abs(out[2] - 3000) < 200, out
        room.set_muted("k2", True)
        Clock.ticks = 4
        for i, leg in enumerate(legs):
            leg.recording.append(np.full(160, 1000 * (i + 1), np.int16))
        out = [g711.decode(leg.player.next_frame(), g711.PCMU)[0] for leg in legs]
        assert abs(out[0] - 2000) < 100 and abs(out[1] - 1000) < 100
        assert members[2].cue is not None
    asyncio.run(scenario())
