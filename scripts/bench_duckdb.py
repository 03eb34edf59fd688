"""DuckDB side of `metal-automata bench query`: times the same queries on the same Parquet files.

Reads {"files": [...], "view": "<SELECT ... FROM raw_telemetry>", "queries": [...], "runs": n} on
stdin and prints the best of n runs (three when not given) of each query, in ms, as a JSON list.
"""

import json
import sys
import time

import duckdb

spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
# No progress bar: it prints to stdout when a query runs past two seconds (large fleets, a busy
# machine), in front of the JSON answer.
con.execute("SET enable_progress_bar = false")
# A view cannot take a prepared parameter: the file list goes in as SQL string literals.
files = ", ".join("'" + f.replace("'", "''") + "'" for f in spec["files"])
con.execute(f"CREATE VIEW raw_telemetry AS SELECT * FROM read_parquet([{files}], hive_partitioning = true)")
con.execute("CREATE VIEW telemetry AS " + spec["view"])
out = []
for q in spec["queries"]:
    best = float("inf")
    for _ in range(spec.get("runs", 3)):
        t = time.perf_counter()
        con.execute(q).fetchall()
        best = min(best, (time.perf_counter() - t) * 1000.0)
    out.append(best)
json.dump(out, sys.stdout)
