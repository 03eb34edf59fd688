"""Confluent's own Python client reads what Metal Automata produced, through our registry."""

import json
import time
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
