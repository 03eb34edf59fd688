"""Fleet history in Delta Lake and SQL over it, checked by other engines: the Python deltalake
package, DuckDB and pyarrow read what `metal-automata serve` wrote and what `sql` answers."""

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import duckdb
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from conftest import BIN, free_port, wait_http


@contextlib.contextmanager
def service(data, max_age_secs=1):
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


def cli(url, *args):
    out = subprocess.run(
        [BIN, "--server", url, *args], capture_output=True, timeout=120, check=False
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
        assert set(table.column("kind").to_pylist()) <= {
            "UTILIZATION", "TEMPERATURE", "POWER", "FAN", "VOLTAGE", "OTHER"}

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
    positions = list(zip(table.column("_partition").to_pylist(), table.column("_offset").to_pylist()))
    assert len(positions) == len(set(positions)), "a restart duplicated rows"
    by_partition = {}
    for p, o in positions:
        by_partition.setdefault(p, []).append(o)
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"a gap in partition {p}"
