"""media/mixer.py: who hears whom (conference, listen, whisper, barge), N-1 mixing as total
minus own, clipping-safe int16, per-participant mute. Tables plus property tests."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from media import mixer
from media.mixer import AGENT, CUSTOMER, SUPERVISOR

A, C, S = AGENT, CUSTOMER, SUPERVISOR
ROLES = (A, C, S)


def hears_table(mode: str, roles=ROLES) -> set[tuple[str, str]]:
    h = mixer.supervision_matrix(mode, roles)
    return {(roles[i], roles[j]) for i in range(len(roles)) for j in range(len(roles)) if h[i, j]}


@pytest.mark.parametrize("mode,expected", [
    # (listener, speaker) pairs that hear each other
    ("conference", {(A, C), (A, S), (C, A), (C, S), (S, A), (S, C)}),
    ("barge", {(A, C), (A, S), (C, A), (C, S), (S, A), (S, C)}),
    ("listen", {(A, C), (C, A), (S, A), (S, C)}),                  # nobody hears the supervisor
    ("whisper", {(A, C), (A, S), (C, A), (S, A), (S, C)}),         # the customer does not hear S
])
def test_who_hears_whom(mode, expected):
    assert hears_table(mode) == expected


def test_order_of_roles_does_not_matter():
    for mode in ("listen", "whisper", "barge"):
        assert hears_table(mode, (S, C, A)) == hears_table(mode, ROLES)


def test_two_supervisors_whispering_hear_each_other_customer_hears_neither():
    roles = (A, C, S, S)
    h = mixer.supervision_matrix("whisper", roles)
    assert h[0, 2] and h[0, 3] and h[2, 3] and h[3, 2]
    assert not h[1, 2] and not h[1, 3]


def test_unknown_mode_refused():
    with pytest.raises(ValueError):
        mixer.supervision_matrix("shout", ROLES)
    with pytest.raises(ValueError):
        mixer.Matrix("shout")


def frames_of(*values: int) -> np.ndarray:
    return np.array([[v] * mixer.FRAME for v in values], dtype=np.int16)


def test_conference_is_total_minus_own():
    out = mixer.mix(frames_of(100, 200, 400), mixer.conference_matrix(3))
    assert out[:, 0].tolist() == [600, 500, 300]
    assert out.dtype == np.int16 and out.shape == (3, mixer.FRAME)


def test_whisper_mix_values():
    out = mixer.mix(frames_of(1, 10, 100), mixer.supervision_matrix("whisper", ROLES))
    assert out[:, 0].tolist() == [110, 1, 11]    # agent: C+S; customer: A only; supervisor: A+C


def test_listen_mix_values():
    out = mixer.mix(frames_of(1, 10, 100), mixer.supervision_matrix("listen", ROLES))
    assert out[:, 0].tolist() == [10, 1, 11]


def test_clipping_instead_of_wrap_around():
    out = mixer.mix(frames_of(30000, 30000, 30000), mixer.conference_matrix(3))
    assert out[:, 0].tolist() == [32767] * 3
    out = mixer.mix(frames_of(-30000, -30000, -30000), mixer.conference_matrix(3))
    assert out[:, 0].tolist() == [-32768] * 3
    out = mixer.mix(frames_of(-32768, -32768, 0), mixer.supervision_matrix("whisper", ROLES))
    assert out[:, 0].tolist() == [-32768, -32768, -32768]


def test_mute_means_nobody_hears_you_but_you_still_hear():
    muted = np.array([True, False, False])
    out = mixer.mix(frames_of(100, 200, 400), mixer.conference_matrix(3), muted)
    assert out[:, 0].tolist() == [600, 400, 200]


def test_extra_source_is_heard_by_everyone_and_clipped():
    extra = np.full(mixer.FRAME, 32000, dtype=np.int16)
    out = mixer.mix(frames_of(0, 1000), mixer.conference_matrix(2), extra=extra)
    assert out[:, 0].tolist() == [32767, 32000]


def test_shape_mismatch_refused():
    with pytest.raises(ValueError):
        mixer.mix(frames_of(1, 2), mixer.conference_matrix(3))


def test_single_and_empty_room():
    assert mixer.mix(frames_of(500), mixer.conference_matrix(1))[0, 0] == 0   # alone: hears nobody
    assert mixer.mix(np.zeros((0, mixer.FRAME), np.int16), mixer.conference_matrix(0)).shape == (0, mixer.FRAME)


def test_matrix_object_tracks_joins_leaves_mode_and_mute():
    m = mixer.Matrix("whisper")
    m.add("a", A)
    m.add("c", C)
    m.add("s", S)
    with pytest.raises(ValueError):
        m.add("a", A)
    assert m.mix(frames_of(1, 10, 100))[:, 0].tolist() == [110, 1, 11]
    m.set_mode("barge")
    assert m.mix(frames_of(1, 10, 100))[:, 0].tolist() == [110, 101, 11]
    m.set_muted("s", True)
    assert m.mix(frames_of(1, 10, 100))[:, 0].tolist() == [10, 1, 11]
    m.remove("c")
    assert [p.key for p in m.people] == ["a", "s"] and m.muted.tolist() == [False, True]
    assert m.mix(frames_of(1, 100))[:, 0].tolist() == [0, 1]
    with pytest.raises(KeyError):
        m.index("c")


def test_mix_all_is_the_room_recording():
    assert mixer.mix_all(frames_of(100, 200, 30000))[0] == 30300
    assert mixer.mix_all(frames_of(20000, 20000))[0] == 32767
    assert mixer.mix_all(frames_of(100, 200), np.array([False, True]))[0] == 100


samples = st.integers(-32768, 32767)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.lists(samples, min_size=4, max_size=4), min_size=n, max_size=n),
    st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n))))
def test_any_matrix_equals_the_reference_sum(case):
    """For any matrix, frames and mutes: out[i] = clip(sum of unmuted j that i hears)."""
    values, hears, muted = case
    frames = np.array(values, dtype=np.int16)
    h = np.array(hears, dtype=bool)
    m = np.array(muted, dtype=bool)
    out = mixer.mix(frames, h, m)
    for i in range(len(values)):
        for k in range(4):
            ref = sum(values[j][k] for j in range(len(values)) if h[i, j] and not m[j])
            assert out[i, k] == max(-32768, min(32767, ref))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 25).flatmap(lambda n: st.lists(st.lists(samples, min_size=3, max_size=3),
                                                     min_size=n, max_size=n)))
def test_conference_fast_path_equals_the_general_path(values):
    frames = np.array(values, dtype=np.int16)
    h = mixer.conference_matrix(len(values))
    fast = mixer.mix(frames, h)
    general = mixer.clip16(h.astype(np.int32) @ frames.astype(np.int32))
    assert np.array_equal(fast, general)
    # nobody hears themselves: a participant's own signal is not in their mix
    for i in range(len(values)):
        others = [v for j, v in enumerate(values) if j != i]
        assert fast[i].tolist() == [max(-32768, min(32767, sum(col))) for col in zip(*others)] if others \
            else fast[i].tolist() == [0, 0, 0]
