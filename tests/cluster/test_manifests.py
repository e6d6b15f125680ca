"""The cluster manifests stay valid and in step with the code: the Ray cluster launcher's YAML
(checked by Ray's own validator), and the KubeRay RayCluster and RayJob (the fields citystream
relies on: Ray's version, the gateway label, the gateways' ports as a Service, a job command
line our CLI accepts, checkpoints on object storage, the pinned dependencies)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import ray
import yaml

from actors.cli import build_parser
from actors.topology import load_city
from cluster.jobs import pinned_requirements

CLUSTER = Path(__file__).resolve().parent.parent.parent / "cluster"
CITY = load_city()
IMAGE = f"rayproject/ray:{ray.__version__}-py{sys.version_info.major}{sys.version_info.minor}-cpu"
GATEWAY_PORTS = sorted(g.port for g in CITY.gateways)
# The gateways, the ingest services and the screen: the city's network edge, on the labelled nodes.
EDGE_PORTS = sorted([*GATEWAY_PORTS, CITY.dispatch.ingest_port, CITY.dispatch.ingest_port + 1, CITY.screen.port])


def documents(name: str) -> dict[str, Any]:
    """The YAML documents of a manifest, by kind."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all((CLUSTER / name).read_text())}


def images(pod_template: dict[str, Any]) -> list[str]:
    return [c["image"] for c in pod_template["spec"]["containers"]]


def test_the_ray_cluster_launcher_config_is_valid_for_this_ray() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(dict(config)))  # raises on an invalid config
    assert config["docker"]["image"] == IMAGE
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}  # no task actors on the head
    labelled = [t for t in types.values() if t["resources"].get(CITY.placement.gateway_resource, 0) > 0]
    # Gateway nodes: at least one, and no CPUs for the districts' bundles or other actors.
    assert labelled and all(t["min_workers"] >= 1 and t["resources"]["CPU"] == 0 for t in labelled)
    workers = sum(t.get("min_workers", 0) for name, t in types.items() if name != config["head_node_type"])
    assert workers >= len(CITY.districts) + 1  # a node per district, and the gateways'
    # The dependencies: the project's (Ray comes with the image), pinned by constraints.txt.
    (setup,) = config["setup_commands"]
    words = setup.split()
    assert words[:5] == ["pip", "install", "-q", "-c", "/home/ray/citystream/constraints.txt"]
    assert sorted(words[5:]) == sorted(r.split("==")[0] for r in pinned_requirements())
    assert config["file_mounts"] == {"/home/ray/citystream": "."}
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" in head_start  # the Jobs API, for citystream submit
    # The consoles reach every gateway port, the edge devices the ingest ports; nothing else.
    rules = config["provider"]["security_group"]["IpPermissions"]
    opened = sorted(port for r in rules for port in range(r["FromPort"], r["ToPort"] + 1))
    assert opened == EDGE_PORTS


def test_the_kuberay_cluster_labels_gateway_pods_and_exposes_their_ports() -> None:
    docs = documents("kuberay/raycluster.yaml")
    cluster, service, claim = docs["RayCluster"], docs["Service"], docs["PersistentVolumeClaim"]
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    assert spec["rayVersion"] == ray.__version__
    head = spec["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0", "dashboard-host": "0.0.0.0"}
    assert images(head["template"]) == [IMAGE]
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert groups["districts"]["minReplicas"] >= len(CITY.districts)
    gateways = groups["gateways"]
    resources = json.loads(json.loads(gateways["rayStartParams"]["resources"]))  # KubeRay's quoted JSON
    assert resources == {CITY.placement.gateway_resource: 1} and gateways["rayStartParams"]["num-cpus"] == "0"
    assert spec["enableInTreeAutoscaling"] is True  # what minReplicas..maxReplicas need
    for group in groups.values():
        assert images(group["template"]) == [IMAGE]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    (container,) = gateways["template"]["spec"]["containers"]
    assert sorted(p["containerPort"] for p in container["ports"]) == EDGE_PORTS
    assert all(len(p["name"]) <= 15 for p in container["ports"])  # Kubernetes' limit on port names
    # The incident logs outlive the pod; the dispatch certificate comes from a secret.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in gateways["template"]["spec"]["volumes"]}
    assert volumes["incidents"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "secretName" in volumes["dispatch-tls"]["secret"]
    # The Service selects the gateway pods (KubeRay's labels) and carries each gateway's port.
    assert service["spec"]["selector"] == {"ray.io/cluster": cluster["metadata"]["name"], "ray.io/group": "gateways"}
    assert sorted((p["port"], p["targetPort"]) for p in service["spec"]["ports"]) == [(p, p) for p in EDGE_PORTS]
    assert {service["metadata"]["namespace"], claim["metadata"]["namespace"]} == {cluster["metadata"]["namespace"]}
    assert set(mounts) == {"incidents", "dispatch-tls"}


def test_the_kuberay_job_runs_a_command_line_the_cli_accepts_with_checkpoints_on_object_storage() -> None:
    cluster = documents("kuberay/raycluster.yaml")["RayCluster"]
    gateways = next(g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gateways")
    (container,) = gateways["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    job = documents("kuberay/rayjob.yaml")["RayJob"]
    assert job["apiVersion"] == "ray.io/v1" and job["metadata"]["namespace"] == cluster["metadata"]["namespace"]
    spec = job["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    words = shlex.split(spec["entrypoint"])
    assert words[:3] == ["python", "-m", "actors.cli"]
    args = build_parser().parse_args(words[3:])  # exits (fails the test) on an option the CLI lacks
    assert args.command == "run" and args.mode == "live" and args.no_view
    assert (CLUSTER.parent / args.config).exists()  # a path in the working directory
    city = load_city(CLUSTER.parent / args.config, args.set)  # every override is a valid key
    assert city.checkpoints.directory.startswith("s3://") and city.checkpoints.interval_s > 0
    assert city.dispatch.host == "0.0.0.0" and not city.dispatch.insecure
    assert city.dispatch.log_dir == mounts["incidents"]  # on the gateways' volume
    assert Path(city.dispatch.tls_cert).parent == Path(city.dispatch.tls_key).parent == Path(mounts["dispatch-tls"])
    assert city.placement.gateway_nodes == "required"
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    # A zip of each commit (Ray keeps a downloaded working directory by its URI), as
    # `make cluster-package` names it: the README's sed puts the commit in.
    assert env["working_dir"].startswith("s3://") and env["working_dir"].endswith("/citystream-@COMMIT@.zip")
    makefile = (CLUSTER.parent / "Makefile").read_text()
    assert "-o dist/citystream-$$(git rev-parse --short HEAD).zip" in makefile
    assert env["pip"]["packages"] == pinned_requirements()
    assert env["env_vars"]["RAY_JOB_STOP_SIGNAL"] == "SIGINT"  # a stop takes a savepoint
