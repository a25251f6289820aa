"""IAM sufficiency, checked against the synthesized template rather than assumed.

Three parts:

* :class:`Deployment` reads a template: each role's identity policy, with CloudFormation
  intrinsics resolved to concrete ARNs (the moto resource names where a test created one),
  and which KMS key encrypts each bucket, table and topic.
* :func:`needs` turns one AWS request the code made (service, operation, parameters) into
  the IAM actions, resources and condition keys AWS authorizes it against, including the
  KMS use an encrypted bucket, table or topic implies (AWS docs: S3 SSE-KMS needs
  kms:GenerateDataKey to write and kms:Decrypt to read; a DynamoDB table under a customer
  managed key needs kms:Decrypt and kms:DescribeKey from its callers; publishing to an
  encrypted SNS topic needs kms:GenerateDataKey* and kms:Decrypt).
* :func:`allowed` evaluates identity-policy Allow statements (action and resource
  wildcards; StringEquals/StringLike/ArnLike conditions) for one need.

:class:`CallRecorder` records every botocore request made in this process (boto3 and
aiobotocore, i.e. s3fs under pyiceberg) with the role it is made for; the state-machine
harness says which role that is while a Lambda handler runs.
"""

from __future__ import annotations

import contextvars
import fnmatch
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from tests.support.aws import ACCOUNT, REGION

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com",
          "AWS::StackName": "DataDominion-test", "AWS::NoValue": ""}


@dataclass(frozen=True)
class Need:
    """One authorization AWS makes for a request: an action on a resource with condition keys."""

    action: str
    resource: str
    context: Tuple[Tuple[str, str], ...] = ()

    def __str__(self) -> str:
        extra = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{extra}"


@dataclass
class Call:
    principal: Optional[str]  # logical id of the role the request is made with (None: not ours)
    service: str
    operation: str
    params: Dict[str, Any]


class Deployment:
    """The template's roles and encryption keys with intrinsics resolved.

    ``names``: logical id -> physical name of resources a test created under moto (buckets,
    the ledger table, the EMR application id); everything else gets a name derived from
    its logical id, used consistently on both sides of every check.
    """

    def __init__(self, template: Dict[str, Any], names: Mapping[str, str], region: str = REGION):
        self.template, self.resources = template, template["Resources"]
        self.names = dict(names)
        self.region = region
        self.pseudo = {**PSEUDO, "AWS::Region": region}

    # --- intrinsics -----------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        if isinstance(node, (str, int, float, bool)) or node is None:
            return node
        if isinstance(node, list):
            return [self.resolve(n) for n in node]
        if "Ref" in node:
            return self.ref(node["Ref"])
        if "Fn::GetAtt" in node:
            lid, attribute = node["Fn::GetAtt"]
            return self.attribute(lid, attribute)
        if "Fn::Join" in node:
            separator, parts = node["Fn::Join"]
            return separator.join(str(self.resolve(p)) for p in parts)
        if "Fn::Sub" in node:
            text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
            for pseudo, value in self.pseudo.items():
                text = text.replace("${" + pseudo + "}", value)
            return text
        if "Fn::Select" in node:
            index, values = node["Fn::Select"]
            return self.resolve(values)[int(index)]
        if "Fn::Split" in node:
            separator, value = node["Fn::Split"]
            return str(self.resolve(value)).split(separator)
        return {k: self.resolve(v) for k, v in node.items()}

    def name(self, lid: str) -> str:
        return self.names.get(lid, lid)

    def ref(self, lid: str) -> str:
        if lid in self.pseudo:
            return self.pseudo[lid]
        kind = self.resources[lid]["Type"]
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{self.region}:{ACCOUNT}:{self.name(lid)}"
        if kind == "AWS::StepFunctions::StateMachine":
            return f"arn:aws:states:{self.region}:{ACCOUNT}:stateMachine:{self.name(lid)}"
        return self.name(lid)

    def attribute(self, lid: str, attribute: str) -> str:
        kind, name = self.resources[lid]["Type"], self.name(lid)
        if attribute != "Arn":
            return name
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{name}",
            "AWS::KMS::Key": f"arn:aws:kms:{self.region}:{ACCOUNT}:key/{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:"
                                   f"{self.resources[lid]['Properties'].get('LogGroupName', name)}:*",
            "AWS::EMRServerless::Application": f"arn:aws:emr-serverless:{self.region}:{ACCOUNT}:/applications/{name}",
        }
        return arns.get(kind, f"arn:aws:unknown:{self.region}:{ACCOUNT}:{name}")

    # --- what the template says ----------------------------------------------------------
    def role_statements(self, role_lid: str) -> List[Dict[str, Any]]:
        statements: List[Dict[str, Any]] = []
        for resource in self.resources.values():
            if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_lid} in resource["Properties"]["Roles"]:
                statements += resource["Properties"]["PolicyDocument"]["Statement"]
        for policy in self.resources[role_lid]["Properties"].get("Policies", []):
            statements += policy["PolicyDocument"]["Statement"]
        return [self.resolve(s) for s in statements]

    def role_of(self, lid: str) -> str:
        """The logical id of the role a function or state machine runs as."""
        role = self.resources[lid]["Properties"]["Role" if "Role" in self.resources[lid]["Properties"] else "RoleArn"]
        return str(role["Fn::GetAtt"][0])

    def logical_ids(self, kind: str) -> List[str]:
        return [lid for lid, r in self.resources.items() if r["Type"] == kind]

    def bucket_key(self, bucket: str) -> Optional[str]:
        for lid in self.logical_ids("AWS::S3::Bucket"):
            if self.name(lid) == bucket:
                rules = self.resources[lid]["Properties"].get("BucketEncryption", {}).get(
                    "ServerSideEncryptionConfiguration", [])
                for rule in rules:
                    key = rule["ServerSideEncryptionByDefault"].get("KMSMasterKeyID")
                    if key is not None:
                        return str(self.resolve(key))
        return None

    def table_key(self, table: str) -> Optional[str]:
        for lid in self.logical_ids("AWS::DynamoDB::Table"):
            if self.name(lid) == table:
                key = self.resources[lid]["Properties"].get("SSESpecification", {}).get("KMSMasterKeyId")
                return None if key is None else str(self.resolve(key))
        return None

    def topic_key(self, topic_arn: str) -> Optional[str]:
        for lid in self.logical_ids("AWS::SNS::Topic"):
            if self.ref(lid) == topic_arn:
                key = self.resources[lid]["Properties"].get("KmsMasterKeyId")
                return None if key is None else str(self.resolve(key))
        return None

    def missing(self, role_lid: str, wanted: Sequence[Need]) -> List[Need]:
        statements = self.role_statements(role_lid)
        return [n for n in wanted if not allowed(statements, n)]


# --- the evaluator ---------------------------------------------------------------------------

def _listify(value: Any) -> List[Any]:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            value = context.get(key)
            if value is None:
                return False  # a condition on a key the request does not carry does not match
            options = [str(e) for e in _listify(expected)]
            if operator in ("StringEquals", "ArnEquals"):
                ok = value in options
            elif operator in ("StringLike", "ArnLike"):
                ok = any(_matches(o, value) for o in options)
            else:
                raise AssertionError(f"condition operator {operator} is not understood by this evaluator")
            if not ok:
                return False
    return True


def allowed(statements: Sequence[Mapping[str, Any]], need: Need) -> bool:
    context = dict(need.context)
    for s in statements:
        if s.get("Effect") != "Allow":
            continue
        if not any(_matches(str(a).lower(), need.action.lower()) for a in _listify(s["Action"])):
            continue
        if not any(_matches(str(r), need.resource) for r in _listify(s["Resource"])):
            continue
        if _condition_holds(s.get("Condition", {}), context):
            return True
    return False


# --- requests -> needs -------------------------------------------------------------------------

S3_ACTIONS = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
              "CompleteMultipartUpload": "s3:PutObject", "AbortMultipartUpload": "s3:AbortMultipartUpload",
              "DeleteObject": "s3:DeleteObject", "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket",
              "HeadBucket": "s3:ListBucket"}
S3_WRITES = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
S3_READS = ("GetObject", "HeadObject")
GLUE_TABLE_OPERATIONS = ("GetTable", "CreateTable", "UpdateTable", "DeleteTable")
DYNAMODB_ITEM_OPERATIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                            "BatchWriteItem", "TransactWriteItems", "TransactGetItems")


def via(service: str, region: str = REGION) -> Tuple[Tuple[str, str], ...]:
    """The condition key KMS sees when a service uses a key on a caller's behalf."""
    return (("kms:ViaService", f"{service}.{region}.amazonaws.com"),)


def needs(call: Call, deployment: Deployment) -> List[Need]:
    p, op, region = call.params, call.operation, deployment.region
    if call.service == "s3":
        return _s3_needs(op, p, deployment)
    if call.service == "dynamodb" and op in DYNAMODB_ITEM_OPERATIONS:
        table = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{p['TableName']}"
        resource = f"{table}/index/{p['IndexName']}" if p.get("IndexName") else table
        found = [Need(f"dynamodb:{op}", resource)]
        key = deployment.table_key(p["TableName"])
        if key:
            found += [Need(a, key, via("dynamodb", region)) for a in ("kms:Decrypt", "kms:DescribeKey")]
        return found
    if call.service == "glue":
        catalog = f"arn:aws:glue:{region}:{ACCOUNT}:catalog"
        database = f"arn:aws:glue:{region}:{ACCOUNT}:database/{p['DatabaseName']}"
        resources = [catalog, database]
        if op in GLUE_TABLE_OPERATIONS:
            name = p.get("Name") or p.get("TableInput", {}).get("Name")
            resources.append(f"arn:aws:glue:{region}:{ACCOUNT}:table/{p['DatabaseName']}/{name}")
        return [Need(f"glue:{op}", r) for r in resources]
    if call.service == "emr-serverless":
        application = f"arn:aws:emr-serverless:{region}:{ACCOUNT}:/applications/{p['applicationId']}"
        job_run = f"{application}/jobruns/{p['jobRunId']}" if "jobRunId" in p else application
        return [Need(f"emr-serverless:{op}", job_run)]
    if call.service == "events" and op == "PutEvents":  # EventBridge: the resource is each entry's bus
        buses = {entry.get("EventBusName") or "default" for entry in p["Entries"]}
        return [Need("events:PutEvents", bus if bus.startswith("arn:") else
                     f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{bus}") for bus in sorted(buses)]
    raise AssertionError(f"no IAM mapping for {call.service}:{op}; add one to tests/support/iam.py")


def _s3_needs(op: str, p: Mapping[str, Any], deployment: Deployment) -> List[Need]:
    if op not in S3_ACTIONS:
        raise AssertionError(f"no IAM mapping for s3:{op}; add one to tests/support/iam.py")
    bucket = p["Bucket"]
    if S3_ACTIONS[op] == "s3:ListBucket":
        return [Need("s3:ListBucket", f"arn:aws:s3:::{bucket}", (("s3:prefix", str(p.get("Prefix", ""))),))]
    found = [Need(S3_ACTIONS[op], f"arn:aws:s3:::{bucket}/{p['Key']}")]
    key = deployment.bucket_key(bucket)
    if key and op in S3_WRITES:
        found.append(Need("kms:GenerateDataKey", key, via("s3", deployment.region)))
    if key and op in S3_READS:
        found.append(Need("kms:Decrypt", key, via("s3", deployment.region)))
    return found


# --- recording ----------------------------------------------------------------------------------

_LOOP_PRINCIPAL: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("principal", default=None)


class CallRecorder:
    """Records every botocore request of this process with the principal it is made for.

    A Lambda handler's boto3 calls happen on the handler's thread. s3fs (aiobotocore) runs its
    requests on fsspec's event-loop thread: fsspec's ``sync`` is wrapped so the coroutine it
    runs carries the calling thread's principal in a context variable.
    """

    def __init__(self) -> None:
        self.calls: List[Call] = []
        self._local = threading.local()

    @contextmanager
    def acting_as(self, principal: str) -> Iterator[None]:
        self._local.principal = principal
        try:
            yield
        finally:
            self._local.principal = None

    def thread_principal(self) -> Optional[str]:
        return getattr(self._local, "principal", None)

    def record(self, client: Any, operation: str, params: Mapping[str, Any], principal: Optional[str]) -> None:
        service = client.meta.service_model.service_name
        self.calls.append(Call(principal, service, operation, dict(params)))

    @contextmanager
    def installed(self) -> Iterator[CallRecorder]:
        import botocore.client

        recorder = self
        original = botocore.client.BaseClient._make_api_call

        def make_api_call(client: Any, operation_name: str, api_params: Dict[str, Any]) -> Any:
            recorder.record(client, operation_name, api_params, recorder.thread_principal())
            return original(client, operation_name, api_params)

        patches: List[Tuple[Any, str, Any]] = [(botocore.client.BaseClient, "_make_api_call", original)]
        botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        try:
            import aiobotocore.client as aio
        except ImportError:  # pragma: no cover - s3fs is a dev dependency
            aio = None
        if aio is not None:
            aio_original = aio.AioBaseClient._make_api_call

            async def aio_make_api_call(client: Any, operation_name: str, api_params: Dict[str, Any]) -> Any:
                recorder.record(client, operation_name, api_params, _LOOP_PRINCIPAL.get())
                return await aio_original(client, operation_name, api_params)

            aio.AioBaseClient._make_api_call = aio_make_api_call
            patches.append((aio.AioBaseClient, "_make_api_call", aio_original))
            patches += self._carry_principal_into_fsspec()
        try:
            yield self
        finally:
            for owner, attribute, value in patches:
                setattr(owner, attribute, value)

    def _carry_principal_into_fsspec(self) -> List[Tuple[Any, str, Any]]:
        import fsspec.asyn
        import s3fs.core

        original = fsspec.asyn.sync
        recorder = self

        def sync(loop: Any, func: Any, *args: Any, timeout: Any = None, **kwargs: Any) -> Any:
            principal = recorder.thread_principal()

            async def carrying() -> Any:
                token = _LOOP_PRINCIPAL.set(principal)
                try:
                    return await func(*args, **kwargs)
                finally:
                    _LOOP_PRINCIPAL.reset(token)

            return original(loop, carrying, timeout=timeout)

        patches = [(module, "sync", original) for module in (fsspec.asyn, s3fs.core)]
        for module, _, _ in patches:
            module.sync = sync  # type: ignore[attr-defined]
        return patches

    def ours(self) -> List[Call]:
        return [c for c in self.calls if c.principal is not None]


@dataclass
class Verdict:
    missing: Dict[str, List[str]] = field(default_factory=dict)  # role -> needs not granted
    checked: int = 0

    def __bool__(self) -> bool:
        return not self.missing


def check_calls(calls: Sequence[Call], deployment: Deployment) -> Verdict:
    verdict = Verdict()
    seen = set()
    for call in calls:
        assert call.principal is not None
        for need in needs(call, deployment):
            if (call.principal, need) in seen:
                continue
            seen.add((call.principal, need))
            verdict.checked += 1
            if deployment.missing(call.principal, [need]):
                verdict.missing.setdefault(call.principal, []).append(f"{need}  (by {call.service}:{call.operation})")
    return verdict
