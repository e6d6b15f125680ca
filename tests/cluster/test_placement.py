"""What the placement decides from the policy and the cluster's nodes, and the city's policy
from its [placement] config."""

from __future__ import annotations

import dataclasses

import pytest

from actors.cli import placement_policy
from actors.topology import load_city
from cluster.placement import LABEL_AMOUNT, Node, PlacementPolicy, decide
from engine import ActorOptions, Colocation, OptionError

NEAR = {"cameras": [0, 1, 1], "stations": [0, None]}
POLICY = PlacementPolicy(spread="districts", near=NEAR, labels={"gateways": "gateway"})


def node(name: str, cpus: float, **resources: float) -> Node:
    return Node(f"id-{name}", f"10.0.0.{len(name)}", {"CPU": cpus, **resources})


def test_on_a_cluster_districts_get_spread_bundles_and_gateways_the_labelled_nodes():
    decision = decide(POLICY, [node("head", 0), node("a", 4), node("bb", 4, gateway=1)])
    assert decision.colocation == Colocation("districts", "SPREAD", {"CPU": 1.0}, NEAR)
    assert decision.placement == {"gateways": ActorOptions(num_cpus=0.0, resources={"gateway": LABEL_AMOUNT})}
    assert decision.notes == [
        "districts: a bundle of 1 CPU each, spread over 2 nodes, cameras and stations next to theirs",
        "gateways: on the nodes labelled 'gateway' (10.0.0.2)",
    ]


def test_on_one_node_nothing_is_spread_and_unlabelled_gateways_run_anywhere():
    decision = decide(POLICY, [node("laptop", 2)])
    assert decision.colocation is None and decision.placement == {}
    assert decision.notes == [
        "districts: one node with CPUs, nothing to spread over (Ray's default placement)",
        "gateways: no node is labelled 'gateway'; they run on any node",
    ]
    # What the user asks for explicitly is done even on one node (and fails clearly if it cannot be).
    strict = decide(dataclasses.replace(POLICY, strategy="strict_pack", bundle_cpus=0.5), [node("laptop", 2)])
    assert strict.colocation == Colocation("districts", "STRICT_PACK", {"CPU": 0.5}, NEAR)


def test_required_labels_make_the_actors_wait_for_labelled_nodes():
    decision = decide(dataclasses.replace(POLICY, labels_required=True), [node("a", 4), node("b", 4)])
    assert decision.placement["gateways"].resources == {"gateway": LABEL_AMOUNT}
    assert "no node is labelled 'gateway' yet; they wait for one" in decision.notes[-1]


def test_a_policy_without_spread_makes_no_placement_group():
    decision = decide(PlacementPolicy(labels={"gateways": "gateway"}), [node("a", 4), node("b", 4, gateway=2)])
    assert decision.colocation is None and list(decision.placement) == ["gateways"]


def test_policies_are_checked():
    with pytest.raises(OptionError, match="strategy"):
        PlacementPolicy(spread="districts", strategy="scatter")
    with pytest.raises(OptionError, match="bundle_cpus"):
        PlacementPolicy(spread="districts", bundle_cpus=0)
    with pytest.raises(OptionError, match="labels"):
        PlacementPolicy(labels={"gateways": ""})


def test_the_city_policy_maps_each_camera_group_and_station_to_its_district():
    city = load_city()
    policy = placement_policy(city)
    assert policy.spread == "districts" and policy.strategy == "spread" and policy.bundle_cpus == 1.0
    index = {d: i for i, d in enumerate(city.district_ids())}
    assert policy.near["cameras"] == [index[group[0].district] for group in city.camera_groups()]
    assert policy.near["stations"] == [index[s.district] for s in city.stations]
    assert policy.labels == {"gateways": "gateway", "screen": "gateway"} and not policy.labels_required
    # Live, the ingest services (the other gRPC edge of the city) go to the labelled nodes too.
    edge = {"gateways": "gateway", "screen": "gateway", "ingest_detections": "gateway", "ingest_readings": "gateway"}
    assert placement_policy(city, live=True).labels == edge
    no_ingest = load_city(overrides=["dispatch.ingest_port=-1"])
    assert placement_policy(no_ingest, live=True).labels == {"gateways": "gateway", "screen": "gateway"}
    # A camera group that spans districts runs anywhere; placement can be turned off.
    mixed = dataclasses.replace(city, cameras=tuple(dataclasses.replace(c, group="all") for c in city.cameras))
    assert placement_policy(mixed).near["cameras"] == [None]
    off = load_city(overrides=["placement.districts=none", "placement.gateway_resource=''"])
    assert placement_policy(off).spread is None and placement_policy(off).labels == {}
