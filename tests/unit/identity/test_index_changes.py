"""What indexing a chunk of members changes in the index (``index_changes``): a member
indexed again writes only what changed, and a key it no longer has is removed by its pair."""

from __future__ import annotations

import orjson

from payerbridge.identity.indexing import index_changes
from payerbridge.identity.model import IndexEntry


def _entry(member: str, record: str, keys: list[str]) -> IndexEntry:
    return IndexEntry(member, record, orjson.dumps(sorted(keys)).decode())


def _stored(record: str, keys: list[str]) -> tuple[str, str]:
    return record, orjson.dumps(sorted(keys)).decode()


def test_a_member_new_to_the_index_is_fresh_and_its_keys_are_those_on_its_record() -> None:
    changes = index_changes(["a"], [_entry("a", "r", ["k1", "k2"])], {})
    assert [e.member_id for e in changes.write] == ["a"]
    assert changes.fresh == ["a"]
    assert (changes.replaced, changes.removed, changes.added) == ([], [], [])


def test_an_unchanged_member_is_left_alone() -> None:
    stored = {"a": _stored("r", ["k1", "k2"])}
    changes = index_changes(["a"], [_entry("a", "r", ["k2", "k1"])], stored)
    assert (changes.write, changes.replaced, changes.fresh) == ([], [], [])
    assert (changes.removed, changes.added) == ([], [])


def test_a_changed_member_loses_only_the_keys_it_no_longer_has_and_gains_the_new() -> None:
    stored = {"a": _stored("before", ["k1", "k2", "k3"])}
    changes = index_changes(["a"], [_entry("a", "after", ["k2", "k3", "k4"])], stored)
    assert [e.record for e in changes.write] == ["after"]
    assert changes.replaced == ["a"] and changes.fresh == []
    assert changes.removed == [("k1", "a")]
    assert changes.added == [("k4", "a")]


def test_a_record_changed_under_the_same_keys_is_rewritten_without_key_writes() -> None:
    stored = {"a": _stored("before", ["k1"])}
    changes = index_changes(["a"], [_entry("a", "after", ["k1"])], stored)
    assert changes.replaced == ["a"] and [e.member_id for e in changes.write] == ["a"]
    assert (changes.removed, changes.added) == ([], [])


def test_a_member_whose_patient_is_gone_leaves_the_index_with_all_its_keys() -> None:
    stored = {"gone": _stored("r", ["k1", "k2"]), "other": _stored("r", ["k9"])}
    changes = index_changes(["gone"], [], stored)
    assert changes.replaced == ["gone"] and changes.write == []
    assert sorted(changes.removed) == [("k1", "gone"), ("k2", "gone")]


def test_members_of_another_chunk_are_not_touched() -> None:
    # ``stored`` may already hold the members of the chunks read ahead.
    stored = {"later": _stored("r", ["k1"])}
    changes = index_changes(["a"], [_entry("a", "r", ["k1"])], stored)
    assert changes.replaced == [] and changes.removed == []
    assert changes.fresh == ["a"]
