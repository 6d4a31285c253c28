"""kemictl flow: import (validated, one transaction), export, list, remove and trace against
the real database of the test stack; attacks on the flow file."""
from __future__ import annotations

import itertools
import json

import yaml

_ids = itertools.count(1)


def setup_numbers(proxy):
    """A queue and a hunt group to point flow nodes at."""
    (a, _), (b, _) = proxy.subscriber(), proxy.subscriber()
    qname, qnum = f"kq{next(_ids)}", f"6{a[1:]}"
    proxy.kemictl("queue", "add", qname, qnum, "--max-wait", "5")
    proxy.kemictl("queue", "agents", qname, a)
    hname, service = f"kh{next(_ids)}", f"8{b[1:]}"
    proxy.kemictl("hunt", "import", hname, "-", stdin=f"{b}\t0000\t{service}\t{b}\n")
    return qnum, service, a


def office_flow(qnum, service):
    return {
        "name": "sales-line", "timezone": "Europe/Riga", "start": "hours",
        "nodes": {
            "hours": {"type": "time", "hours": {"mon-fri": ["09:00-17:00"]},
                      "exceptions": [{"date": "2026-12-25"}],
                      "next": {"open": "route", "closed": "closed", "holiday": "holiday"}},
            "route": {"type": "http_route", "url": "http://127.0.0.1:9/route", "next": {"3": "orders", "error": "orders"}},
            "orders": {"type": "queue", "number": qnum, "next": {"timeout": "sales"}},
            "sales": {"type": "hunt", "number": service},
            "closed": {"type": "reject", "code": 480, "reason": "Closed - open Mon-Fri 9-17"},
            "holiday": {"type": "reject", "code": 480, "reason": "Closed for the holidays"},
        }}


def flow_number():
    return f"49300{next(_ids):05d}"


def test_import_export_round_trip_and_list(proxy, tmp_path):
    qnum, service, _ = setup_numbers(proxy)
    number = flow_number()
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(office_flow(qnum, service)))

    out = proxy.kemictl("flow", "import", number, str(path))
    assert "version 1" in out.stdout
    exported = yaml.safe_load(proxy.kemictl("flow", "export", number).stdout)
    assert exported == office_flow(qnum, service)
    as_json = json.loads(proxy.kemictl("flow", "export", number, "--json").stdout)
    assert as_json == exported
    (tmp_path / "flow.json").write_text(json.dumps(as_json))
    assert "version 2" in proxy.kemictl("flow", "import", number, str(tmp_path / "flow.json")).stdout
    listing = proxy.kemictl("flow", "list").stdout
    assert any(line.split()[:3] == [number, "sales-line", "2"] for line in listing.splitlines()), listing

    # one number, one meaning: a flow-only number cannot become a SIP number
    refused = proxy.kemictl("subscriber", "add", number, "--password", "secret-pass-1", check=False)
    assert refused.returncode == 2 and "call flow number" in refused.stderr

    proxy.kemictl("flow", "remove", number)
    gone = proxy.kemictl("flow", "export", number, check=False)
    assert gone.returncode == 2 and f"{number} has no flow" in gone.stderr


def test_invalid_flow_names_node_and_field_and_writes_nothing(proxy, tmp_path):
    qnum, service, agent = setup_numbers(proxy)
    number = flow_number()
    bad = office_flow(qnum, service)
    bad["nodes"]["orders"]["number"] = agent                  # a SIP number, not a queue
    bad["nodes"]["route"]["url"] = "ftp://127.0.0.1/route"    # not http(s)
    bad["nodes"]["hours"]["hours"]["sat"] = ["18:00-10:00"]    # ends before it starts
    bad["nodes"]["sales"]["next"] = {"exhausted": "hours"}    # a loop
    bad["nodes"]["spare"] = {"type": "reject", "code": 486}   # unreachable
    bad["nodes"]["odd"] = {"type": "teleport"}
    bad["timezone"] = "Mars/Olympus"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))

    out = proxy.kemictl("flow", "import", number, str(path), check=False)

    assert out.returncode == 2, out
    for expected in ("field timezone:", "node orders field number:", "is not a queue",
                     "node route field url:", "only http and https", "node hours field hours.sat[0]:",
                     "cycle", "node spare field id: unreachable", "node odd field type: unknown type 'teleport'"):
        assert expected in out.stderr, (expected, out.stderr)
    assert proxy.kemictl("flow", "export", number, check=False).returncode == 2, "nothing may be written"


def test_attacks_on_the_flow_file(proxy, tmp_path):
    number = flow_number()
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
                    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nstart: x\nnodes: {x: {type: reject, code: 480, reason: *c}}\n')
    out = proxy.kemictl("flow", "import", number, str(bomb), check=False)
    assert out.returncode == 2 and "aliases" in out.stderr
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"start": "a", "nodes": {"a": {"type": "reject", "code": 480, "reason": "x" * 300000}}}))
    out = proxy.kemictl("flow", "import", number, str(big), check=False)
    assert out.returncode == 2 and "larger than" in out.stderr
    tag = tmp_path / "tag.yaml"
    tag.write_text(yaml.safe_dump({"start": "a", "nodes": {"a": {"type": "caller", "display_tag": "x\r\nVia: evil",
                                                                "next": "b"}, "b": {"type": "reject", "code": 480}}}))
    out = proxy.kemictl("flow", "import", number, str(tag), check=False)
    assert out.returncode == 2 and "node a field display_tag" in out.stderr
    for bad_number in ("12;drop", "1"):
        out = proxy.kemictl("flow", "import", bad_number, str(tag), check=False)
        assert out.returncode == 2 and "field 'number'" in out.stderr
    notflow = tmp_path / "list.yaml"
    notflow.write_text("- just\n- a list\n")
    out = proxy.kemictl("flow", "import", number, str(notflow), check=False)
    assert out.returncode == 2 and "flow: must be a mapping" in out.stderr


def test_trace_explains_the_path(proxy, tmp_path):
    qnum, service, _ = setup_numbers(proxy)
    number = flow_number()
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(office_flow(qnum, service)))
    proxy.kemictl("flow", "import", number, str(path))

    closed = proxy.kemictl("flow", "trace", number, "--from", "0301234567", "--at", "2026-12-02 18:30").stdout
    assert "hours (time) -> closed: Wed 2026-12-02 18:30 Europe/Riga: outside 09:00-17:00" in closed, closed
    assert "=> the caller gets 480 Closed - open Mon-Fri 9-17" in closed

    holiday = proxy.kemictl("flow", "trace", number, "--at", "2026-12-25 10:00").stdout
    assert "-> holiday" in holiday and "480 Closed for the holidays" in holiday, holiday

    open_busy = proxy.kemictl("flow", "trace", number, "--at", "2026-12-02 10:00", "--http-answer", "3").stdout
    lines = open_busy.splitlines()
    assert any("route (http_route) -> 3" in line for line in lines), open_busy
    assert any(f"ring queue {qnum}" in line for line in lines)
    assert any("orders (queue) -> timeout" in line for line in lines)
    assert any(f"ring hunt {service}" in line for line in lines)
    assert "Temporarily Unavailable - no member answered" in open_busy

    answered = proxy.kemictl("flow", "trace", number, "--at", "2026-12-02 10:00", "--agents-free", "2").stdout
    assert "route (http_route) -> error" in answered and "=> answered" in answered, answered

    out = proxy.kemictl("flow", "trace", number, "--at", "tomorrow", check=False)
    assert out.returncode == 2 and "--at" in out.stderr
    out = proxy.kemictl("flow", "trace", "4939999999", check=False)
    assert out.returncode == 2 and "has no flow" in out.stderr
