"""The callback extension's database access for the media service (psycopg async through
media/store.py's connection): accounts, password failures and lock-out, rates, credit and
charges. Every query is parameterised; the credit is charged in one UPDATE."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kemi.core.callback import Policy

MAX_FAILURES = 5          # wrong passwords in a row (across calls) before the account locks
LOCK_SECONDS = 900


@dataclass(frozen=True)
class Account:
    policy: Policy
    password_hash: str | None
    caller_hashes: dict[str, str | None]
    credit: Decimal


async def account(store, number: str) -> Account | None:
    row = await store.query(
        "SELECT mode, fixed_number, trigger_seconds, dial_seconds, password_hash, per_id_password, credit_query, "
        "out_sound, coalesce(locked_until > now(), false), credit FROM callback_account WHERE number = %s",
        (number,), "one")
    if row is None:
        return None
    callers = await store.query("SELECT caller, password_hash FROM callback_caller WHERE account = %s", (number,))
    hashes = {c: h for c, h in callers}
    mode, fixed, trigger, dial, pw, per_id, query, sound, locked, credit = row
    policy = Policy(number, mode, tuple(sorted(hashes)), fixed, trigger, dial, pw is not None, per_id, query,
                    sound, locked)
    return Account(policy, pw, hashes, credit)


async def password_failed(store, number: str) -> bool:
    """Count a wrong password; True when the account is now locked."""
    row = await store.query(
        "UPDATE callback_account SET failed_passwords = failed_passwords + 1, "
        "locked_until = CASE WHEN failed_passwords + 1 >= %s THEN now() + make_interval(secs => %s) "
        "ELSE locked_until END WHERE number = %s RETURNING coalesce(locked_until > now(), false)",
        (MAX_FAILURES, LOCK_SECONDS, number), "one")
    return bool(row and row[0])


async def password_ok(store, number: str) -> None:
    await store.query("UPDATE callback_account SET failed_passwords = 0 WHERE number = %s", (number,), "none")


async def rates(store) -> dict[str, Decimal]:
    return {p: r for p, r in await store.query("SELECT prefix, per_minute FROM callback_rate")}


async def credit(store, number: str) -> Decimal:
    row = await store.query("SELECT credit FROM callback_account WHERE number = %s", (number,), "one")
    return row[0] if row else Decimal(0)


async def charge(store, number: str, call_id: str, dialled: str, seconds: float, cost: Decimal) -> Decimal:
    """Take the cost off the credit (never below zero) and keep the charge; the new credit."""
    row = await store.query(
        "WITH c AS (UPDATE callback_account SET credit = greatest(credit - %s, 0) WHERE number = %s RETURNING credit) "
        "INSERT INTO callback_charge (account, call_id, dialled, seconds, cost) "
        "SELECT %s, %s, %s, %s, %s FROM c RETURNING (SELECT credit FROM c)",
        (cost, number, number, call_id, dialled, round(seconds, 3), cost), "one")
    return row[0] if row else Decimal(0)
