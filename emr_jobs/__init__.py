"""PySpark jobs run on EMR Serverless (and locally): thin entrypoints over pure DataFrame transforms."""
