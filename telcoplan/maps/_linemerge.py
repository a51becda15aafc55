"""GEOS's line merge (``shapely.line_merge``) of many groups of lines at once, in arrays.

:func:`line_merge_groups` gives, for each group of line strings, the geometry that
``shapely.line_merge(shapely.multilinestrings(group))`` gives — the same parts in the same
order, vertex for vertex — computed for every group in one pass of whole-array work instead of
GEOS's planar graph (a national backbone's 420,000 links in 13 groups: 0.7 s of CPU instead
of 1.3 s, without the groups' MultiLineStrings built first).

GEOS's ``LineMerger`` (a port of JTS's) works on a graph whose nodes are the lines' end points
and whose edges are the lines, each with two directed edges (forward: first point to last;
backward). The out-edges of a node are ordered by angle (their quadrant — NE, NW, SW, SE —
then counter-clockwise within it, by the orientation of their first segments); the nodes by
coordinate (x, then y). It then builds edge strings:

1. for each node whose degree (number of out-edges) is not 2, in node order, for each of its
   out-edges in angular order whose edge is not in a string yet: the string that starts with
   it and goes on through nodes of degree 2 (at such a node, the out-edge other than the
   way back) until a node of another degree;
2. for each node of degree 2 left (in node order): the same, which can only close a cycle of
   nodes of degree 2.

A string's line is its edges' coordinates in their direction of travel, joined without
repeating the shared point, and reversed as a whole when more of its edges run backward than
forward. Here each directed edge's successor is computed at once, the strings are ranked by
pointer jumping, and a string is kept when its first edge comes before the first edge of the
same string travelled the other way (step 1) — the order in which GEOS would meet them.

A group is handed to GEOS instead when the arrays could decide otherwise than GEOS: a line
with a repeated point, a non-finite or 3D coordinate, two out-edges of a node whose order is
not certain in double precision (parallel first segments included; GEOS's sort would then
depend on its insertion order), or no string at all.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from telcoplan.maps._threads import map_chunks

__all__ = ["line_merge_groups"]

#: Relative error bound of the orientation determinant below which the sign is not trusted
#: (Shewchuk's bound for orient2d is 3.3e-16; a margin on top).
_ORIENT_EPS = 1e-15


def line_merge_groups(lines: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """``shapely.line_merge`` of each group of ``lines`` (an object array of LineStrings;
    ``group[i]`` in ``0 … groups - 1`` is the group of ``lines[i]``; a group's lines in their
    order), as an object array of one geometry per group: a MultiLineString, a LineString when
    the group merges into one line, None for a group without lines. Empty lines are left out
    (GEOS ignores them)."""
    lines = np.asarray(lines, dtype=object)
    group = np.asarray(group, dtype=np.intp)
    if len(lines) != len(group):
        raise ValueError(f"need one group per line: {len(group)} groups for {len(lines)} lines")
    if len(lines) and not (shapely.get_type_id(lines) == 1).all():
        raise ValueError("line_merge_groups takes LineStrings only")
    out = np.full(groups, None, dtype=object)
    keep = ~shapely.is_empty(lines)
    lines, group = lines[keep], group[keep]
    present = np.zeros(groups, dtype=bool)
    present[group] = True
    fallback = np.zeros(groups, dtype=bool)
    if len(lines):
        done, fails = _merge(lines, group, groups)
        fallback |= present & fails
        ok = present & ~fallback
        out[ok] = done[ok]
    todo = np.flatnonzero(fallback)
    if len(todo):
        order = np.argsort(group, kind="stable")
        starts = np.searchsorted(group[order], np.arange(groups + 1))
        whole = np.empty(len(todo), dtype=object)
        whole[:] = [shapely.multilinestrings(lines[order[starts[g] : starts[g + 1]]]) for g in todo]
        out[todo] = map_chunks(shapely.line_merge, whole, shapely.get_num_coordinates(whole))
    return out


def _merge(lines: np.ndarray, group: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The merged geometry of each group and whether the group must go to GEOS instead."""
    fails = np.zeros(groups, dtype=bool)
    m = len(lines)
    xy = shapely.get_coordinates(lines)
    count = shapely.get_num_coordinates(lines)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    last = first + count - 1
    # lines that GEOS would treat otherwise: repeated points, NaN/inf, a Z coordinate
    repeat = np.zeros(len(xy), dtype=bool)
    repeat[1:] = (xy[1:] == xy[:-1]).all(axis=1)
    repeat[first] = False  # the first point of a line repeats nothing
    odd = np.add.reduceat(repeat | ~np.isfinite(xy).all(axis=1), first) > 0
    odd |= shapely.has_z(lines)
    fails[group[odd]] = True

    # directed edges: 2i runs line i forward, 2i + 1 backward
    p0 = np.empty((2 * m, 2))
    p0[0::2], p0[1::2] = xy[first], xy[last]
    p1 = np.empty((2 * m, 2))
    p1[0::2], p1[1::2] = xy[np.minimum(first + 1, last)], xy[np.maximum(last - 1, first)]
    dgroup = np.repeat(group, 2)
    # nodes: distinct (group, x, y), numbered in GEOS's node order (x, then y) per group
    sort = _by_group_x_y(dgroup, p0[:, 0], p0[:, 1])
    new = np.ones(2 * m, dtype=bool)
    new[1:] = (np.diff(dgroup[sort]) != 0) | (np.diff(p0[sort], axis=0) != 0).any(axis=1)
    node = np.empty(2 * m, dtype=np.intp)
    node[sort] = np.cumsum(new) - 1
    nodes = int(new.sum())
    to = node.reshape(-1, 2)[:, ::-1].reshape(-1)  # the other end of each edge
    degree = np.bincount(node, minlength=nodes)

    # out-edges in angular order: quadrant (NE, NW, SW, SE), then counter-clockwise
    d = p1 - p0
    quadrant = np.where(d[:, 0] >= 0, np.where(d[:, 1] >= 0, 0, 3), np.where(d[:, 1] >= 0, 1, 2))
    order = _angular(sort, node[sort], degree, quadrant, np.arctan2(d[:, 1], d[:, 0]))
    pos = np.empty(2 * m, dtype=np.intp)
    pos[order] = np.arange(2 * m)
    # each pair of neighbours in that order (one node, one quadrant) must be strictly
    # counter-clockwise, beyond doubt; else GEOS's own comparison decides
    a, b = order[:-1], order[1:]
    pair = (node[a] == node[b]) & (quadrant[a] == quadrant[b])
    a, b = a[pair], b[pair]
    left = (p1[a, 0] - p0[a, 0]) * (p1[b, 1] - p0[a, 1])
    right = (p1[a, 1] - p0[a, 1]) * (p1[b, 0] - p0[a, 0])
    unsure = (left - right) <= _ORIENT_EPS * (np.abs(left) + np.abs(right))
    fails[dgroup[a[unsure]]] = True
    del p0, p1, d, a, b, pair, left, right, unsure

    # successor of each directed edge: through a node of degree 2, the other out-edge
    start_at = np.searchsorted(node[order], np.arange(nodes))
    two = degree == 2
    o1 = np.full(nodes, -1, dtype=np.intp)
    o2 = np.full(nodes, -1, dtype=np.intp)
    o1[two] = order[start_at[two]]
    o2[two] = order[start_at[two] + 1]
    edge = np.arange(2 * m)
    t = to
    nxt = np.where(two[t], np.where(o1[t] == (edge ^ 1), o2[t], o1[t]), -1)

    # string starts: out-edges of nodes of degree other than 2 (step 1), and for each cycle
    # of degree-2 nodes its first node's first out-edge (step 2)
    graph = coo_matrix((np.ones(m, dtype=np.int8), (node[0::2], node[1::2])), shape=(nodes, nodes))
    _, component = connected_components(graph, directed=False)
    cyclic = np.bincount(component, weights=~two, minlength=component.max() + 1) == 0
    lowest = np.full(len(cyclic), nodes, dtype=np.intp)
    np.minimum.at(lowest, component, np.arange(nodes))
    cycle_start = o1[lowest[cyclic]]
    step1 = ~two[node]
    pred = np.full(2 * m, -1, dtype=np.intp)
    has = nxt >= 0
    pred[nxt[has]] = edge[has]
    pred[cycle_start] = -1
    # pointer jumping: the first edge of each edge's string and the edge's rank in it
    root = np.where(pred < 0, edge, pred)
    rank = (pred >= 0).astype(np.int64)
    for _ in range(int(2 * m).bit_length() + 1):
        up = root[root]
        if np.array_equal(up, root):
            break
        rank = rank + rank[root]
        root = up
    is_start = pred < 0
    del pred, up
    placed = is_start[root] & (step1[root] | np.isin(root, cycle_start))
    # a step-1 string is kept when it starts before its reverse (which starts with the reverse
    # of its last edge)
    tail = np.full(2 * m, -1, dtype=np.intp)
    ends = np.flatnonzero(placed & (nxt < 0))  # the last edge of each step-1 string
    tail[root[ends]] = ends
    starts = np.flatnonzero(is_start & placed)
    keep_start = np.ones(len(starts), dtype=bool)
    s1 = step1[starts]
    keep_start[s1] = pos[starts[s1]] < pos[tail[starts[s1]] ^ 1]
    starts = starts[keep_start]
    # strings in GEOS's order: per group, step-1 strings by their first edge, then the cycles
    phase = (~step1[starts]).astype(np.int64)
    starts = starts[np.lexsort((pos[starts], phase, dgroup[starts]))]
    string_of = np.full(2 * m, -1, dtype=np.intp)
    string_of[starts] = np.arange(len(starts))
    # each string's edges in their order (rank)
    member = np.flatnonzero(placed & (string_of[root] >= 0))
    edges_in = np.bincount(string_of[root[member]], minlength=len(starts))
    bounds = np.concatenate([[0], np.cumsum(edges_in)])
    e = np.empty(len(member), dtype=np.intp)
    e[bounds[string_of[root[member]]] + rank[member]] = member
    sid = np.repeat(np.arange(len(starts)), edges_in)
    # reverse a string whose edges run backward more often than forward
    backward = np.bincount(sid, weights=e % 2, minlength=len(starts))
    flip = backward > edges_in - backward
    if flip.any():
        # the edges of a flipped string in reverse order, each the other way
        idx = np.arange(len(e))
        f = flip[sid]
        lo, hi = bounds[sid], bounds[sid + 1] - 1
        idx[f] = (lo + hi - idx)[f]
        e = np.where(f, e[idx] ^ 1, e)
    # a string of one edge runs forward (else it is flipped): it is that line
    one = edges_in == 1
    strings = np.empty(len(starts), dtype=object)
    strings[one] = lines[e[bounds[:-1][one]] // 2]
    if not one.all():
        strings[~one] = _joined(xy, first, last, count, e, sid, ~one)
    sgroup = dgroup[starts]
    per = np.bincount(sgroup, minlength=groups)
    out = np.full(groups, None, dtype=object)
    several = per[sgroup] > 1
    if several.any():
        shapely.multilinestrings(strings[several], indices=sgroup[several], out=out)
    out[per == 1] = strings[~several]
    fails |= per == 0
    return out, fails


def _joined(
    xy: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    count: np.ndarray,
    e: np.ndarray,
    sid: np.ndarray,
    pick: np.ndarray,
) -> np.ndarray:
    """The lines of the strings ``pick`` (a mask over strings): the points of their edges
    ``e`` (directed edges in string order, ``sid`` the string of each), each edge's in its
    direction, the first left out but in a string's first edge (it is the previous edge's
    last point). ``xy``, ``first``, ``last``, ``count``: the input lines' points."""
    mine = pick[sid]
    e, sid = e[mine], sid[mine]
    line = e // 2
    first_in = np.ones(len(e), dtype=bool)
    first_in[1:] = sid[1:] != sid[:-1]
    take = count[line] - (~first_in)
    at = np.concatenate([[0], np.cumsum(take)[:-1]])
    k = np.arange(int(take.sum())) - np.repeat(at, take)
    k += np.repeat((~first_in).astype(np.intp), take)  # the points skipped
    line = np.repeat(line, take)
    src = np.where(np.repeat(e % 2 == 0, take), first[line] + k, last[line] - k)
    number = np.cumsum(pick) - 1  # of each picked string among them
    return shapely.linestrings(xy[src], indices=np.repeat(number[sid], take))


def _by_group_x_y(group: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The permutation that sorts points by (group, x, y), as ``np.lexsort((y, x, group))``
    (up to the order of equal points) in half the time: complex numbers sort by real part,
    then imaginary part; then a stable (radix) sort by the small group numbers."""
    z = np.empty(len(x), dtype=np.complex128)
    z.real, z.imag = x, y
    o = np.argsort(z, kind="stable")
    g = group[o]
    if len(g) and g.max() < 2**16:
        g = g.astype(np.uint16)  # radix sort
    return o[np.argsort(g, kind="stable")]


def _angular(
    sort: np.ndarray, node: np.ndarray, degree: np.ndarray, quadrant: np.ndarray, angle: np.ndarray
) -> np.ndarray:
    """``sort`` (directed edges grouped by their from-node ``node``, in node order) with the
    out-edges of each node ordered by (``quadrant``, ``angle``): a node's two out-edges
    swapped when need be, the out-edges of nodes of degree 3 or more sorted."""
    order = sort.copy()
    first = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    deg = degree[node[first]]
    a = first[deg == 2]
    ea, eb = order[a], order[a + 1]
    swap = (quadrant[eb] < quadrant[ea]) | (
        (quadrant[eb] == quadrant[ea]) & (angle[eb] < angle[ea])
    )
    order[a[swap]], order[a[swap] + 1] = eb[swap], ea[swap]
    big = deg > 2
    if big.any():
        at = np.flatnonzero(np.repeat(big, deg))
        sub = order[at]
        order[at] = sub[np.lexsort((angle[sub], quadrant[sub], node[at]))]
    return order
