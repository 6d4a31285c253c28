"""Group provisioning for the phone tests, with names unique per test run (the helpers of
test_hunt/test_groups_queues count per module, and a second import of those modules under
another name would count again from 1)."""
from __future__ import annotations

import uuid


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def ringall(proxy, members) -> tuple[str, str]:
    name, number = unique("phra"), f"7{members[0][1:]}"
    proxy.kemictl("ringall", "add", name, number)
    proxy.kemictl("ringall", "members", name, *members)
    return name, number


def hunt_group(proxy, size: int, ring_timeout: int = 2):
    """`size` new members chained in order, one service number starting at the first."""
    members = [proxy.subscriber() for _ in range(size)]
    service = f"9{members[0][0][1:]}0"
    lines = ["Sip number\tNext Number\tService number\tStart number"]
    for i, (number, _pw) in enumerate(members):
        nxt = members[i + 1][0] if i + 1 < size else "0000"
        first = (service, members[0][0]) if i == 0 else ("1", "1")
        lines.append(f"{number}\t{nxt}\t{first[0]}\t{first[1]}")
    proxy.kemictl("hunt", "import", unique("phg"), "-", "--ring-timeout", str(ring_timeout),
                  stdin="\n".join(lines) + "\n")
    return members, service
