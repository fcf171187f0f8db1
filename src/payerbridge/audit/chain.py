"""The audit hash chain and its Merkle tree (pure): how the chain is proved and checked.

How an event is hashed and linked (its RFC 6962 leaf hash over a canonical JSON of its
stored fields; ``chain_hash(n) = SHA-256(0x01 || chain_hash(n-1) || leaf_hash(n))`` from
``GENESIS``, the hash of the empty tree) is the room's model (``model.py``), which the
store writes by and this module re-exports. Checkpoints sign the chain head with the
RFC 6962 Merkle tree hash over every leaf so far, which ``MerkleFrontier`` keeps in
O(log n) as leaves arrive. ADR 0007 gives the reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from payerbridge.audit.model import (
    GENESIS,
    ChainedEvent,
    MerkleFrontier,
    canonical_bytes,
    detail_text,
    hash_children,
    hash_leaf,
    leaf_hash,
    link,
    link_events,
    stored_leaf_hash,
)

__all__ = [
    "GENESIS",
    "ChainedEvent",
    "ChainBreak",
    "ConsistencyProver",
    "MerkleFrontier",
    "canonical_bytes",
    "consistency_proof",
    "consistency_ranges",
    "detail_text",
    "hash_children",
    "hash_leaf",
    "is_consistent",
    "leaf_hash",
    "link",
    "link_events",
    "merkle_tree_hash",
    "stored_leaf_hash",
]


@dataclass(frozen=True)
class ChainBreak:
    """The first event that does not check out, and why (no event content)."""

    seq: int
    reason: str


# RFC 9162 (Certificate Transparency v2) section 2.1.4: Merkle consistency proofs. A
# proof between the tree of the first ``first`` leaves and the tree of all ``second``
# shows the later tree extends the earlier one; every node in it is the tree hash of a
# range of leaves, so a proof is built from the ranges alone while the leaves stream by.


def _split(size: int) -> int:
    """The largest power of two below ``size`` (``size`` > 1): where RFC 9162 splits."""
    return 1 << ((size - 1).bit_length() - 1)


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose tree hashes make RFC 9162's
    ``PROOF(first, D[second])``, in proof order (section 2.1.4.1); none when
    ``first`` is 0 or equals ``second``."""
    if not 0 <= first <= second:
        raise ValueError(f"a consistency proof needs 0 <= first <= second ({first}, {second})")
    if first in (0, second):
        return []
    return _subproof_ranges(first, 0, second, complete=True)


def _subproof_ranges(m: int, start: int, end: int, *, complete: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[start:end], b) as ranges of leaves."""
    n = end - start
    if m == n:
        return [] if complete else [(start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof_ranges(m, start, start + k, complete=complete), (start + k, end)]
    return [*_subproof_ranges(m - k, start + k, end, complete=False), (start, start + k)]


def merkle_tree_hash(leaves: Sequence[str]) -> str:
    """MTH over ``leaves`` (hex leaf hashes), RFC 9162 section 2.1.1."""
    frontier = MerkleFrontier()
    for leaf in leaves:
        frontier.add(leaf)
    return frontier.root()


def consistency_proof(first: int, leaves: Sequence[str]) -> list[str]:
    """RFC 9162 ``PROOF(first, D[n])`` over every leaf hash in ``leaves``."""
    return [merkle_tree_hash(leaves[a:b]) for a, b in consistency_ranges(first, len(leaves))]


class ConsistencyProver:
    """Builds ``PROOF(first, D[second])`` and the second tree's root from the leaves as
    they stream by, in O(log n) memory: each proof node's range is hashed by a frontier
    of its own (the ranges do not overlap)."""

    def __init__(self, first: int, second: int) -> None:
        self.first, self.second = first, second
        self._ranges = consistency_ranges(first, second)
        self._order = sorted(range(len(self._ranges)), key=lambda i: self._ranges[i][0])
        self._nodes = [MerkleFrontier() for _ in self._ranges]
        self._next = 0  # index into ``_order`` of the range the next leaf may fall in
        self.tree = MerkleFrontier()

    def add(self, leaf: str) -> None:
        index = self.tree.size
        self.tree.add(leaf)
        while self._next < len(self._order):
            start, end = self._ranges[self._order[self._next]]
            if index < start:
                return
            if index < end:
                self._nodes[self._order[self._next]].add(leaf)
                return
            self._next += 1

    def proof(self) -> list[str]:
        if self.tree.size != self.second:
            raise ValueError(f"{self.tree.size} leaves given, {self.second} expected")
        return [node.root() for node in self._nodes]


def _lsb(value: int) -> int:
    return value & 1


def is_consistent(
    first: int, second: int, first_root: str, second_root: str, proof: Sequence[str]
) -> bool:
    """RFC 9162 section 2.1.4.2: does ``proof`` show the tree of ``second`` leaves with
    root ``second_root`` extends the tree of ``first`` leaves with root ``first_root``?
    (The empty tree is extended by every tree; a tree of equal size only by itself.)"""
    if not 0 <= first <= second:
        return False
    if first == 0:
        return not proof and (second > 0 or second_root == first_root == GENESIS)
    if first == second:
        return not proof and first_root == second_root
    path = list(proof)
    if not path:
        return False
    if first & (first - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while _lsb(fn):
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if _lsb(fn) or fn == sn:
            fr = hash_children(node, fr)
            sr = hash_children(node, sr)
            while not _lsb(fn) and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hash_children(sr, node)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0
