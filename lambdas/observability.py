"""Powertools Logger, Tracer and Metrics shared by the handlers (one service, one namespace;
the environment is a metric dimension), and the one wrapper every handler goes through."""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from datadominion.telemetry import ENVIRONMENT_DIMENSION, NAMESPACE, SERVICE
from lambdas import wiring
from lambdas.settings import LambdaSettings

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Event = Dict[str, Any]
Task = Callable[[Event, LambdaSettings], Dict[str, Any]]
Handler = Callable[[Event, LambdaContext], Dict[str, Any]]


def task_handler(correlation_id: Optional[Callable[[Event], str]] = None, log_event: bool = True
                 ) -> Callable[[Task], Handler]:
    """Turn ``task(event, settings)`` into a Lambda handler: Powertools context, tracing and
    metric flushing, the environment dimension, and the correlation id taken from the event."""
    def wrap(task: Task) -> Handler:
        @logger.inject_lambda_context(log_event=log_event)
        @tracer.capture_lambda_handler
        @metrics.log_metrics
        @functools.wraps(task)
        def handler(event: Event, context: LambdaContext) -> Dict[str, Any]:
            settings = wiring.settings()
            metrics.add_dimension(name=ENVIRONMENT_DIMENSION, value=settings.environment)
            if correlation_id is not None:
                logger.set_correlation_id(correlation_id(event))
            return task(event, settings)
        return handler  # type: ignore[no-any-return]
    return wrap


def owner(event: Event) -> str:
    """The correlation id of the run-level tasks: the execution name that owns the lock."""
    return str(event["owner"])
