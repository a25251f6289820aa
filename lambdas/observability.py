"""Powertools Logger, Tracer and Metrics shared by the handlers (one service, one namespace;
the environment is a metric dimension added by each handler)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "datadominion"
NAMESPACE = "DataDominion"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
