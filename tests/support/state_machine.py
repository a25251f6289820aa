"""Run the synthesized state machine under moto's Step Functions interpreter (execute mode):

- its definition is the template's, with CloudFormation references replaced by the moto
  resources (functions by logical id, the alerts topic);
- Lambda invokes are routed in-process to the real handlers named in the template;
- ``emr-serverless:startJobRun.sync`` (which moto does not execute) is served by
  :class:`FakeEmrServerless`: idempotent per ClientToken like the real service, it plays the
  job's visible effects (the result object, the summary table's new months) or fails on demand.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Dict, Iterator, List, Optional, Set
from urllib.parse import urlparse

from tests.support.aws import ACCOUNT, REGION, FakeLambdaContext
from tests.support.iam import CallRecorder

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}


def resolve(node: Any, refs: Dict[str, str]) -> Any:
    """Evaluate the intrinsic functions a DefinitionString uses (Fn::Join, Ref, Fn::GetAtt)."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return [resolve(n, refs) for n in node]
    if "Fn::Join" in node:
        separator, parts = node["Fn::Join"]
        return separator.join(str(resolve(p, refs)) for p in parts)
    if "Ref" in node:
        return PSEUDO.get(node["Ref"]) or refs[node["Ref"]]
    if "Fn::GetAtt" in node:
        return refs[node["Fn::GetAtt"][0]]
    raise ValueError(f"unsupported intrinsic in the definition: {node}")


def function_arn(logical_id: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"


def handlers_by_function(template: Dict[str, Any]) -> Dict[str, Callable[..., Any]]:
    """logical id -> the handler callable the template's function names (e.g. lambdas.plan.handler)."""
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function" and str(resource["Properties"].get("Handler", "")).startswith(
                "lambdas."):
            module, _, attribute = resource["Properties"]["Handler"].rpartition(".")
            found[logical_id] = getattr(importlib.import_module(module), attribute)
    return found


class FakeEmrServerless:
    """Job runs keyed by ClientToken (as EMR Serverless dedupes them); a job's effects are
    played by ``effects(step_json, result_uri) -> (state, details)``."""

    def __init__(self, effects: Callable[[Dict[str, Any], str], tuple[str, str]]):
        self.effects = effects
        self.runs: Dict[str, Dict[str, Any]] = {}
        self.requests: List[Dict[str, Any]] = []
        self._lock = threading.Lock()

    def start(self, params: Dict[str, Any]) -> Dict[str, Any]:
        with self._lock:
            self.requests.append(params)
            token = params["ClientToken"]
            if token not in self.runs:
                args = params["JobDriver"]["SparkSubmit"]["EntryPointArguments"]
                step = json.loads(args[args.index("--step") + 1])
                state, details = self.effects(step, args[args.index("--result-uri") + 1])
                run_id = f"00f{len(self.runs):013d}"
                self.runs[token] = {"ApplicationId": params["ApplicationId"], "JobRunId": run_id,
                                    "Arn": f"arn:aws:emr-serverless:{REGION}:{ACCOUNT}:/applications/"
                                           f"{params['ApplicationId']}/jobruns/{run_id}",
                                    "State": state, "StateDetails": details, "Step": step}
            return self.runs[token]

    @property
    def jobs(self) -> List[Dict[str, Any]]:
        """Distinct job runs started, in order."""
        return list(self.runs.values())


def _emr_service_class(fake: FakeEmrServerless) -> Any:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    class EmrServerlessSyncService(StateTaskServiceCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(supported_integration_patterns={ResourceCondition.Sync})

        def _get_supported_parameters(self) -> Optional[Set[str]]:
            return {"ApplicationId", "ClientToken", "ExecutionRoleArn", "Name", "JobDriver",
                    "ConfigurationOverrides", "ExecutionTimeoutMinutes", "Tags", "ExecutionIamPolicy", "Mode",
                    "RetryPolicy"}

        def _eval_service_task(self, env: Any, resource_runtime_part: Any, normalised_parameters: Dict[str, Any],
                               state_credentials: Any) -> None:
            env.stack.append(fake.start(normalised_parameters))

        def _eval_integration_pattern(self, env: Any, resource_runtime_part: Any,
                                      normalised_parameters: Dict[str, Any], state_credentials: Any) -> None:
            run = dict(env.stack.pop())
            run.pop("Step", None)
            if run["State"] == "SUCCESS":
                env.stack.append(run)
                return
            raise FailureEventException(FailureEvent(
                env=env, error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type(),
                    error=StatesErrorNameType.StatesTaskFailed.to_name(), cause=to_json_str(run)))))

    return EmrServerlessSyncService


@contextmanager
def routed(template: Dict[str, Any], fake_emr: FakeEmrServerless, recorder: Optional[CallRecorder] = None
           ) -> Iterator[None]:
    """Route the interpreter's Lambda invokes to the template's handlers and its emr-serverless
    tasks to ``fake_emr`` (in this process: the moto server runs in a thread of it). With a
    ``recorder``, each handler's AWS calls are recorded as made by that function's role."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils, state_task_factory

    handlers = handlers_by_function(template)
    roles = {lid: template["Resources"][lid]["Properties"]["Role"]["Fn::GetAtt"][0] for lid in handlers}

    def invoke(parameters: Dict[str, Any], region: str, state_credentials: Any) -> Dict[str, Any]:
        logical_id = str(parameters["FunctionName"]).split(":function:")[1].split(":")[0]
        payload = parameters.get("Payload")
        if isinstance(payload, (bytes, str)):
            payload = json.loads(payload)
        try:
            with recorder.acting_as(roles[logical_id]) if recorder else nullcontext():
                return {"StatusCode": 200, "Payload": handlers[logical_id](payload, FakeLambdaContext())}
        except Exception as exc:  # what Lambda returns for an unhandled error
            return {"StatusCode": 200, "FunctionError": "Unhandled",
                    "Payload": {"errorType": type(exc).__name__, "errorMessage": str(exc)}}

    original_invoke = lambda_eval_utils._invoke_lambda_function
    original_factory = state_task_factory.state_task_service_for
    service_class = _emr_service_class(fake_emr)

    def service_for(service_name: str) -> Any:
        return service_class() if service_name == "emr-serverless" else original_factory(service_name)

    lambda_eval_utils._invoke_lambda_function = invoke
    state_task_factory.state_task_service_for = service_for
    try:
        yield
    finally:
        lambda_eval_utils._invoke_lambda_function = original_invoke
        state_task_factory.state_task_service_for = original_factory


def wait_for(sfn: Any, execution_arn: str, timeout: float = 120.0) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.2)
    history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    raise TimeoutError(f"execution {execution_arn} still RUNNING after {timeout}s; last events: "
                       f"{[{k: v for k, v in e.items() if k not in ('timestamp',)} for e in history[-4:]]}")


def states_entered(sfn: Any, execution_arn: str) -> List[str]:
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def s3_location(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")
