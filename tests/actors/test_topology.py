"""The topology config: the default loads; every mistake names its key."""

import tomllib

import pytest

from actors.topology import DEFAULT_CONFIG, ConfigError, apply_override, city_from_dict, load_city


def raw():
    return tomllib.loads(DEFAULT_CONFIG.read_text())


def test_the_default_city_has_three_districts_a_dozen_cameras_and_routes_for_everything():
    city = load_city()
    assert city.district_ids() == ["songdo", "yeongjong", "cheongna"]
    assert len(city.cameras) == 12 and len(city.stations) >= 3 and len(city.gateways) == 3
    assert [len(group) for group in city.camera_groups()] == [4, 4, 4]
    assert city.gateway_for("cheongna", "crowd") == "incheon-seo-police"
    assert city.gateway_for("cheongna", "fire") == "incheon-yeonsu-police"
    assert any(zone.kind == "restricted" for camera in city.cameras for zone in camera.zones)


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (lambda c: c["cameras"][3].update(colour="red"), "cameras[3].colour", "unknown key"),
        (lambda c: c["cameras"][3].update(district="incheon"), "cameras[3].district", "unknown district 'incheon'"),
        (lambda c: c["cameras"][0].pop("lat"), "cameras[0].lat", "missing"),
        (lambda c: c["cameras"][0].update(lat="north"), "cameras[0].lat", "expected a number"),
        (lambda c: c["cameras"][0]["zones"][0].update(kind="lawn"), "cameras[0].zones[0].kind", "'lawn' is not one of"),
        (lambda c: c["cameras"][0]["zones"][0].update(x1=1.5), "cameras[0].zones[0]", "0 <= x0 < x1 <= 1"),
        (lambda c: c["cameras"][1].update(id=c["cameras"][0]["id"]), "cameras[1].id", "appears twice"),
        (lambda c: c["rules"].update(crowd_min_persons=2.5), "rules.crowd_min_persons", "expected an integer"),
        (lambda c: c["rules"].update(dust_levels=[300.0, 100.0, 400.0, 500.0]), "rules.dust_levels", "increasing"),
        (lambda c: c["routes"][1].update(gateway="nowhere"), "routes[1].gateway", "unknown gateway"),
        (lambda c: c["routes"].pop(), "routes", "no route for district 'cheongna'"),
        (lambda c: c["districts"][0]["neighbours"].update(atlantis=10.0), "districts[0].neighbours.atlantis", "unknown district"),
        (lambda c: c.update(stations=[s for s in c["stations"] if s["district"] != "cheongna"]), "stations", "'cheongna' has no"),
        (lambda c: c["simulation"].update(detections_per_camera_per_s=0), "simulation.detections_per_camera_per_s", "> 0"),
        (lambda c: c["placement"].update(districts="scatter"), "placement.districts", "'scatter' is not one of"),
        (lambda c: c["placement"].update(district_cpus=0.0), "placement.district_cpus", "above 0"),
        (lambda c: c["placement"].update(gateway_nodes="always"), "placement.gateway_nodes", "'required' or 'preferred'"),
        (lambda c: c["placement"].update(gateway_resource="", gateway_nodes="required"), "placement.gateway_nodes", "needs"),
    ],
)
def test_a_bad_config_names_the_key(change, key, message):
    config = raw()
    change(config)
    with pytest.raises(ConfigError, match=message) as error:
        city_from_dict(config)
    assert error.value.key == key
    assert f"config key '{key}'" in str(error.value)


def test_a_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_city(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_city(broken)


def test_overrides_change_keys_of_tables_and_lists_with_toml_values_or_strings():
    city = load_city(
        overrides=[
            "checkpoints.directory=s3://bucket/city",  # not TOML: a string
            "checkpoints.interval_s=2.5",
            "gateways.1.port=6000",
            "dispatch.insecure=true",
            'routes.0.kinds=["fire"]',
            "placement.districts=strict_spread",
        ]
    )
    assert city.checkpoints.directory == "s3://bucket/city" and city.checkpoints.interval_s == 2.5
    assert city.gateways[1].port == 6000 and city.routes[0].kinds == ("fire",)
    assert city.placement.districts == "strict_spread"
    config = {"name": "x"}
    apply_override(config, "placement.districts=pack")  # a table missing on the way is created
    assert config["placement"] == {"districts": "pack"}


@pytest.mark.parametrize(
    ("override", "key", "message"),
    [
        ("checkpoints.interval_s", "checkpoints.interval_s", "KEY=VALUE"),
        ("gateways.7.port=1", "gateways.7", "no item '7' in a list of 3"),
        ("name.first=x", "name.first", "'name' is a value"),
        ("checkpoints.interval=5", "checkpoints.interval", "unknown key"),
        ("checkpoints.interval_s=soon", "checkpoints.interval_s", "expected a number"),
    ],
)
def test_a_bad_override_names_the_key(override, key, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_city(overrides=[override])
    assert error.value.key == key
