"""Where a job's actors run on a Ray cluster: one operator's tasks spread over the nodes (each in
a bundle of a placement group), tasks of other operators next to the task they feed, and
operators that must run on nodes labelled for them (a custom resource such as ``gateway``).

``decide`` turns a ``PlacementPolicy`` and the cluster's nodes into the ``RayExecutor``'s
``colocation`` and ``placement`` options, and says in plain words what it decided. It knows
nothing of cities: the city job maps its districts, cameras and gateways onto it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from engine import ActorOptions, Colocation
from engine.errors import OptionError

GroupStrategy = Literal["SPREAD", "STRICT_SPREAD", "PACK", "STRICT_PACK"]
STRATEGIES: dict[str, GroupStrategy] = {
    "spread": "SPREAD",
    "strict_spread": "STRICT_SPREAD",
    "pack": "PACK",
    "strict_pack": "STRICT_PACK",
}
LABEL_AMOUNT = 0.001  # of a node's label resource per actor: a node labelled with 1 takes 1000 of them


@dataclass(frozen=True)
class PlacementPolicy:
    """What a job asks of the cluster.

    Args:
        spread: the operator whose tasks get a placement-group bundle each, placed with
            ``strategy``; None: no placement group.
        strategy: ``spread`` (over as many nodes as there are; on a cluster of one node no
            placement group is made), ``strict_spread`` (a node per task), ``pack``,
            ``strict_pack``.
        bundle_cpus: CPUs each bundle reserves (the spread task and the tasks next to it).
        near: operator -> for each of its tasks, the task of ``spread`` it runs next to (None: anywhere).
        labels: operator -> the custom resource of the nodes labelled for its actors.
        labels_required: True: those actors wait for labelled nodes however long it takes (an
            autoscaler may add them); False: with no labelled node in the cluster they run anywhere.
        label_cpus: CPUs each of those actors reserves (Ray's default for an actor that asks
            for a resource is a whole CPU, which would let a 2-CPU node take two gateways).
    """

    spread: str | None = None
    strategy: str = "spread"
    bundle_cpus: float = 1.0
    near: Mapping[str, Sequence[int | None]] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    labels_required: bool = False
    label_cpus: float = 0.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise OptionError("strategy", self.strategy, " or ".join(repr(s) for s in STRATEGIES))
        if self.spread is not None and not self.bundle_cpus > 0:
            raise OptionError("bundle_cpus", self.bundle_cpus, "CPUs above 0 (a bundle must reserve something)")
        for operator, resource in self.labels.items():
            if not resource:
                raise OptionError(f"labels[{operator!r}]", resource, "the name of a custom resource")


@dataclass(frozen=True)
class Node:
    """A live node of the cluster: its id, address and resources (as ``ray.nodes()`` has them)."""

    node_id: str
    address: str
    resources: Mapping[str, float]


@dataclass
class Decision:
    """The executor's options, and what was decided, in words (the CLI prints them)."""

    colocation: Colocation | None
    placement: dict[str, ActorOptions]
    notes: list[str]


def decide(policy: PlacementPolicy, nodes: Sequence[Node]) -> Decision:
    notes: list[str] = []
    colocation = None
    working = [n for n in nodes if n.resources.get("CPU", 0) > 0]
    if policy.spread is not None:
        if policy.strategy == "spread" and len(working) < 2:
            notes.append(f"{policy.spread}: one node with CPUs, nothing to spread over (Ray's default placement)")
        else:
            colocation = Colocation(
                policy.spread, STRATEGIES[policy.strategy], {"CPU": policy.bundle_cpus}, dict(policy.near)
            )
            near = f", {' and '.join(policy.near)} next to theirs" if policy.near else ""
            notes.append(
                f"{policy.spread}: a bundle of {policy.bundle_cpus:g} CPU each, {policy.strategy} over "
                f"{len(working)} nodes{near}"
            )
    placement: dict[str, ActorOptions] = {}
    for operator, resource in policy.labels.items():
        labelled = [n for n in nodes if n.resources.get(resource, 0) > 0]
        if labelled:
            placement[operator] = ActorOptions(num_cpus=policy.label_cpus, resources={resource: LABEL_AMOUNT})
            where = ", ".join(n.address for n in labelled)
            notes.append(f"{operator}: on the nodes labelled '{resource}' ({where})")
        elif policy.labels_required:
            placement[operator] = ActorOptions(num_cpus=policy.label_cpus, resources={resource: LABEL_AMOUNT})
            notes.append(f"{operator}: no node is labelled '{resource}' yet; they wait for one (an autoscaler may add it)")
        else:
            notes.append(f"{operator}: no node is labelled '{resource}'; they run on any node")
    return Decision(colocation, placement, notes)


def live_nodes() -> list[Node]:
    """The cluster's live nodes (Ray must be connected)."""
    import ray

    return [
        Node(n["NodeID"], n.get("NodeManagerAddress", ""), dict(n.get("Resources", {})))
        for n in ray.nodes()
        if n.get("Alive")
    ]
