"""The demo data set: Example 1 of seed 000, loaded by `make run` into an empty database.

Passwords are generated and printed once; only their HA1 is stored.

The seed's table lists 77721406 as the next number of 77721405 but never as a SIP number of
the group, and 11121400 as a sixth member that no service number reaches. Both are kept as
printed: 77721406 is provisioned as a plain subscriber, so the chain 77721405 -> 77721406 ends
there, and 11121400 can be called directly.
"""
from __future__ import annotations

import psycopg

from kemi.config import Settings
from provision import store
from provision.cli import generated_password, table

EXAMPLE_1 = """\
Sip number\tNext Number\tService number\tStart number
77721401\t77721402\t8008001\t77721401
77721402\t77721403\t1\t1
77721403\t77721404\t8008002\t77721401
77721404\t77721405\t1\t1
77721405\t77721406\t8008003\t77721403
11121400\t00000\t1\t1
"""
NUMBERS = ["77721401", "77721402", "77721403", "77721404", "77721405", "77721406", "11121400"]


def load_if_empty(settings: Settings) -> bool:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM subscriber LIMIT 1").fetchone():
            return False
        passwords = {n: generated_password() for n in NUMBERS}
        with conn.transaction():
            for number, password in passwords.items():
                store.add_subscriber(conn, number, password, settings.realm, f"Demo {number[-2:]}")
            store.import_group(conn, "example1", EXAMPLE_1)
    print("Demo data loaded (seed 000, Example 1). Passwords are shown this once:\n")
    print(table(sorted(passwords.items()), ("SIP number", "password")))
    print(f"\nRegister phones to sip:{settings.sip_address}:{settings.sip_port} as NUMBER@{settings.sip_address} "
          f"(auth user NUMBER, realm {settings.realm!r}).\nService numbers: 8008001 and 8008002 start at "
          "77721401, 8008003 at 77721403; dial NUMBERT to ring one member only.\n")
    return True
