"""Comparing lumos's JSON events with the truth the test programs print (truth/main.go's
tagged values), shared by the trace tests of every kind of program."""

from __future__ import annotations

import struct
from collections import defaultdict

import pytest

STRLEN = 32  # the --strlen the truth tests trace with


def pair_calls(events: list[dict]) -> dict[str, list[tuple[dict, dict | None]]]:
    """{func: [(call event, its return event)]} in call order; returns pair with the
    latest open call of the same function on the same goroutine."""
    out: dict[str, list] = defaultdict(list)
    open_: dict[tuple[int, str], list[int]] = defaultdict(list)
    for ev in events:
        key = (ev["goid"], ev["func"])
        if ev["event"] == "call":
            open_[key].append(len(out[ev["func"]]))
            out[ev["func"]].append([ev, None])
        else:
            assert open_[key], f"a return without a call: {ev}"
            out[ev["func"]][open_[key].pop()][1] = ev
    return {f: [tuple(p) for p in calls] for f, calls in out.items()}


def check(what: str, truth: list, got, may_be_null: bool) -> None:
    """One value: truth is the program's tagged value (see truth/main.go)."""
    tag = truth[0]
    if got is None:
        assert may_be_null, f"{what}: null, but lumos does not say it is unreadable"
        assert tag in ("f32", "f64"), f"{what}: a {tag} value must always be readable"
        return
    if tag == "ws" and isinstance(got, dict) and "elems" in got:  # a slice with elements
        assert [got["ptr"], got["len"], got["cap"]] == truth[1], f"{what}: {got}"
        assert len(got["elems"]) == min(truth[1][1], 8), f"{what}: {got}"  # --max-elems 8
    elif tag == "ws" and isinstance(got, dict):  # an interface decoded by type: its words
        assert got["words"] == truth[1] and (got["type"] or not truth[1][0]), f"{what}: {got}"
    elif tag == "i" or tag == "w" or tag == "ws":
        assert got == truth[1], f"{what}: {got!r} != {truth[1]!r}"
    elif tag == "b":
        assert got is truth[1], f"{what}: {got!r} != {truth[1]!r}"
    elif tag == "f32":
        assert struct.unpack("<I", struct.pack("<f", got))[0] == truth[1], f"{what}: {got}"
    elif tag == "f64":
        assert struct.unpack("<Q", struct.pack("<d", got))[0] == truth[1], f"{what}: {got}"
    elif tag == "s":
        check_text(what, bytes.fromhex(truth[1]), truth[2], got)
    else:
        raise AssertionError(f"unknown truth tag {tag}")


def check_text(what: str, data: bytes, length: int, got: dict, strlen: int = STRLEN) -> None:
    """A string as lumos --json shows it: len, the first --strlen bytes ("str" if they
    are UTF-8, else "hex"), "truncated" when cut."""
    assert got["len"] == length, f"{what}: len {got['len']} != {length}"
    shown = got["str"].encode() if "str" in got else bytes.fromhex(got["hex"])
    assert shown == data[:strlen], f"{what}: {shown!r} != {data[:strlen]!r}"
    assert got.get("truncated", False) == (length > strlen), f"{what}: {got}"
    if "hex" in got:  # hex only when the bytes are not UTF-8
        with pytest.raises(UnicodeDecodeError):
            data[:strlen].decode()
