"""Issue 12, item 3: no group rings the caller's own phone (hunt, ring-all; queues already
skip), and group numbers of every kind refuse the T, h and cN suffixes with one 484."""
from __future__ import annotations

import pytest

from tests.e2e.helpers import explain
from tests.e2e.phones_groups import hunt_group, ringall


def test_hunt_group_member_calling_the_group_is_not_rung(proxy):
    members, service = hunt_group(proxy, 2)
    (m1, p1), (m2, p2) = members
    own = proxy.phone(m1, p1, "answer")
    colleague = proxy.phone(m2, p2, "answer")
    call = proxy.call(m1, p1, service)
    assert call.proc.returncode == 0, explain(call, own.uas, colleague.uas, proxy.logs())
    assert own.invites() == [], "the caller's own phone rang from its own hunt group"
    assert len(colleague.invites()) == 1


def test_ringall_member_calling_the_group_is_not_rung(proxy):
    (a, pa), (b, pb) = proxy.subscriber(), proxy.subscriber()
    _name, number = ringall(proxy, [a, b])
    own = proxy.phone(a, pa, "answer")
    colleague = proxy.phone(b, pb, "answer")
    call = proxy.call(a, pa, number)
    assert call.proc.returncode == 0, explain(call, own.uas, colleague.uas, proxy.logs())
    assert own.invites() == [], "the caller's own phone rang from its own ring-all group"
    assert len(colleague.invites()) == 1


def test_only_member_calling_its_group_gets_480_without_ringing(proxy):
    (a, pa), = [proxy.subscriber()]
    _name, number = ringall(proxy, [a])
    own = proxy.phone(a, pa, "answer")
    call = proxy.call(a, pa, number, expect=480)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert own.invites() == []


@pytest.mark.parametrize("suffix", ["T", "h", "c1"])
def test_service_numbers_refuse_suffixes_like_every_group(proxy, suffix):
    members, service = hunt_group(proxy, 2)
    (m1, p1), (m2, p2) = members
    phone = proxy.phone(m2, p2, "answer")
    caller, cpw = proxy.subscriber()          # has no caller IDs: still 484, never 403
    call = proxy.call(caller, cpw, service + suffix, expect=484)
    assert call.proc.returncode == 0, explain(call, proxy.logs())
    assert "do not apply to group and queue numbers" in call.received("SIP/2.0 484")[0]
    assert phone.invites() == []
