"""Column types of the config mapped to Arrow and Spark SQL: one place for each mapping.

pyarrow is imported lazily: the Spark job imports this module and need not ship pyarrow.
"""

from __future__ import annotations

from typing import Any, Dict

# accounts_all keeps, beside the configured source columns, the key of the batch each record
# arrived in ('YYYY-MM/<batch id>'): provenance and the amended-history feed name it.
SOURCE_BATCH_COLUMN = "source_batch"

# Lower-cased, each is also the type's simpleString() in PySpark (how ingest compares schemas).
SPARK_SQL_TYPES: Dict[str, str] = {
    "bigint": "BIGINT",
    "int": "INT",
    "string": "STRING",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "double": "DOUBLE",
}


def arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {
        "bigint": pa.int64(),
        "int": pa.int32(),
        "string": pa.string(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "double": pa.float64(),
    }[kind]


def arrow_schema(types: Dict[str, str]) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(name, arrow_type(kind)) for name, kind in types.items()])
