"""The statistics recomputed by DuckDB SQL over an export (Parquet, Hive
layout `topic=<topic>/dt=YYYY-MM-DD/*.parquet`), window by window: the
oracle the `analytics` stage's `sms.stats` is checked against.

    python analytics_oracle.py EXPORT_DIR [--inbound sms.inbound]
        [--events sms.events] [--apps sms.app.] [--windows minute,hour,day]

Prints one JSON object per line: window, start (ms), dimension, value and
the counts (inbound, outbound, queued, sent, delivered, failed, expired,
suppressed, segments) and the latency histograms' count and sum
(a2s_count, a2s_sum, s2d_count, s2d_sum). The definitions are those of
src/analytics/observe.rs, written again in SQL; late events (after a
window's end plus the grace) are not modelled: give it data without them.
"""

import argparse
import glob
import json
import os
import sys

import duckdb

LENGTHS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
COUNTS = [
    "inbound", "outbound", "queued", "sent", "delivered", "failed", "expired",
    "suppressed", "segments", "a2s_count", "a2s_sum", "s2d_count", "s2d_sum",
]


def files(export, topic_glob):
    return sorted(glob.glob(os.path.join(export, f"topic={topic_glob}", "**", "*.parquet"), recursive=True))


def relation(con, name, paths):
    """A view `name` over `paths` (None when there are none)."""
    if not paths:
        return None
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true, union_by_name = true)")
    return name


def millis(con, view, column):
    """SQL for `column` of `view` in ms since the epoch, whether the export
    wrote a TIMESTAMP or a BIGINT."""
    row = con.execute(f"SELECT typeof({column}) FROM {view} LIMIT 1").fetchone()
    if row is not None and row[0].upper().startswith("TIMESTAMP"):
        return f"epoch_ms({column})"
    return f"CAST({column} AS BIGINT)"


def zeros(except_):
    return ", ".join(f"0 AS {c}" for c in COUNTS if c not in except_)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("--inbound", default="sms.inbound")
    ap.add_argument("--events", default="sms.events")
    ap.add_argument("--apps", default="sms.app.")
    ap.add_argument("--windows", default="minute,hour,day")
    a = ap.parse_args()

    con = duckdb.connect()
    facts = []
    ev = relation(con, "ev", files(a.export, a.events))
    if ev:
        t = millis(con, "ev", "\"at\"")
        con.execute(f"""
            CREATE VIEW ev_counts AS
            SELECT {t} AS t,
                   connection.backend AS backend, app, campaign_id,
                   0 AS inbound,
                   CAST(NOT coalesce(report, false) AND status IN ('sent', 'delivered', 'failed', 'suppressed') AS BIGINT) AS outbound,
                   CAST(NOT coalesce(report, false) AND status = 'queued' AS BIGINT) AS queued,
                   CAST(NOT coalesce(report, false) AND status IN ('sent', 'delivered') AS BIGINT) AS sent,
                   CAST(status = 'delivered' AS BIGINT) AS delivered,
                   CAST(status = 'failed' AS BIGINT) AS failed,
                   CAST(status = 'expired' AS BIGINT) AS expired,
                   CAST(status = 'suppressed' AS BIGINT) AS suppressed,
                   CASE WHEN NOT coalesce(report, false) AND status IN ('sent', 'delivered') THEN greatest(segments, 0) ELSE 0 END AS segments,
                   CAST(NOT coalesce(report, false) AND status IN ('sent', 'delivered') AND accepted_at > 0 AS BIGINT) AS a2s_count,
                   CASE WHEN NOT coalesce(report, false) AND status IN ('sent', 'delivered') AND accepted_at > 0
                        THEN greatest({t} - accepted_at, 0) ELSE 0 END AS a2s_sum,
                   CAST(status = 'delivered' AND sent_at > 0 AS BIGINT) AS s2d_count,
                   CASE WHEN status = 'delivered' AND sent_at > 0 THEN greatest({t} - sent_at, 0) ELSE 0 END AS s2d_sum
            FROM ev""")
        cols = ", ".join(COUNTS)
        facts += [
            f"SELECT t, 'total' AS dimension, '' AS value, {cols} FROM ev_counts",
            f"SELECT t, 'backend', backend, {cols} FROM ev_counts",
            f"SELECT t, 'app', app, {cols} FROM ev_counts WHERE app IS NOT NULL AND app <> ''",
            f"SELECT t, 'campaign', campaign_id, {cols} FROM ev_counts WHERE campaign_id IS NOT NULL AND campaign_id <> ''",
        ]
    inb = relation(con, "inb", files(a.export, a.inbound))
    if inb:
        t = millis(con, "inb", "\"received_at\"")
        # RapidSMS's keyword: the first word (up to whitespace or , ; :), upper-cased, 32 characters at most.
        con.execute(f"""
            CREATE VIEW inb_facts AS
            SELECT {t} AS t, connection.backend AS backend,
                   nullif(upper(left(regexp_extract(ltrim(text), '^[^\\s,;:]+'), 32)), '') AS keyword
            FROM inb""")
        z = zeros({"inbound"})
        facts += [
            f"SELECT t, 'total', '', 1 AS inbound, {z} FROM inb_facts",
            f"SELECT t, 'backend', backend, 1 AS inbound, {z} FROM inb_facts",
            f"SELECT t, 'keyword', keyword, 1 AS inbound, {z} FROM inb_facts WHERE keyword IS NOT NULL",
        ]
    routed = relation(con, "routed", files(a.export, a.apps + "*"))
    if routed:
        t = millis(con, "routed", "\"message\".received_at")
        z = zeros({"inbound"})
        facts.append(f"SELECT {t} AS t, 'app', app, 1 AS inbound, {z} FROM routed")
    if not facts:
        sys.exit(f"{a.export}: no Parquet files of {a.inbound}, {a.events} or {a.apps}*")

    windows = [w for w in a.windows.split(",") if w]
    for w in windows:
        if w not in LENGTHS:
            sys.exit(f"--windows: {w!r} is not one of {', '.join(LENGTHS)}")
    values = ", ".join(f"('{w}', {LENGTHS[w]})" for w in windows)
    sums = ", ".join(f"sum({c})::BIGINT AS {c}" for c in COUNTS)
    sql = f"""
        WITH facts AS ({' UNION ALL '.join(facts)}),
             windows(win, len) AS (VALUES {values})
        SELECT win AS "window", t - t % len AS start, dimension, value, {sums}
        FROM facts CROSS JOIN windows
        GROUP BY ALL
        ORDER BY ALL"""
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    for row in cur.fetchall():
        print(json.dumps(dict(zip(names, row))))


if __name__ == "__main__":
    main()
