"""Summarised months come from Iceberg metadata only (local SQL catalog)."""

from __future__ import annotations

from datadominion.catalog import load_pyiceberg_catalog, local_catalog_settings
from datadominion.months import format_month, parse_month
from datadominion.table_metadata import newest_summarised_month, summarised_months
from tests.support.iceberg_files import month_partitioned_table, opened_files


def test_months_from_metadata_without_opening_a_data_file(tmp_path):
    catalog = load_pyiceberg_catalog(local_catalog_settings(tmp_path))
    catalog.create_namespace("dd")
    months = [format_month(parse_month("2020-01") + i) for i in range(8)]
    table = month_partitioned_table(catalog, "dd.summary", list(reversed(months)))
    table.delete("rpt_as_of_mo = '2020-03'")  # a month whose rows are all gone is not summarised
    with opened_files() as paths:
        found = summarised_months(catalog, "dd.summary")
    assert found == [m for m in months if m != "2020-03"]
    assert paths and not [p for p in paths if p.endswith(".parquet")]
    assert newest_summarised_month(catalog, "dd.summary") == "2020-08"
    assert newest_summarised_month(catalog, "dd.absent") is None
    catalog.create_table("dd.empty", schema=table.schema(), partition_spec=table.spec())
    assert summarised_months(catalog, "dd.empty") == []


def test_live_rows_come_from_the_snapshot_summary(tmp_path):
    from datadominion.table_metadata import live_rows

    catalog = load_pyiceberg_catalog(local_catalog_settings(tmp_path))
    catalog.create_namespace("dd")
    month_partitioned_table(catalog, "dd.summary", ["2020-01", "2020-02"], rows_per_month=10)
    assert live_rows(catalog, "dd.summary") == 20
    assert live_rows(catalog, "dd.absent") is None
