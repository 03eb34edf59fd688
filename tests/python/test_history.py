"""Fleet history in Delta Lake and SQL over it, checked by other engines: the Python deltalake
package, DuckDB and pyarrow read what `metal-automata serve` wrote and what `sql` answers."""

import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import duckdb
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from conftest import BIN, free_port, tail, wait_http


@contextlib.contextmanager
def service(data, max_age_secs=1, extra_env=None):
    """`metal-automata serve` on the embedded log; stopped with SIGTERM, which must exit 0."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAL_AUTOMATA_")}
    env.update(
        {
            "METAL_AUTOMATA_DATA_DIR": data,
            "METAL_AUTOMATA_API__LISTEN": f"127.0.0.1:{port}",
            "METAL_AUTOMATA_COLLECTOR__INTERVAL_SECS": "1",
            "METAL_AUTOMATA_HISTORY__MAX_AGE_SECS": str(max_age_secs),
        }
    )
    env.update(extra_env or {})
    log_path = os.path.join(data, "serve.log")
    with open(log_path, "a") as log:
        proc = subprocess.Popen([BIN, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/api/v1/status", proc=proc, log_path=log_path)
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0


def sql(url, query, arrow=False):
    """POST /api/v1/sql; returns (status, parsed body)."""
    req = urllib.request.Request(
        url + "/api/v1/sql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Accept": "application/vnd.apache.arrow.stream"} if arrow else {}),
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            if arrow:
                return r.status, pa.ipc.open_stream(body).read_all()
            return r.status, json.loads(body)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def cli(url, *args, env=None):
    out = subprocess.run(
        [BIN, "--server", url, *args], capture_output=True, timeout=120, check=False, env=env
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def wait_rows(url, query, want=1, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, body = sql(url, query)
        assert status == 200, body
        if body["rows"] and list(body["rows"][0].values())[0] >= want:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{query}: fewer than {want} rows after {timeout} s")


def test_history_tables_and_sql_read_the_same_in_deltalake_duckdb_and_pyarrow():
    data = tempfile.mkdtemp(prefix="ma-history-")
    path = os.path.join(data, "storage", "history", "telemetry.readings")
    with service(data) as url:
        wait_rows(url, "SELECT count(*) AS n FROM telemetry", want=20)
        deadline = time.time() + 30
        while not os.path.isdir(os.path.join(path, "_delta_log")) and time.time() < deadline:
            time.sleep(0.5)

        # The Delta table, read by delta-rs' Python binding: typed columns following the Avro schema.
        dt = DeltaTable(path)
        assert dt.metadata().partition_columns == ["date"]
        table = dt.to_pyarrow_table()
        assert table.num_rows > 0
        schema = table.schema
        assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
        assert schema.field("value").type == pa.float64()
        assert schema.field("server_id").type in (pa.string(), pa.large_string(), pa.string_view())
        assert schema.field("_offset").type == pa.int64()
        # Avro enums are stored as lower-case words; the symbols stay in the field metadata.
        assert set(table.column("kind").to_pylist()) <= {
            "utilization", "temperature", "power", "fan", "voltage", "other"}

        # DuckDB over exactly the Parquet files the Delta log lists: the same rows, one per log position.
        files = dt.file_uris()
        con = duckdb.connect()
        n, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (_partition, _offset)) "
            "FROM read_parquet(?, hive_partitioning = true)", [files]).fetchone()
        assert n == table.num_rows == distinct
        dates = con.execute(
            "SELECT DISTINCT date FROM read_parquet(?, hive_partitioning = true)", [files]).fetchall()
        assert dates and all(len(str(d[0])) == 10 for d in dates)

        # SQL sees at least what is in the table (plus the unwritten tail), in JSON and in Arrow.
        status, body = sql(url, "SELECT count(*) AS n FROM raw.telemetry_readings")
        assert status == 200 and body["rows"][0]["n"] >= n
        status, answer = sql(url, "SELECT server_id, kind, value, \"timestamp\" FROM telemetry "
                                  "ORDER BY \"timestamp\" DESC LIMIT 5", arrow=True)
        assert status == 200 and answer.num_rows == 5
        assert answer.schema.field("value").type == pa.float64()
        assert answer.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
        assert set(answer.column("kind").to_pylist()) <= {
            "utilization", "temperature", "power", "fan", "voltage", "other"}

        # Operator tables answer the README's kind of question.
        status, body = sql(url, "SELECT server_id, health, bios_version FROM servers")
        assert status == 200 and len(body["rows"]) >= 1, body
        status, body = sql(url, "SELECT server_id, avg(value) AS avg FROM telemetry "
                                "WHERE kind = 'temperature' AND \"timestamp\" > now() - INTERVAL '1 day' "
                                "GROUP BY server_id")
        assert status == 200, body

        # A bad query gets the planner's message and a 400; writes are refused the same way.
        status, body = sql(url, "SELECT nope FROM telemetry")
        assert status == 400 and body["error"]["code"] == "bad_query"
        assert "nope" in body["error"]["message"]
        status, body = sql(url, "SELEC 1")
        assert status == 400, body
        status, body = sql(url, "CREATE TABLE x AS SELECT 1")
        assert status == 400, body
        status, body = sql(url, "SELECT * FROM no_such_table")
        assert status == 400 and "no_such_table" in body["error"]["message"]

        # The CLI: table, CSV and Parquet answers; export for analytics stacks.
        assert b"server_id" in cli(url, "sql", "SELECT server_id FROM servers")
        rows = list(csv.DictReader(io.StringIO(cli(
            url, "sql", "SELECT sensor, value FROM telemetry LIMIT 3", "--output", "csv").decode())))
        assert len(rows) == 3 and float(rows[0]["value"]) == float(rows[0]["value"])
        out = os.path.join(data, "answer.parquet")
        cli(url, "sql", "SELECT * FROM telemetry", "--output", "parquet", "--out", out)
        assert pq.read_table(out).num_rows >= n
        report = json.loads(cli(url, "export", "telemetry", "--to", os.path.join(data, "export"),
                                "--since", "1h", "--output", "json"))
        exported = con.execute("SELECT count(*) FROM read_parquet(?)",
                               [os.path.join(data, "export", "telemetry", "*.parquet")]).fetchone()[0]
        assert exported == report["rows"] >= n


def test_unwritten_readings_are_visible_and_a_restart_neither_loses_nor_duplicates():
    data = tempfile.mkdtemp(prefix="ma-history-")
    path = os.path.join(data, "storage", "history", "telemetry.readings")
    # Nothing is flushed for an hour: SQL still sees the readings, from the log's tail.
    with service(data, max_age_secs=3600) as url:
        wait_rows(url, "SELECT count(*) AS n FROM telemetry", want=10)
        assert not os.path.isdir(os.path.join(path, "_delta_log"))
    # Shutdown wrote everything out.
    first = DeltaTable(path).to_pyarrow_table().num_rows
    assert first >= 10
    with service(data) as url:
        wait_rows(url, "SELECT count(*) AS n FROM telemetry", want=first + 10)
    table = DeltaTable(path).to_pyarrow_table()
    assert table.num_rows > first
    assert_exactly_once(table)


def assert_exactly_once(table, from_low_watermark=False):
    """One row per log position, and no gap in any partition (counted from offset 0, or from
    the first offset held when the log had records before the table began)."""
    positions = list(zip(table.column("_partition").to_pylist(), table.column("_offset").to_pylist()))
    assert len(positions) == len(set(positions)), "a row was written twice"
    by_partition = {}
    for p, o in positions:
        by_partition.setdefault(p, []).append(o)
    for p, offsets in by_partition.items():
        first = min(offsets) if from_low_watermark else 0
        assert sorted(offsets) == list(range(first, first + len(offsets))), f"a gap in partition {p}"


@contextlib.contextmanager
def moto_s3():
    """moto's S3 API server on a loopback port: a real S3 protocol peer, not our mock."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "moto server did not start"
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "metal-test", "AWS_SECRET_ACCESS_KEY": "metal-test-secret",
                  "AWS_REGION": "us-east-1"}


def test_history_on_s3_is_exactly_once_and_readable_by_deltalake_and_duckdb():
    import boto3

    with moto_s3() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, **{
            "aws_access_key_id": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "region_name": "us-east-1"})
        s3.create_bucket(Bucket="fleet")
        env = {
            **S3_CREDENTIALS,
            "METAL_AUTOMATA_STORAGE__URL": "s3://fleet/lab",
            "METAL_AUTOMATA_STORAGE__S3__ENDPOINT": endpoint,
            "METAL_AUTOMATA_STORAGE__S3__ALLOW_HTTP": "true",
        }
        data = tempfile.mkdtemp(prefix="ma-s3-")
        uri = "s3://fleet/lab/history/telemetry.readings"
        options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true",
                   "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                   "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                   "AWS_REGION": "us-east-1"}
        with service(data, extra_env=env) as url:
            wait_rows(url, "SELECT count(*) AS n FROM telemetry", want=20)
            deadline = time.time() + 30
            while time.time() < deadline:
                listed = s3.list_objects_v2(Bucket="fleet", Prefix="lab/history/telemetry.readings/_delta_log/")
                if listed.get("KeyCount", 0) > 0:
                    break
                time.sleep(0.5)
            # The service's SQL reads the S3 table (plus the tail).
            status, body = sql(url, "SELECT count(*) AS n FROM raw.telemetry_readings")
            assert status == 200, body
            # export straight to the bucket, with the same storage settings as the service
            cli_env = {k: v for k, v in os.environ.items() if not k.startswith("METAL_AUTOMATA_")}
            cli_env.update({**env, "METAL_AUTOMATA_DATA_DIR": data})
            report = json.loads(cli(url, "export", "telemetry", "--to", "s3://fleet/exports",
                                    "--output", "json", env=cli_env))
            assert report["file"].startswith("s3://fleet/exports/telemetry/part-")
            assert report["rows"] > 0
        # The restart resumes from the offsets in the S3 table's own commits.
        with service(data, extra_env=env) as url:
            before = DeltaTable(uri, storage_options=options).to_pyarrow_table().num_rows
            wait_rows(url, "SELECT count(*) AS n FROM telemetry", want=before + 10)
        dt = DeltaTable(uri, storage_options=options)
        assert dt.metadata().partition_columns == ["date"]
        table = dt.to_pyarrow_table()
        assert table.num_rows > before
        assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
        assert table.schema.field("value").type == pa.float64()
        assert_exactly_once(table)

        # DuckDB over the very Parquet files the Delta log lists (fetched from the bucket).
        local = tempfile.mkdtemp(prefix="ma-s3-files-")
        files = []
        for file_uri in dt.file_uris():
            key = file_uri.removeprefix("s3://fleet/")
            dest = os.path.join(local, key)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            s3.download_file("fleet", key, dest)
            files.append(dest)
        con = duckdb.connect()
        n, distinct, days, total = con.execute(
            "SELECT count(*), count(DISTINCT (_partition, _offset)), count(DISTINCT date), "
            "sum(value) FROM read_parquet(?, hive_partitioning = true)", [files]).fetchall()[0]
        assert n == distinct == table.num_rows and days >= 1
        # and DuckDB over the Arrow data deltalake read: the same rows.
        con.register("deltalake_rows", table)
        (arrow_n, arrow_total), = con.execute(
            "SELECT count(*), sum(value) FROM deltalake_rows").fetchall()
        assert arrow_n == n and abs(arrow_total - total) <= 1e-9 * max(1.0, abs(total))

        # The export is a plain Parquet object every engine reads.
        key = report["file"].removeprefix("s3://fleet/")
        dest = os.path.join(local, "export.parquet")
        s3.download_file("fleet", key, dest)
        assert pq.read_table(dest).num_rows == report["rows"]


def test_history_members_hand_partitions_over_on_kafka_without_duplicates_or_gaps(kafka_brokers):
    """Sink members join, leave and crash while readings flow: each resumes from the offsets in
    the Delta table's own commits, and the table holds every position exactly once."""
    root = tempfile.mkdtemp(prefix="ma-rebalance-")
    storage = os.path.join(root, "storage")
    path = os.path.join(storage, "history", "telemetry.readings")
    prefix = f"rebalance-{uuid.uuid4().hex[:8]}."
    procs = {}

    def start(name, *roles):
        data = os.path.join(root, name)
        os.makedirs(data)
        env = {k: v for k, v in os.environ.items() if not k.startswith("METAL_AUTOMATA_")}
        env.update({
            "METAL_AUTOMATA_DATA_DIR": data,
            "METAL_AUTOMATA_LOG__BACKEND": "kafka",
            "METAL_AUTOMATA_LOG__KAFKA__BROKERS": kafka_brokers,
            "METAL_AUTOMATA_LOG__KAFKA__REPLICATION_FACTOR": "1",
            "METAL_AUTOMATA_LOG__KAFKA__GROUP_PREFIX": prefix,
            "METAL_AUTOMATA_STORAGE__URL": storage,
            "METAL_AUTOMATA_HISTORY__MAX_AGE_SECS": "1",
            "METAL_AUTOMATA_COLLECTOR__INTERVAL_SECS": "1",
            "METAL_AUTOMATA_API__LISTEN": f"127.0.0.1:{free_port()}",
        })
        args = [a for r in roles for a in ("--role", r)]
        log_path = os.path.join(data, "serve.log")
        log = open(log_path, "w")
        procs[name] = (subprocess.Popen([BIN, "serve", *args], env=env, stdout=log,
                                        stderr=subprocess.STDOUT), log_path)

    def rows():
        if not os.path.isdir(os.path.join(path, "_delta_log")):
            return 0
        return DeltaTable(path).to_pyarrow_table().num_rows

    def grow(by, timeout=60):
        want = rows() + by
        deadline = time.time() + timeout
        while rows() < want:
            for name, (p, log_path) in procs.items():
                assert p.poll() is None or p.returncode == 0 or name == "sink-2", \
                    f"{name} died:\n{tail(log_path)}"
            assert time.time() < deadline, "history stopped growing:\n" + "\n".join(
                f"--- {n} ---\n{tail(l)}" for n, (_, l) in procs.items())
            time.sleep(0.5)

    def stop(name, sig=signal.SIGTERM):
        p, log_path = procs[name]
        p.send_signal(sig)
        code = p.wait(timeout=60)
        assert sig != signal.SIGTERM or code == 0, f"{name} exited {code}:\n{tail(log_path)}"

    try:
        start("collector", "collector")
        start("sink-1", "sink")
        grow(10)
        start("sink-2", "sink")
        grow(10)
        stop("sink-1")  # leaves the group: sink-2 takes its partitions from the table's offsets
        grow(10)
        stop("sink-2", signal.SIGKILL)  # a crash: nothing flushed, nothing committed to the group
        start("sink-3", "sink")
        grow(10)
        stop("collector")
        stop("sink-3")
    finally:
        for p, _ in procs.values():
            if p.poll() is None:
                p.kill()
    assert_exactly_once(DeltaTable(path).to_pyarrow_table(), from_low_watermark=True)
    logs = "".join(open(l).read() for _, l in procs.values())
    assert "history resumes from the tables' offsets" in logs
