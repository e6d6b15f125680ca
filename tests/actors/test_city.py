"""The whole city job on simulated feeds: the same incidents on Ray as inline. (A stop that
takes a savepoint, and `--restore` from it, are tested through `citystream stop` on a cluster:
tests/cluster/test_cluster_jobs.py.)"""


from actors.city import city_flow
from actors.topology import load_city
from engine import ChannelOptions, InlineExecutor, RayExecutor

CITY = load_city(overrides=["simulation.batch_ms=1000"])  # frames of a simulated second: faster, same incidents


def incident_ids(result):
    return sorted(result.table("gateways")["incident_id"].to_pylist())


def test_the_simulated_city_raises_the_same_incident_ids_on_ray_as_inline(ray_instance):
    inline = InlineExecutor().run(city_flow(CITY, mode="replay", duration_s=120, seed=11, serve=False, screen=False))
    flow = city_flow(CITY, mode="replay", duration_s=120, seed=11, serve=False, screen=False)
    on_ray = RayExecutor(channels=ChannelOptions(linger_ms=2)).run(flow, timeout=300)
    assert incident_ids(on_ray) == incident_ids(inline)
    assert len(incident_ids(inline)) >= 3
    assert on_ray.table("refused_detections").num_rows == inline.table("refused_detections").num_rows == 0
    # One actor per district, and each district's incidents come from its own actor.
    for i, district in enumerate(CITY.district_ids()):
        assert on_ray.metrics[f"districts[{i}]"].rows_in > 0
    gateways = on_ray.table("gateways")
    for gateway in set(gateways["gateway"].to_pylist()):
        assert gateway in {g.id for g in CITY.gateways}
