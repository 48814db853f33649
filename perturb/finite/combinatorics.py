"""Moment–cumulant combinatorics over multisets (for the conditional cumulants of the chain).

Items are labels with repetition (e.g. the pairs (α, β) of a covariance entry, repeated as often
as they occur in a mixed moment).  A set partition of the labelled items is counted through the
*multiset* partition it induces, with multiplicity

    Π_label c_label! / (Π_blocks Π_label b_{block,label}! · Π_distinct-blocks mult!),

so that sums over set partitions (Bell numbers of items) become sums over the far fewer
multiset partitions.

>>> sorted(multiset_partitions_counted(("a", "a", "a", "a")))[:3]
[((('a',), ('a',), ('a',), ('a',)), 1), ((('a',), ('a',), ('a', 'a')), 6), ((('a',), ('a', 'a', 'a')), 4)]
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Hashable, Iterator

from sympy.utilities.iterables import multiset_partitions

__all__ = ["multiset_partitions_counted", "partition_count"]


def partition_count(items: tuple, blocks: tuple[tuple, ...]) -> int:
    """Number of set partitions of the labelled ``items`` that induce ``blocks``."""
    num = math.prod(math.factorial(c) for c in Counter(items).values())
    den = 1
    for block in blocks:
        den *= math.prod(math.factorial(c) for c in Counter(block).values())
    for mult in Counter(blocks).values():
        den *= math.factorial(mult)
    return num // den


@functools.cache
def _partitions(items: tuple[Hashable, ...], min_block: int) -> tuple[tuple[tuple[tuple, ...], int], ...]:
    out = []
    if not items:
        return (((), 1),)
    for part in multiset_partitions(list(items)):
        blocks = tuple(sorted(tuple(b) for b in part))
        if min(len(b) for b in blocks) < min_block:
            continue
        out.append((blocks, partition_count(items, blocks)))
    return tuple(out)


def multiset_partitions_counted(items: tuple, min_block: int = 1) -> Iterator[tuple[tuple[tuple, ...], int]]:
    """Yield (blocks, count) over the multiset partitions of ``items`` with blocks >= min_block.

    ``items`` must be sortable; each block is a sorted tuple and blocks are sorted.
    """
    yield from _partitions(tuple(sorted(items)), min_block)
