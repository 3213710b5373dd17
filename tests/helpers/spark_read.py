#!/usr/bin/env python3
"""Read an export's Parquet files with Spark (pyspark, local mode): the
Spark recipe of docs/analytics.md, run so that it cannot rot.

Usage: spark_read.py DIR DAY. Prints JSON: the count of sms.events, the
count per (dt, status), the column types of `at`, `status` and `dt`, and
the count of one day read with basePath (keeping dt).
"""

import json
import sys

from pyspark.sql import SparkSession


def main():
    dir, day = sys.argv[1], sys.argv[2]
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("smsflow-export-read")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        # The recipe, as docs/analytics.md gives it.
        df = spark.read.parquet(f"{dir}/topic=sms.events")   # discovers dt=... as a column
        by_day_status = df.groupBy("dt", "status").count().orderBy("dt", "status").collect()
        one_day = spark.read.option("basePath", dir).parquet(f"{dir}/topic=sms.events/dt={day}")
        types = dict(df.dtypes)
        print(json.dumps({
            "count": df.count(),
            "by_day_status": [[str(r["dt"]), r["status"], r["count"]] for r in by_day_status],
            "types": {k: types[k] for k in ("at", "status", "dt")},
            "one_day": one_day.count(),
            "one_day_dts": sorted({str(r["dt"]) for r in one_day.select("dt").distinct().collect()}),
        }))
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
