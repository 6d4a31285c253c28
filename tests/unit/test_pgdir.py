"""tools/pgdir.py: where a checkout's cluster lives, and the one-line reasons for failures."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.pgdir import cluster_dir, explain

BASE = Path("/var/lib/kemi")


@pytest.mark.parametrize("var_dir, name", [
    ("/root/kemi/var", "kemi"),
    ("/tmp/tmp.Xy12/checkout/var", "checkout"),
    ("/srv/a b/var", "a_b"),
    ("/tmp/kemi-e2e-abc", "kemi-e2e-abc"),
    ("/var", "root"),
])
def test_cluster_dir_is_named_after_the_checkout(var_dir, name):
    where = cluster_dir(var_dir)
    assert where.parent == BASE
    assert where.name.rsplit("-", 1)[0] == name
    assert len(where.name.rsplit("-", 1)[1]) == 12


def test_cluster_dir_differs_per_checkout_and_is_stable():
    assert cluster_dir("/root/a/kemi/var") != cluster_dir("/root/b/kemi/var")
    assert cluster_dir("/root/a/kemi/var") == cluster_dir("/root/a/kemi/var/")
    assert cluster_dir("/x/var", override="/data/pg") == Path("/data/pg")


D = Path("/var/lib/kemi/k-1")


@pytest.mark.parametrize("output, why, todo", [
    ('LOG:  could not bind IPv4 address "127.0.0.1": Address already in use', "port is already taken", "KEMI_PG_PORT"),
    ("initdb: error: could not access directory \"/root/k/var/pg/data\": Permission denied",
     "cannot reach /var/lib/kemi/k-1", "chmod o+x"),
    ("could not write to file: No space left on device", "disk is full", "free space"),
    ("runuser: user postgres does not exist", "'postgres' system user does not exist", "make setup"),
    ("FATAL:  database files are incompatible with server", "damaged or from another", "make clean"),
    ('FATAL:  lock file "postmaster.pid" already exists', "another PostgreSQL owns", "make clean"),
    ("something nobody foresaw\n\n", "something nobody foresaw", "postgres.log"),
    ("", "no output", "make clean"),
])
def test_explain_says_why_and_what_to_do_in_one_line(output, why, todo):
    line = explain(output, D)
    assert "\n" not in line
    assert why in line and todo in line
