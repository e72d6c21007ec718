import numpy as np
import pytest

from grokpath import pathways


def test_select_experts_shortest_prefix_exceeding_tau():
    probs = np.array([0.1, 0.5, 0.15, 0.25])
    # sorted: 1 (0.5), 3 (0.75 > 0.7) -> stop
    assert pathways.select_experts(probs, 0.7).tolist() == [1, 3]


def test_select_experts_exactly_tau_is_not_enough():
    # "exceeds": a cumulative weight equal to tau does not stop the prefix.
    probs = np.array([0.5, 0.25, 0.25])
    assert pathways.select_experts(probs, 0.75).tolist() == [0, 1, 2]
    assert pathways.select_experts(probs, 0.5).tolist() == [0, 1]


def test_select_experts_first_expert_alone_exceeds():
    assert pathways.select_experts(np.array([0.05, 0.9, 0.05]), 0.7).tolist() == [1]


def test_select_experts_ties_keep_lower_id_first():
    assert pathways.select_experts(np.array([0.25, 0.25, 0.25, 0.25]), 0.6).tolist() == [0, 1, 2]


def test_select_experts_tau_one_keeps_everything_even_with_rounding():
    probs = np.full(3, 1 / 3, dtype=np.float32)  # sums to slightly less or more than 1
    assert sorted(pathways.select_experts(probs, 1.0).tolist()) == [0, 1, 2]


def test_select_experts_keeps_every_routed_expert_when_the_weights_never_exceed_tau():
    # The weights sum to exactly 1 = tau, or to less than tau: nothing exceeds it.
    assert pathways.select_experts(np.array([0.5, 0.25, 0.25]), 1.0).tolist() == [0, 1, 2]
    # ... and an expert with no weight at all is not on the path
    assert pathways.select_experts(np.array([0.0, 0.4, 0.2, 0.0]), 0.7).tolist() == [1, 2]
    assert pathways.select_experts(np.array([0.0, 0.6, 0.4]), 1.0).tolist() == [1, 2]


@pytest.mark.parametrize("tau", [0.0, -0.1, 1.01])
def test_select_experts_rejects_tau_outside_unit_interval(tau):
    with pytest.raises(ValueError, match="tau must be in"):
        pathways.select_experts(np.array([0.5, 0.5]), tau)


def test_serialize_and_parse_round_trip():
    layers = [[3, 1, 5], [9, 1], [0]]
    s = pathways.serialize(layers)
    assert s == "3,1,5-9,1-0"
    assert pathways.parse(s) == layers


def test_pathway_of_sample():
    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    assert pathways.pathway(probs, 0.7) == ("0,1-2,1", [2, 2])


def test_consistency_hand_computed():
    # Two experts, 2-d embeddings; three layers.
    routers = np.array(
        [
            [[1.0, 0.0], [0.0, 1.0]],
            [[1.0, 0.0], [0.0, 1.0]],
            [[1.0, 0.0], [0.0, 1.0]],
        ]
    )
    g = np.array([[[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]])
    # e1=(1,0), e2=(.5,.5), e3=(0,1): c = [cos45, cos45] = [0.7071, 0.7071]
    c, mean_cos = pathways.consistency(g, routers)
    c45 = np.sqrt(0.5)
    assert mean_cos[0] == pytest.approx(c45)
    assert c[0] == pytest.approx(1 - c45 / (c45 + 1e-8))


def test_consistency_with_negative_cosine():
    routers = np.array([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    g = np.array([[[1.0, 0.0], [0.8, 0.2], [0.0, 1.0]]])
    # e1=(1,0); e2=(-.8,.2); e3=(0,1)
    e2 = np.array([-0.8, 0.2])
    c1 = -0.8 / np.linalg.norm(e2)
    c2 = 0.2 / np.linalg.norm(e2)
    c, mean_cos = pathways.consistency(g, routers)
    assert c1 < 0
    assert mean_cos[0] == pytest.approx((c1 + c2) / 2)
    assert c[0] == pytest.approx(1 - ((c1 + c2) / 2) / (max(c1, c2) + 1e-8))


def test_consistency_is_vectorised_over_samples():
    rng = np.random.default_rng(0)
    routers = rng.normal(size=(4, 8, 16))
    g = rng.dirichlet(np.ones(8), size=(5, 4))
    c_all, _ = pathways.consistency(g, routers)
    for i in range(5):
        c_one, _ = pathways.consistency(g[i : i + 1], routers)
        assert c_all[i] == pytest.approx(c_one[0])


def test_consistency_needs_two_layers():
    with pytest.raises(ValueError, match="two MoE layers"):
        pathways.consistency(np.ones((1, 1, 2)) / 2, np.ones((1, 2, 3)))


def test_routing_entropy_is_the_mean_over_layers_in_nats():
    one_hot = [1.0, 0.0, 0.0, 0.0]
    even = [0.25] * 4
    w = np.array([[one_hot, even], [even, even]], dtype=np.float32)  # [N=2, L=2, K=4]
    np.testing.assert_allclose(pathways.routing_entropy(w), [np.log(4) / 2, np.log(4)])
    half = np.array([[[0.5, 0.5, 0.0, 0.0]]])
    np.testing.assert_allclose(pathways.routing_entropy(half), [np.log(2)])
