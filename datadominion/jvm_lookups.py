"""Fewer py4j round trips per column a step builds.

Every ``pyspark.sql.functions`` call (``F.col``, ``F.lit``, ``F.when``, a column named by a
string) looks the class ``functions`` up through the session's JVM view and then its static
method on the class, each a reflection request over the py4j socket, before the call itself:
three round trips where one does the work. A step builds thousands of columns (a one-record
step made ~12,000 py4j calls, ~3,800 of them these lookups; docs/benchmarks.md, fifteenth).
The classes pyspark reaches this way on every column or list it passes are resolved once and
their static methods kept (docs/decisions.md, "Static JVM lookups resolved once").
"""

from __future__ import annotations

from typing import Any, Tuple

from py4j.java_gateway import JavaClass, JavaMember
from py4j.protocol import Py4JError

# Classes pyspark 3.5 looks up through ``SparkContext._jvm`` per column, list or session read.
STATIC_CLASSES: Tuple[str, ...] = ("functions", "PythonUtils", "SparkSession", "SparkSession$")


class RememberedMethods(JavaClass):
    """A JVM class whose static methods, once looked up, are kept: py4j's handle of a static
    method holds only the class and method names, so one serves every later call (py4j keeps
    an object's method handles the same way). A field is read anew each time (its value may
    change)."""

    def __getattr__(self, name: str) -> Any:
        member = super().__getattr__(name)
        if isinstance(member, JavaMember):
            self.__dict__[name] = member  # found by plain attribute lookup from now on
        return member


def remember_static_lookups(spark: Any) -> None:
    """Resolve STATIC_CLASSES once in ``spark``'s JVM view (shared by every session of the
    process) and keep their static methods. A class the view cannot resolve is left alone."""
    view = spark.sparkContext._jvm
    for name in STATIC_CLASSES:
        if isinstance(view.__dict__.get(name), RememberedMethods):
            continue
        try:
            found = getattr(view, name)  # through the view's imports, as pyspark resolves it
        except Py4JError:
            continue
        if isinstance(found, JavaClass):
            setattr(view, name, RememberedMethods(found._fqn, found._gateway_client))
