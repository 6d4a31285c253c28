"""The scale benchmark's pure helpers (bench/procstat.py, bench/scale.py): /proc and kamcmd parsing."""
from bench import procstat
from bench.scale import ProbeResult, fmt_ms

STAT = "1234 (kamailio (udp) x) S 1000 1000 1000 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1 1 " + "0 " * 30


def test_parse_stat_handles_spaces_and_parentheses_in_the_name():
    s = procstat.parse_stat(STAT)
    assert (s.pid, s.ppid, s.pgid, s.cpu_ticks) == (1234, 1000, 1000, 300)


def test_parse_smaps_rollup_reads_kb_fields():
    text = ("55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  120 kB\nPss:   80 kB\n"
            "Private_Clean:  10 kB\nPrivate_Dirty:  30 kB\n")
    m = procstat.parse_smaps_rollup(text)
    assert m == {"Rss": 120, "Pss": 80, "Private_Clean": 10, "Private_Dirty": 30}


PSX = """{
\tIDX: 0
\tPID: 100
\tDSC: main process - attendant
}
{
\tIDX: 1
\tPID: 101
\tDSC: udp receiver child=0 sock=127.0.0.1:5060
}
{
\tIDX: 2
\tPID: 102
\tDSC: udp receiver child=1 sock=127.0.0.1:5060
}
{
\tIDX: 3
\tPID: 103
\tDSC: tcp receiver (generic) child=0
}
"""


def test_parse_psx_and_the_udp_workers():
    psx = procstat.parse_psx(PSX)
    assert [pid for pid, _ in psx] == [100, 101, 102, 103]
    assert procstat.udp_workers(psx) == [101, 102]
    assert procstat.parse_psx("") == []


def test_summary():
    assert procstat.summary([]) == (0, 0, 0)
    assert procstat.summary([2.0, 4.0, 9.0]) == (2.0, 5.0, 9.0)


def test_lost_probes_count_as_slower_than_any_answer():
    r = ProbeResult(sent=100, latencies_ms=[1.0] * 98)
    assert r.lost == 2
    assert r.quantile(50) == 1.0
    assert r.quantile(99) == float("inf")
    assert fmt_ms(r.quantile(99)) == "lost"
    assert ProbeResult(sent=100, latencies_ms=[1.0] * 100).quantile(99) == 1.0
    assert ProbeResult(sent=0, latencies_ms=[]).quantile(99) is None
