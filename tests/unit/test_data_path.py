"""Scale (issue 11): the subscriber encoding in shared memory, the worker-side mapping over
it, and the per-snapshot indexes (trunk by source, routes by prefix, groups of a member),
checked against the straightforward scans they replace."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi import names, subscriber_codec, trunks
from kemi.directory import (Directory, HuntGroup, HuntMember, Queue, QueueAgent, RingAllGroup, Subscriber, Trunk,
                            TrunkRoute)
from kemi.subscribers import SharedSubscribers

HA1 = "0123456789abcdef0123456789abcdef"

numbers = st.from_regex(r"[0-9]{2,12}", fullmatch=True)
texts = st.one_of(st.none(), st.text(max_size=40))
subscriber_values = st.builds(Subscriber, numbers, st.just(HA1), st.booleans(), texts, texts,
                              st.one_of(st.none(), numbers), st.booleans(), st.booleans(),
                              st.lists(numbers, max_size=5).map(tuple))


@given(subscriber_values)
def test_encoding_round_trips(sub):
    assert names.decode_subscriber(sub.number, names.encode_subscriber(sub)) == sub


def test_the_sql_view_encoding_is_read():
    # what json_build_array(...)::text in sql/012 produces: spaces after commas, CHAR(32)
    value = f'["{HA1}", true, "Alice \\"A\\"", null, "4930111", false, true, ["4930111", "4930222"]]'
    assert names.decode_subscriber("1001", value) == Subscriber(
        "1001", HA1, True, 'Alice "A"', None, "4930111", False, True, ("4930111", "4930222"))


@pytest.mark.parametrize("value, why", [
    ("", "empty"), ("not json", "not JSON"), ("{}", "list"), ("[1, 2]", "list of 8"),
    (json.dumps(["short", True, None, None, None, False, False, []]), "ha1"),
    (json.dumps([HA1, "yes", None, None, None, False, False, []]), "booleans"),
    (json.dumps([HA1, True, 5, None, None, False, False, []]), "display_name"),
    (json.dumps([HA1, True, None, None, None, False, False, [1]]), "caller_ids"),
])
def test_unreadable_values_are_no_subscriber(value, why):
    assert names.decode_subscriber("1001", value) is None
    if value:
        with pytest.raises(subscriber_codec.SubscriberDecodeError, match=why.split()[0] if why != "empty" else ""):
            subscriber_codec.decode_strict("1001", value)


def test_shared_mapping_reads_one_key_per_lookup_and_never_lists():
    alice = Subscriber("1001", HA1, display_name="Alice")
    table = {"1001": names.encode_subscriber(alice), "1002": "garbage"}
    asked, bad = [], []
    subs = SharedSubscribers(lambda n: asked.append(n) or table.get(n), bad.append)
    assert subs.get("1001") == alice and subs["1001"] == alice and "1001" in subs
    assert subs.get("1003") is None and "1003" not in subs
    assert subs.get("1002") is None and bad == ["1002"]      # unreadable: unknown, reported
    with pytest.raises(KeyError):
        subs["1003"]
    with pytest.raises(TypeError):
        list(subs)
    assert asked.count("1001") == 3
    directory = Directory(subscribers=subs)
    assert directory.active_subscriber("1001") == alice and directory.is_local("1001")
    assert directory.active_subscriber("") is None and not directory.is_local("1003")


def test_an_inactive_subscriber_is_local_but_not_active():
    subs = SharedSubscribers({"1001": names.encode_subscriber(Subscriber("1001", HA1, active=False))}.get)
    directory = Directory(subscribers=subs)
    assert directory.active_subscriber("1001") is None and directory.is_local("1001")


# ---------------------------------------------------------------- indexes vs scans

def scan_trunk(directory, ip, port):
    for trunk in directory.trunks.values():
        if trunk.active and any(ip == a and (p is None or p == port) for a, p in trunk.addresses):
            return trunk
    return None


def scan_routes(directory, number):
    return sorted((r for r in directory.routes if number.startswith(r.prefix)),
                  key=lambda r: (-len(r.prefix), r.priority, r.trunk_id))


def scan_groups(directory, number):
    out = set()
    member = directory.members.get(number)
    if member and member.group_id in directory.groups:
        out.add(("hunt", directory.groups[member.group_id].name))
    out.update(("ringall", g.name) for g in directory.ringall.values() if any(n == number for n, _ in g.members))
    out.update(("queue", q.name) for q in directory.queues.values() if any(a.number == number for a in q.agents))
    return out


ips = st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.7"])
ports = st.one_of(st.none(), st.sampled_from([5060, 5080]))
trunk_lists = st.lists(st.tuples(st.booleans(), st.lists(st.tuples(ips, ports), max_size=3, unique=True)),
                       max_size=5)
digits = st.text("0123", max_size=4)


@settings(max_examples=200)
@given(trunk_lists, st.lists(st.tuples(digits, st.integers(1, 5), st.integers(0, 3)), max_size=12),
       ips, st.sampled_from([5060, 5080, 5070]), st.lists(digits, min_size=1, max_size=5))
def test_trunk_and_route_indexes_agree_with_scans(trunk_rows, route_rows, ip, port, dialled):
    tr = {i + 1: Trunk(i + 1, f"t{i + 1}", active=active, addresses=tuple(addresses))
          for i, (active, addresses) in enumerate(trunk_rows)}
    routes = tuple({(p, t): TrunkRoute(p, t, prio) for p, t, prio in route_rows}.values())   # (prefix, trunk) unique
    directory = Directory(trunks=tr, routes=routes)
    assert trunks.trunk_for_source(directory, ip, port) == scan_trunk(directory, ip, port)
    for number in dialled:
        assert directory.routes_for(number) == scan_routes(directory, number)


def test_outbound_trunks_longest_prefix_then_priority():
    tr = {1: Trunk(1, "a", addresses=(("192.0.2.1", None),)), 2: Trunk(2, "b", addresses=(("192.0.2.2", 5060),)),
          3: Trunk(3, "c", active=False)}
    directory = Directory(trunks=tr, routes=(TrunkRoute("", 1), TrunkRoute("49", 2, 1), TrunkRoute("49", 1, 0),
                                             TrunkRoute("4930", 3)))
    assert [t.id for t in trunks.outbound_trunks(directory, "493012")] == [1, 2]   # 4930 -> inactive trunk 3
    assert [t.id for t in trunks.outbound_trunks(directory, "33")] == [1]
    assert trunks.trunk_for_source(directory, "192.0.2.2", 5060).id == 2
    assert trunks.trunk_for_source(directory, "192.0.2.2", 5061) is None


def test_groups_of_a_member_from_the_index():
    directory = Directory(
        groups={1: HuntGroup(1, "sales")}, members={"1001": HuntMember("1001", 1)},
        ringall={"800": RingAllGroup(7, "all", "800", members=(("1001", True), ("1002", False)))},
        queues={"900": Queue(3, "support", "900", agents=(QueueAgent("1002"),))})
    for number in ("1001", "1002", "1003"):
        assert directory.groups_of(number) == scan_groups(directory, number)
    assert directory.groups_of("1001") == {("hunt", "sales"), ("ringall", "all")}
