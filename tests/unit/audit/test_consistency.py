"""RFC 9162 Merkle consistency proofs over the audit chain's leaves (pure): the RFC's
own worked example by hand, and generated trees of every size checked by hypothesis
(``HYPOTHESIS_PROFILE=long`` for a longer run by hand)."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.audit.chain import (
    GENESIS,
    ConsistencyProver,
    consistency_proof,
    consistency_ranges,
    hash_children,
    hash_leaf,
    is_consistent,
    merkle_tree_hash,
)

EXAMPLES = 20_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 300

# RFC 9162 section 2.1.5: seven leaves d0..d6.
#             hash
#            /    \
#           k      l
#          / \    / \
#         g   h  i   j
#        / \ / \ / \ |
#        a b c d e f d6
LEAVES = [hash_leaf(f"d{n}".encode()) for n in range(7)]
a, b, c, d, e, f, j = LEAVES
g, h, i = hash_children(a, b), hash_children(c, d), hash_children(e, f)
k, l = hash_children(g, h), hash_children(i, j)  # noqa: E741  (the RFC's name)
ROOT = hash_children(k, l)
HASH0 = hash_children(g, c)  # the tree of the first three
HASH1 = k  # of the first four
HASH2 = hash_children(k, i)  # of the first six


def test_tree_hashes_are_the_rfcs() -> None:
    assert merkle_tree_hash(LEAVES) == ROOT
    assert [merkle_tree_hash(LEAVES[:n]) for n in (3, 4, 6)] == [HASH0, HASH1, HASH2]
    assert merkle_tree_hash([]) == GENESIS


@pytest.mark.parametrize(
    ("first", "old_root", "proof"),
    [(3, HASH0, [c, d, g, l]), (4, HASH1, [l]), (6, HASH2, [i, j, k])],
)
def test_the_rfcs_worked_proofs(first: int, old_root: str, proof: list[str]) -> None:
    assert consistency_proof(first, LEAVES) == proof
    assert is_consistent(first, 7, old_root, ROOT, proof)
    # The same proof says nothing for another old root or new root, or altered.
    assert not is_consistent(first, 7, ROOT, ROOT, proof)
    assert not is_consistent(first, 7, old_root, HASH2, proof)
    assert not is_consistent(first, 7, old_root, ROOT, [*proof[:-1], GENESIS])
    assert not is_consistent(first, 7, old_root, ROOT, proof[:-1])


def test_the_ranges_name_the_rfcs_nodes() -> None:
    # c is leaf 2, d leaf 3, g leaves 0..1, l leaves 4..6.
    assert consistency_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]
    assert consistency_ranges(0, 7) == consistency_ranges(7, 7) == []
    with pytest.raises(ValueError):
        consistency_ranges(8, 7)


def test_trivial_sizes() -> None:
    assert is_consistent(0, 7, GENESIS, ROOT, [])
    assert is_consistent(7, 7, ROOT, ROOT, [])
    assert not is_consistent(7, 7, HASH2, ROOT, [])
    assert not is_consistent(3, 7, HASH0, ROOT, [])  # an empty proof proves nothing
    assert not is_consistent(8, 7, ROOT, ROOT, [])


def _leaves(count: int, salt: int = 0) -> list[str]:
    return [hash_leaf(hashlib.sha256(f"{salt}:{n}".encode()).digest()) for n in range(count)]


@st.composite
def _sizes(draw: st.DrawFn) -> tuple[int, int]:
    second = draw(st.integers(min_value=1, max_value=300))
    return draw(st.integers(min_value=1, max_value=second)), second


@settings(max_examples=EXAMPLES, deadline=None)
@given(_sizes())
def test_every_prefix_is_proven_consistent_with_its_extension(sizes: tuple[int, int]) -> None:
    first, second = sizes
    leaves = _leaves(second)
    proof = consistency_proof(first, leaves)
    old, new = merkle_tree_hash(leaves[:first]), merkle_tree_hash(leaves)
    assert is_consistent(first, second, old, new, proof)
    prover = ConsistencyProver(first, second)
    for leaf in leaves:
        prover.add(leaf)
    assert prover.proof() == proof and prover.tree.root() == new
    assert len(proof) <= 2 * second.bit_length()


@settings(max_examples=EXAMPLES, deadline=None)
@given(_sizes(), st.data())
def test_a_changed_prefix_or_proof_is_not_consistent(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    first, second = sizes
    leaves = _leaves(second)
    old = merkle_tree_hash(leaves[:first])
    # A leaf the old tree covers, changed (or cut and replaced) in the new tree.
    changed = list(leaves)
    changed[data.draw(st.integers(0, first - 1))] = _leaves(1, salt=1)[0]
    proof = consistency_proof(first, changed)
    assert not is_consistent(first, second, old, merkle_tree_hash(changed), proof)
    if first == second:
        return
    proof = consistency_proof(first, leaves)
    new = merkle_tree_hash(leaves)
    spot = data.draw(st.integers(0, len(proof) - 1))
    forged = [*proof[:spot], GENESIS, *proof[spot + 1 :]]
    assert not is_consistent(first, second, old, new, forged)
    assert not is_consistent(first, second, old, new, [*proof, GENESIS])
