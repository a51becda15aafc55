"""The joint edges' users (which operators' sites route over each joint link) against their
definition: the operators of the sites whose tree path to the fiber uses the edge.

``plan_backbone`` computes them in one pass over the tree (a path search per site had not
finished after 13 minutes on the national demo's 83,000 sites); here each site's path is
searched, as the definition says.
"""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from telcoplan.backbone.plans import plan_backbone
from tests.backbone.test_plans import _random_city


@pytest.mark.parametrize("seed", range(12))
def test_edge_users_are_the_operators_whose_paths_use_the_edge(seed):
    G, nodes, site_ops = _random_city(seed)
    plan = plan_backbone(G, nodes, site_ops, shapley=False)
    T = nx.Graph()
    T.add_edges_from(plan.joint.edges)
    T.add_edges_from(("root", a) for a in plan.joint.attach)
    expected: dict[frozenset, set] = {frozenset(e): set() for e in plan.joint.edges}
    for s, ops in site_ops.items():
        if s in plan.left_out or nodes[s] not in T:
            continue
        for a, b in itertools.pairwise(nx.shortest_path(T, nodes[s], "root")):
            if "root" not in (a, b):
                expected[frozenset((a, b))] |= set(ops)
    got = {frozenset(e): set(who) for e, who in plan.users.items()}
    assert got == expected
    assert set(plan.users) == set(plan.joint.edges)
