"""Read an `smsflow export` directory with the standard tools, print JSON.

    export_read.py parquet DIR   # DuckDB, pyarrow, pandas, chDB
    export_read.py avro DIR      # fastavro, chDB
    export_read.py count DIR     # DuckDB: count(*), count(distinct message_id)

No smsflow code: what a user of the files would run. The queries are the
ones docs/analytics.md shows (copied there verbatim), so that they cannot rot.
"""

import glob
import json
import os
import sys

# -- the documented queries (docs/analytics.md) ------------------------------

DUCKDB_EVENTS = """
SELECT dt, status, count(*) AS events, count(DISTINCT message_id) AS messages
FROM read_parquet('{dir}/topic=sms.events/*/*.parquet', hive_partitioning = true)
GROUP BY dt, status
ORDER BY dt, status
"""

DUCKDB_DELIVERY_RATE = """
SELECT connection.backend AS backend,
       round(100.0 * count(*) FILTER (WHERE status = 'delivered')
             / count(*) FILTER (WHERE status IN ('sent', 'delivered', 'failed')), 1) AS delivery_rate
FROM read_parquet('{dir}/topic=sms.events/*/*.parquet', hive_partitioning = true)
GROUP BY backend
"""

CHDB_EVENTS = """
SELECT status, count() AS events
FROM file('{dir}/topic=sms.events/*/*.parquet', Parquet)
GROUP BY status
ORDER BY status
"""

CHDB_AVRO = """
SELECT status, count() AS events
FROM file('{dir}/topic=sms.events/*/*.avro', 'Avro')
GROUP BY status
ORDER BY status
"""


def pandas_events(dir):
    import pandas as pd

    df = pd.read_parquet(f"{dir}/topic=sms.events")  # dt becomes a column
    return df.groupby("status").size()


def fastavro_events(dir):
    import fastavro

    rows = []
    for path in sorted(glob.glob(f"{dir}/topic=sms.events/*/*.avro")):
        with open(path, "rb") as f:
            rows.extend(fastavro.reader(f))
    return rows


# -- the checks ----------------------------------------------------------------


def parquet(dir):
    import chdb
    import duckdb
    import pyarrow.dataset as ds

    out = {}
    con = duckdb.connect()
    events = f"read_parquet('{dir}/topic=sms.events/*/*.parquet', hive_partitioning = true)"
    out["duckdb_count"] = con.execute(
        f"SELECT count(*), count(DISTINCT message_id) FROM {events}"
    ).fetchone()
    out["duckdb_types"] = {
        name: typ for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM {events}").fetchall()
    }
    out["duckdb_by_day_status"] = [
        list(map(str, r)) for r in con.execute(DUCKDB_EVENTS.format(dir=dir)).fetchall()
    ]
    out["duckdb_delivery_rate"] = [
        list(map(str, r)) for r in con.execute(DUCKDB_DELIVERY_RATE.format(dir=dir)).fetchall()
    ]
    row = con.execute(
        f"""SELECT message_id, status, epoch_ms("at"), strftime("at" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S'),
                   provider_id, campaign_id, connection.backend, connection.identity, segments, dt, topic
            FROM {events} WHERE message_id = 'm17'"""
    ).fetchone()
    out["duckdb_m17"] = [None if v is None else str(v) for v in row]
    out["duckdb_all_topics"] = con.execute(
        f"SELECT count(*) FROM read_parquet('{dir}/**/*.parquet', hive_partitioning = true, union_by_name = true)"
    ).fetchone()[0]
    inbound = f"read_parquet('{dir}/topic=sms.inbound/*/*.parquet', hive_partitioning = true)"
    out["duckdb_inbound"] = [
        list(map(str, r))
        for r in con.execute(
            f"SELECT id, fields['keyword'], connection.identity, typeof(fields) FROM {inbound} ORDER BY id"
        ).fetchall()
    ]
    table = ds.dataset(f"{dir}/topic=sms.events", format="parquet", partitioning="hive").to_table()
    out["pyarrow_rows"] = table.num_rows
    out["pyarrow_types"] = {f.name: str(f.type) for f in table.schema}
    by_status = pandas_events(dir)
    out["pandas_by_status"] = {k: int(v) for k, v in by_status.items()}
    out["chdb_by_status"] = chdb.query(CHDB_EVENTS.format(dir=dir), "CSV").data()
    out["chdb_count"] = chdb.query(
        f"SELECT count() FROM file('{dir}/topic=sms.events/*/*.parquet', Parquet)", "CSV"
    ).data().strip()
    return out


def avro(dir):
    import chdb
    import fastavro

    out = {}
    rows = fastavro_events(dir)
    out["fastavro_rows"] = len(rows)
    out["fastavro_distinct"] = len({r["message_id"] for r in rows})
    m17 = next(r for r in rows if r["message_id"] == "m17")
    out["fastavro_m17"] = {
        "status": m17["status"],
        "at": m17["at"].isoformat(),
        "provider_id": m17["provider_id"],
        "campaign_id": m17["campaign_id"],
        "identity": m17["connection"]["identity"],
    }
    codecs = set()
    for path in glob.glob(f"{dir}/topic=sms.events/*/*.avro"):
        with open(path, "rb") as f:
            codecs.add(fastavro.reader(f).codec)
    out["fastavro_codecs"] = sorted(codecs)
    out["chdb_by_status"] = chdb.query(CHDB_AVRO.format(dir=dir), "CSV").data()
    return out


def count(dir):
    import duckdb

    return duckdb.connect().execute(
        f"SELECT count(*), count(DISTINCT message_id) FROM read_parquet('{dir}/**/*.parquet', hive_partitioning = true)"
    ).fetchone()


if __name__ == "__main__":
    what, dir = sys.argv[1], os.path.abspath(sys.argv[2])
    result = {"parquet": parquet, "avro": avro, "count": count}[what](dir)
    print(json.dumps(result, default=str))
