"""Adapters behind the ports: local (folder, SQLite, local Spark) and AWS (S3, DynamoDB, EMR Serverless)."""
