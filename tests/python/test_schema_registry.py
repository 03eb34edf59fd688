"""Confluent's own Python client reads what Metal Automata produced, through our registry."""

import json
import time
import urllib.error
import urllib.request

import fastavro
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def test_confluent_avro_deserializer_decodes_our_records(service, kafka_brokers):
    registry = SchemaRegistryClient({"url": service["url"]})
    subjects = registry.get_subjects()
    assert "telemetry.readings-value" in subjects
    latest = registry.get_latest_version("telemetry.readings-value")
    assert latest.schema.schema_type == "AVRO"

    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_brokers,
            "group.id": f"py-check-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(["telemetry.readings"])
    decoded = []
    deadline = time.time() + 60
    try:
        while len(decoded) < 3 and time.time() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            value = deserializer(
                msg.value(), SerializationContext(msg.topic(), MessageField.VALUE)
            )
            decoded.append((msg.key(), value))
    finally:
        consumer.close()
    assert len(decoded) >= 3, "the collector produced telemetry into Kafka"
    for key, value in decoded:
        assert value["server_id"] == key.decode()
        assert value["kind"] in {"POWER", "TEMPERATURE", "FAN", "VOLTAGE", "CURRENT", "ENERGY", "UTILIZATION", "OTHER"}
        assert isinstance(value["value"], float)


def test_fastavro_reads_the_registered_schema(service):
    with urllib.request.urlopen(service["url"] + "/subjects/telemetry.readings-value/versions/latest") as r:
        body = json.loads(r.read())
    schema = fastavro.parse_schema(json.loads(body["schema"]))
    assert schema["name"].endswith("TelemetryReading")


def test_incompatible_schema_is_refused(service):
    registry = SchemaRegistryClient({"url": service["url"]})
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    latest = registry.get_latest_version("telemetry.readings-value")
    doc = json.loads(latest.schema.schema_str)
    # A new required field without a default breaks BACKWARD compatibility.
    doc["fields"].append({"name": "breaking_change", "type": "string"})
    bad = Schema(json.dumps(doc), "AVRO")
    assert registry.test_compatibility("telemetry.readings-value", bad) is False
    try:
        registry.register_schema("telemetry.readings-value", bad)
    except SchemaRegistryError as e:
        assert e.http_status_code == 409
    else:
        raise AssertionError("an incompatible schema was registered")


def test_a_second_service_can_use_an_external_registry(service):
    """Pointed at another registry (here: the first service's), a service registers there and
    serves no registry of its own."""
    import os
    import subprocess
    import tempfile

    from conftest import BIN, free_port, wait_http

    data = tempfile.mkdtemp(prefix="ma-py-ext-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAL_AUTOMATA_")}
    env.update(
        {
            "METAL_AUTOMATA_DATA_DIR": data,
            "METAL_AUTOMATA_API__LISTEN": f"127.0.0.1:{port}",
            "METAL_AUTOMATA_REGISTRY__URL": service["url"],
            "METAL_AUTOMATA_COLLECTOR__LOCAL_HOST": "false",
        }
    )
    with open(os.path.join(data, "serve.log"), "w") as log:
        proc = subprocess.Popen([BIN, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/api/v1/status", proc=proc)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/schemas") as r:
                ours = {s["subject"]: s["id"] for s in json.loads(r.read())["schemas"]}
            registry = SchemaRegistryClient({"url": service["url"]})
            for subject, schema_id in ours.items():
                assert registry.get_latest_version(subject).schema_id == schema_id
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/subjects")
            except urllib.error.HTTPError as e:
                assert e.code == 404
            else:
                raise AssertionError("a service using an external registry serves its own")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
