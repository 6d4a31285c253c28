"""Sequential hunt groups (seed 000) through real Kamailio, PostgreSQL, rtpengine and SIPp phones."""
from __future__ import annotations

import itertools

import pytest

from tests.e2e.helpers import explain

_groups = itertools.count(1)
RING = 2  # seconds each member rings in these tests


def make_group(proxy, size: int, services: dict[int, int] | None = None, ring_timeout: int = RING):
    """`size` new members chained in order; services maps row index -> start member index.
    Returns (members [(number, password)], service numbers [str])."""
    members = [proxy.subscriber() for _ in range(size)]
    services = services if services is not None else {0: 0}
    group = f"g{next(_groups)}"
    service_numbers = {row: f"9{members[0][0][1:]}{row}" for row in services}
    lines = ["Sip number\tNext Number\tService number\tStart number"]
    for i, (number, _pw) in enumerate(members):
        nxt = members[i + 1][0] if i + 1 < size else "0000"
        service, start = (service_numbers[i], members[services[i]][0]) if i in services else ("1", "1")
        lines.append(f"{number}\t{nxt}\t{service}\t{start}")
    proxy.kemictl("hunt", "import", group, "-", "--ring-timeout", str(ring_timeout), stdin="\n".join(lines) + "\n")
    return members, [service_numbers[r] for r in sorted(services)]


def test_example1_busy_then_no_answer_then_answer(proxy):
    """Seed 000, Example 1 shape: 8008001-style service number starting at the first member."""
    members, (service,) = make_group(proxy, 4)
    (m1, p1), (m2, p2), (m3, p3), (m4, p4) = members
    busy = proxy.phone(m1, p1, "reject", code=486, phrase="Busy Here")
    silent = proxy.phone(m2, p2, "noanswer")
    answers = proxy.phone(m3, p3, "answer")
    never = proxy.phone(m4, p4, "answer")
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, service)

    assert call.proc.returncode == 0, explain(call, busy.uas, silent.uas, answers.uas, proxy.logs())
    assert len(busy.invites()) == 1
    assert len(silent.invites()) == 1 and silent.uas.received("CANCEL"), explain(silent.uas)
    assert len(answers.invites()) == 1 and answers.uas.received("BYE")
    assert never.invites() == [], "the hunt went past the member who answered"
    # every member saw the caller's identity and the media anchored in rtpengine
    invite = answers.invites()[0]
    assert f"sip:{caller}@" in invite.split("From:", 1)[1].split("\n", 1)[0]
    rtp = proxy.settings
    port = int(invite.split("m=audio ", 1)[1].split()[0])
    assert rtp.rtp_port_min <= port <= rtp.rtp_port_max, "SDP not rewritten by rtpengine"


def test_service_number_starting_mid_chain(proxy):
    members, (first, mid) = make_group(proxy, 4, services={0: 0, 2: 2})
    phones = [proxy.phone(n, p, "answer") for n, p in members]
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, mid)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert [len(p.invites()) for p in phones] == [0, 0, 1, 0]


def test_member_number_hunts_on_and_T_rings_only_that_member(proxy):
    members, _ = make_group(proxy, 3)
    (m1, p1), (m2, p2), (m3, p3) = members
    caller, cpw = proxy.subscriber()

    busy = proxy.phone(m2, p2, "reject", code=486, phrase="Busy Here")
    after = proxy.phone(m3, p3, "answer")
    call = proxy.call(caller, cpw, m2)       # the member's own number hunts on
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(busy.invites()) == 1 and len(after.invites()) == 1

    busy_again = proxy.phone(m2, p2, "reject", code=486, phrase="Busy Here")
    untouched = proxy.phone(m3, p3, "answer")
    call = proxy.call(caller, cpw, m2 + "T", expect=486)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(busy_again.invites()) == 1
    assert untouched.invites() == [], "T must ring only the dialled member"


def test_unregistered_member_is_skipped_at_once(proxy):
    # 30 s ring timeout and a 10 s call limit: waiting on the unregistered member would fail the call
    members, (service,) = make_group(proxy, 2, ring_timeout=30)
    (m1, p1), (m2, p2) = members
    answers = proxy.phone(m2, p2, "answer")
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, service, timeout=10)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(answers.invites()) == 1


def test_member_with_two_devices_rings_both_at_once(proxy):
    members, (service,) = make_group(proxy, 2, ring_timeout=30)
    (m1, p1), (m2, p2) = members
    desk = proxy.phone(m1, p1, "noanswer")
    soft = proxy.phone(m1, p1, "answer", ring_ms=1000)
    next_member = proxy.phone(m2, p2, "answer")
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, service, timeout=10)

    assert call.proc.returncode == 0, explain(call, desk.uas, soft.uas, proxy.logs())
    assert len(desk.invites()) == 1 and len(soft.invites()) == 1
    assert desk.uas.received("CANCEL"), "the other device must be cancelled when one answers"
    cancel = desk.uas.received("CANCEL")[0]
    assert 'cause=200' in cancel and "Call completed elsewhere" in cancel
    assert next_member.invites() == []


def test_caller_cancel_stops_the_hunt(proxy):
    members, (service,) = make_group(proxy, 3, ring_timeout=30)
    (m1, p1), (m2, p2), (m3, p3) = members
    busy = proxy.phone(m1, p1, "reject", code=486, phrase="Busy Here")
    ringing = proxy.phone(m2, p2, "noanswer")
    later = proxy.phone(m3, p3, "answer")
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, service, cancel_after_ms=1000, timeout=15)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(busy.invites()) == 1 and len(ringing.invites()) == 1
    assert ringing.uas.received("CANCEL")
    assert later.invites() == [], "the hunt went on after the caller hung up"


@pytest.mark.parametrize("behaviours,expect", [
    (("busy", "busy"), 486),
    (("noanswer", "noanswer"), 480),
    (("noanswer", "busy"), 486),
    (("decline", "error"), 480),
])
def test_chain_exhausted(proxy, behaviours, expect):
    members, (service,) = make_group(proxy, 2)
    kinds = {"busy": ("reject", 486, "Busy Here"), "decline": ("reject", 603, "Decline"),
             "error": ("reject", 503, "Service Unavailable"), "noanswer": ("noanswer", 0, "")}
    phones = []
    for (number, pw), behaviour in zip(members, behaviours):
        kind, code, phrase = kinds[behaviour]
        phones.append(proxy.phone(number, pw, kind, code=code, phrase=phrase))
    caller, cpw = proxy.subscriber()

    call = proxy.call(caller, cpw, service, expect=expect)

    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert [len(p.invites()) for p in phones] == [1, 1], "every member rings once"


def test_chain_changes_apply_to_the_next_call(proxy):
    members, (service,) = make_group(proxy, 2)
    (m1, p1), (m2, p2) = members
    caller, cpw = proxy.subscriber()
    first = proxy.phone(m1, p1, "answer")
    assert proxy.call(caller, cpw, service).proc.returncode == 0
    assert len(first.invites()) == 1

    # re-point the service number at the second member, no restart
    table = proxy.kemictl("hunt", "export", _group_of(proxy, m1)).stdout
    table = table.replace(f"{service}\t{m1}", f"{service}\t{m2}")
    proxy.kemictl("hunt", "import", _group_of(proxy, m1), "-", stdin=table)
    second = proxy.phone(m2, p2, "answer")
    other = proxy.phone(m1, p1, "answer")
    call = proxy.call(caller, cpw, service)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert len(second.invites()) == 1 and other.invites() == []


def _group_of(proxy, member: str) -> str:
    for line in proxy.kemictl("hunt", "list").stdout.splitlines()[1:]:
        name = line.split()[0]
        if member in proxy.kemictl("hunt", "export", name).stdout:
            return name
    raise AssertionError(f"{member} is in no group")
