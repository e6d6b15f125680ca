"""The gateway's gRPC dispatch service: filters, resume without loss, acknowledgements, token
scopes, slow consumers, TLS, health and reflection."""

import datetime
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from actors.dispatch import DispatchServer, token_digest
from actors.incident_log import IncidentLog
from actors.topology import ConsoleToken, Dispatch
from protos.citystream.v1 import dispatch_pb2, dispatch_pb2_grpc

DISTRICTS = ["songdo", "yeongjong", "cheongna"]
TOKENS = {
    "songdo": ConsoleToken("songdo-console", token_digest("s3cret-songdo"), ("songdo",)),
    "ioc": ConsoleToken("operations-center", token_digest("s3cret-ioc"), ("*",)),
}


def incident(n, district="songdo", kind="crowd", severity=3):
    return dispatch_pb2.Incident(incident_id=f"{kind}:{district}:{n}", district=district, kind=kind, severity=severity,
                                 evidence=f"incident {n}")


@pytest.fixture
def gateway(tmp_path):
    servers = []

    def start(**options):
        config = Dispatch(**{"insecure": True, "tokens": tuple(TOKENS.values()), **options})
        log = IncidentLog(tmp_path / "log", "gw")
        server = DispatchServer("gw", 0, config, log, DISTRICTS)
        server.start()
        servers.append((server, log))
        return server, log

    yield start
    for server, log in servers:
        server.stop()
        log.close()


def publish(server, log, incidents):
    stored = log.append(incidents)
    server.publish(stored)
    return stored


def stub_for(server):
    channel = grpc.insecure_channel(server.address)
    return dispatch_pb2_grpc.IncidentServiceStub(channel), channel


def auth(token):
    return (("authorization", f"Bearer {token}"),)


def take(call, count, timeout=10.0):
    """The next ``count`` messages of a server stream, read in a thread (with a deadline)."""
    got = []

    def read():
        for message in call:
            got.append(message)
            if len(got) == count:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert len(got) == count, f"got {len(got)} of {count}"
    return got


def test_subscribe_with_filters_gets_the_backlog_then_live_incidents_in_order(gateway):
    server, log = gateway()
    publish(server, log, [incident(1), incident(2, kind="fire", severity=5), incident(3, severity=1), incident(4, "cheongna")])
    stub, channel = stub_for(server)
    call = stub.Subscribe(dispatch_pb2.SubscribeRequest(districts=["songdo"], min_severity=2), metadata=auth("s3cret-ioc"))
    assert [i.sequence for i in take(call, 2)] == [1, 2]
    publish(server, log, [incident(5, kind="road"), incident(6, "yeongjong"), incident(7, severity=4)])
    live = take(call, 2)
    assert [(i.sequence, i.kind) for i in live] == [(5, "road"), (7, "crowd")]
    assert live[0].gateway == "gw" and live[0].HasField("logged_time")
    call.cancel()
    kinds = stub.Subscribe(dispatch_pb2.SubscribeRequest(kinds=["fire"]), metadata=auth("s3cret-ioc"))
    assert [i.incident_id for i in take(kinds, 1)] == ["fire:songdo:2"]
    kinds.cancel()
    channel.close()


def test_resume_after_a_disconnect_gets_exactly_the_missed_incidents(gateway):
    server, log = gateway()
    publish(server, log, [incident(n) for n in range(1, 4)])
    stub, channel = stub_for(server)
    first = stub.Subscribe(dispatch_pb2.SubscribeRequest(), metadata=auth("s3cret-songdo"))
    seen = take(first, 3)
    first.cancel()  # the console goes away...
    publish(server, log, [incident(n) for n in range(4, 8)])  # ...while these are raised
    again = stub.Subscribe(dispatch_pb2.SubscribeRequest(resume_after=seen[-1].sequence), metadata=auth("s3cret-songdo"))
    missed = take(again, 4)
    assert [i.sequence for i in missed] == [4, 5, 6, 7]
    publish(server, log, [incident(8)])
    assert [i.sequence for i in take(again, 1)] == [8]
    again.cancel()
    channel.close()


def test_acknowledgements_are_recorded_and_survive_a_restart(gateway, tmp_path):
    server, log = gateway()
    publish(server, log, [incident(1), incident(2)])
    stub, channel = stub_for(server)
    taken = stub.Acknowledge(dispatch_pb2.AcknowledgeRequest(sequence=2, officer="Sgt. Kim", note="unit 12 sent"),
                             metadata=auth("s3cret-songdo"))
    assert taken.acknowledgement.console == "songdo-console" and taken.acknowledgement.officer == "Sgt. Kim"
    got = stub.GetIncident(dispatch_pb2.GetIncidentRequest(incident_id="crowd:songdo:2"), metadata=auth("s3cret-ioc"))
    assert got.sequence == 2 and got.acknowledgement.note == "unit 12 sent"
    listed = stub.ListIncidents(dispatch_pb2.ListIncidentsRequest(), metadata=auth("s3cret-ioc"))
    assert [i.sequence for i in listed.incidents] == [1, 2] and listed.last_sequence == 2
    channel.close()
    server.stop()
    log.close()
    reopened = IncidentLog(tmp_path / "log", "gw")
    assert reopened.get(2).acknowledgement.officer == "Sgt. Kim"
    reopened.close()


def test_tokens_are_required_and_scoped_to_districts(gateway):
    server, log = gateway()
    publish(server, log, [incident(1, "yeongjong"), incident(2, "songdo")])
    stub, channel = stub_for(server)
    request = dispatch_pb2.SubscribeRequest()
    with pytest.raises(grpc.RpcError) as none:
        next(stub.Subscribe(request))
    assert none.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as wrong:
        next(stub.Subscribe(request, metadata=auth("guessed")))
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as outside:
        next(stub.Subscribe(dispatch_pb2.SubscribeRequest(districts=["yeongjong"]), metadata=auth("s3cret-songdo")))
    assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED and "yeongjong" in outside.value.details()
    # Whatever it asks for, the Songdo console sees only Songdo.
    call = stub.Subscribe(request, metadata=auth("s3cret-songdo"))
    assert [i.district for i in take(call, 1)] == ["songdo"]
    call.cancel()
    with pytest.raises(grpc.RpcError) as hidden:
        stub.GetIncident(dispatch_pb2.GetIncidentRequest(sequence=1), metadata=auth("s3cret-songdo"))
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as ack:
        stub.Acknowledge(dispatch_pb2.AcknowledgeRequest(sequence=1), metadata=auth("s3cret-songdo"))
    assert ack.value.code() == grpc.StatusCode.NOT_FOUND
    listed = stub.ListIncidents(dispatch_pb2.ListIncidentsRequest(), metadata=auth("s3cret-songdo"))
    assert [i.district for i in listed.incidents] == ["songdo"]
    channel.close()


def test_a_slow_console_is_disconnected_and_resumes_without_loss(gateway):
    server, log = gateway(subscriber_queue=5)
    stub, channel = stub_for(server)
    call = stub.Subscribe(dispatch_pb2.SubscribeRequest(), metadata=auth("s3cret-ioc"))
    publish(server, log, [incident(0)])
    seen = [i.sequence for i in take(call, 1)]
    big = "x" * 2000  # fills the transport's window, so that the server's queue fills too
    for start in range(1, 1001, 50):
        publish(server, log, [dispatch_pb2.Incident(incident_id=f"c{n}", district="songdo", kind="crowd", severity=3, evidence=big)
                              for n in range(start, start + 50)])
        time.sleep(0.01)
    time.sleep(0.5)
    with pytest.raises(grpc.RpcError) as slow:
        for message in call:
            seen.append(message.sequence)
    assert slow.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"resume after sequence {seen[-1]}" in slow.value.details()
    resumed = stub.Subscribe(dispatch_pb2.SubscribeRequest(resume_after=seen[-1]), metadata=auth("s3cret-ioc"))
    seen += [i.sequence for i in take(resumed, 1001 - len(seen))]
    resumed.cancel()
    assert seen == list(range(1, 1002))  # every incident once, in order
    channel.close()


def test_health_and_reflection(gateway):
    server, _ = gateway()
    channel = grpc.insecure_channel(server.address)
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="citystream.v1.IncidentService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in next(answers).list_services_response.service}
    assert {"citystream.v1.IncidentService", "grpc.health.v1.Health"} <= names
    channel.close()


def self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "gw.crt", tmp_path / "gw.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_tls_with_a_self_signed_pair(gateway, tmp_path):
    cert, key = self_signed(tmp_path)
    server, log = gateway(insecure=False, tls_cert=cert, tls_key=key, host="localhost")
    publish(server, log, [incident(1)])
    credentials = grpc.ssl_channel_credentials(open(cert, "rb").read())
    with grpc.secure_channel(server.address, credentials) as channel:
        stub = dispatch_pb2_grpc.IncidentServiceStub(channel)
        listed = stub.ListIncidents(dispatch_pb2.ListIncidentsRequest(), metadata=auth("s3cret-songdo"), timeout=10)
        assert [i.sequence for i in listed.incidents] == [1]
    with grpc.insecure_channel(server.address) as plain:
        with pytest.raises(grpc.RpcError) as refused:
            dispatch_pb2_grpc.IncidentServiceStub(plain).ListIncidents(
                dispatch_pb2.ListIncidentsRequest(), metadata=auth("s3cret-songdo"), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_config_without_tls_must_say_insecure():
    import tomllib

    from actors.topology import DEFAULT_CONFIG, ConfigError, city_from_dict

    raw = tomllib.loads(DEFAULT_CONFIG.read_text())
    raw["dispatch"]["insecure"] = False
    with pytest.raises(ConfigError, match=r"dispatch\.tls_cert"):
        city_from_dict(raw)
