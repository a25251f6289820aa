from datadominion.catalog import load_pyiceberg_catalog
from datadominion.spark_session import verify_iceberg


def test_spark_iceberg_table_is_read_back_by_pyiceberg(spark, catalog_settings):
    assert verify_iceberg(spark, catalog_settings).startswith("1.10")
    spark.sql("CREATE NAMESPACE IF NOT EXISTS datadominion.stack")
    spark.sql("CREATE TABLE IF NOT EXISTS datadominion.stack.t (k BIGINT, m STRING) USING iceberg PARTITIONED BY (m)")
    spark.sql("INSERT INTO datadominion.stack.t VALUES (1, '2024-01'), (2, '2024-02')")
    table = load_pyiceberg_catalog(catalog_settings).load_table("stack.t")
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["k"]) == [
        {"k": 1, "m": "2024-01"}, {"k": 2, "m": "2024-02"}]
    assert sorted(p["partition"]["m"] for p in table.inspect.partitions().to_pylist()) == ["2024-01", "2024-02"]
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
