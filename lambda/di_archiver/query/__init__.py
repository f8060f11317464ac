"""Querying the archive: one table/view definition for Athena (Glue) and local DuckDB.

``schema`` and ``catalog`` are pure Python so the CDK app can import them; ``local`` (DuckDB,
sqlglot) is imported lazily by the ``query`` command only and is never bundled into the Lambda.
"""
