"""RFC 9162 inclusion proofs, and proofs built from the kept subtree roots (pure): the
RFC's worked audit paths by hand, generated trees of every size checked by hypothesis,
and a proof over a large tree that reads a few hundred rows, not the chain."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.audit.chain import (
    MerkleFrontier,
    consistency_proof,
    consistency_ranges,
    hash_leaf,
    is_consistent,
    merkle_tree_hash,
)
from payerbridge.audit.proofs import (
    NODE_LEVELS,
    inclusion_path,
    range_hash,
    verify_inclusion,
)
from tests.unit.audit.test_consistency import LEAVES, ROOT, a, b, c, d, e, f, g, h, i, j, k, l

EXAMPLES = 20_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 200


class Tree:
    """The ``TreeNodes`` port over leaves in memory: the subtree roots kept as the
    checkpoint writer keeps them, some of them lost (``lose``), and the rows read."""

    def __init__(self, leaves: list[str], lose: frozenset[tuple[int, int]] = frozenset()) -> None:
        self._leaves = leaves
        frontier, self._nodes = MerkleFrontier(), {}
        for leaf in leaves:
            for height, index, digest in frontier.add_nodes(leaf):
                if height in NODE_LEVELS and (height, index) not in lose:
                    self._nodes[(height, index)] = digest
        self.reads = 0

    def leaves(self, start: int, end: int) -> list[str]:
        found = self._leaves[start:end]
        self.reads += len(found)
        return found

    def nodes(self, level: int, start: int, end: int) -> dict[int, str]:
        found = {n: self._nodes[(level, n)] for n in range(start, end) if (level, n) in self._nodes}
        self.reads += len(found)
        return found


def _reference_path(index: int, leaves: list[str]) -> list[str]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]) as written, over the leaves."""
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < k:
        return [*_reference_path(index, leaves[:k]), merkle_tree_hash(leaves[k:])]
    return [*_reference_path(index - k, leaves[k:]), merkle_tree_hash(leaves[:k])]


@pytest.mark.parametrize(
    ("index", "path"),
    [(0, [b, h, l]), (3, [c, g, l]), (4, [f, j, k]), (6, [i, k])],
)
def test_the_rfcs_worked_audit_paths(index: int, path: list[str]) -> None:
    tree = Tree(LEAVES)
    assert inclusion_path(tree, index, 7) == path
    assert verify_inclusion(index, 7, LEAVES[index], path, ROOT)
    assert not verify_inclusion(index, 7, LEAVES[(index + 1) % 7], path, ROOT)  # another leaf
    assert not verify_inclusion(index, 4, LEAVES[index], path, ROOT)  # a size of another shape
    assert not verify_inclusion(index, 7, LEAVES[index], path[:-1], ROOT)  # cut short
    assert not verify_inclusion(index, 7, LEAVES[index], [*path, a], ROOT)  # too long
    assert not verify_inclusion(7, 7, LEAVES[index], path, ROOT)  # outside the tree
    assert (d, e) == (LEAVES[3], LEAVES[4])


def _leaves(count: int) -> list[str]:
    return [hash_leaf(n.to_bytes(4, "big")) for n in range(count)]


LEAF_POOL = _leaves(1100)  # past four kept roots at height 8


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.data())
def test_every_leaf_of_every_tree_is_proven_and_nothing_else_is(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, len(LEAF_POOL)))
    index = data.draw(st.integers(0, size - 1))
    leaves = LEAF_POOL[:size]
    lost = data.draw(st.frozensets(st.tuples(st.just(8), st.integers(0, 4))))
    tree = Tree(leaves, lose=lost)  # the proof stands whether a root is kept or not
    path = inclusion_path(tree, index, size)
    root = merkle_tree_hash(leaves)
    assert path == _reference_path(index, leaves)
    assert verify_inclusion(index, size, leaves[index], path, root)
    other = data.draw(st.integers(0, size - 1).filter(lambda n: n != index)) if size > 1 else None
    if other is not None:
        assert not verify_inclusion(other, size, leaves[index], path, root)
        assert not verify_inclusion(index, size, leaves[other], path, root)
    # A size whose path has the same shape proves the same root: the size is held to the
    # signed checkpoint's by the document's check (test_proving.py).
    assert not verify_inclusion(index, size, hash_leaf(b"altered"), path, root)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.data())
def test_consistency_proofs_from_kept_roots_are_the_rfcs(data: st.DataObject) -> None:
    second = data.draw(st.integers(1, len(LEAF_POOL)))
    first = data.draw(st.integers(1, second))
    leaves = LEAF_POOL[:second]
    tree = Tree(leaves)
    proof = [range_hash(tree, s, t) for s, t in consistency_ranges(first, second)]
    assert proof == consistency_proof(first, leaves)
    old, new = merkle_tree_hash(leaves[:first]), merkle_tree_hash(leaves)
    assert is_consistent(first, second, old, new, proof)
    if first < second:
        assert not is_consistent(first, second, new, new, proof)


def test_a_proof_in_a_large_tree_reads_the_kept_roots_not_the_chain() -> None:
    size = 70_001  # a kept root at height 16 and 17 more at height 8
    leaves = _leaves(size)
    root = merkle_tree_hash(leaves)
    tree = Tree(leaves)
    for index in (0, 40_000, 65_536, size - 1):
        tree.reads = 0
        path = inclusion_path(tree, index, size)
        assert verify_inclusion(index, size, leaves[index], path, root)
        assert tree.reads <= 256 * 8, (index, tree.reads)  # log2(n) ranges, at most 256 each
