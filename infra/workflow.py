"""The state machine (docs/architecture.md, "Flow"), its triggers (S3 -> EventBridge, the sweep schedule)
and the failure notification topic.

    Register -> (nothing new? Succeed) -> Lock <-> Wait -> Plan -> (no steps? Unlock, Succeed)
      -> Map (one at a time): RunJob (.sync, Retry; Catch) -> Record -> (FAILED? fail the Map)
      -> clear the re-run request -> Plan ...
    any error -> Finish(error): re-queue, unlock -> SNS -> Fail
"""

from __future__ import annotations

from typing import Any, Dict

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from datadominion.landing import MARKER_WILDCARD
from datadominion.ledger import FAILED
from datadominion.payloads import Failure, LockState, Plan, PlanItem, Recorded, Registration, at
from infra.emr import SparkApplication
from infra.environment import EnvironmentConfig
from infra.functions import LauncherFunctions
from infra.nag import acknowledge, logical_id
from infra.naming import LOCK_POLL_SECONDS
from infra.retention import retention
from infra.storage import DataStorage

START_JOB_RUN_SYNC = "arn:aws:states:::emr-serverless:startJobRun.sync"
# Submission errors worth retrying with the same client token (a job that ran and failed is not).
RETRYABLE_JOB_ERRORS = ["EMRServerless.ThrottlingException", "EMRServerless.InternalServerException",
                        "EMRServerless.ServiceQuotaExceededException"]
EMR_EVENTS_RULE = "StepFunctionsGetEventsForEMRServerlessJobRule"
# The StartJobRun members the Plan's request carries (datadominion/job_request.py), as the
# Step Functions integration names them.
# Where each task's result lands in the execution state (its Lambda's payload under "value").
REGISTRATION_AT, LOCK_AT, PLAN_AT, RECORDED_AT, FAILURE_AT = (
    "$.registration", "$.lock", "$.plan", "$.recorded", "$.failure")
REGISTRATION, LOCK, PLAN, RECORDED, FAILURE = (f"{at_}.value" for at_ in (
    REGISTRATION_AT, LOCK_AT, PLAN_AT, RECORDED_AT, FAILURE_AT))
ITEM = "$.item"  # a Map iteration's planned step (ItemSelector)
RUN_JOB_PARAMETERS = ("ApplicationId", "ClientToken", "ExecutionRoleArn", "Name", "JobDriver",
                      "ConfigurationOverrides", "ExecutionTimeoutMinutes", "Tags")


class Workflow(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env: EnvironmentConfig, storage: DataStorage,
                 functions: LauncherFunctions, spark: SparkApplication) -> None:
        super().__init__(scope, construct_id)
        f = functions.functions
        alerts_key = kms.Key(self, "AlertsKey", enable_key_rotation=True,
                             description=f"DataDominion {env.name}: failure notifications")
        alerts_key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        self.topic = sns.Topic(self, "Alerts", master_key=alerts_key, enforce_ssl=True,
                               display_name=f"DataDominion {env.name}")
        if env.alarms.notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(env.alarms.notification_email))

        def invoke(name: str, function: str, payload: Dict[str, Any], result_path: str) -> tasks.LambdaInvoke:
            return tasks.LambdaInvoke(self, name, lambda_function=f[function],
                                      payload=sfn.TaskInput.from_object(payload),
                                      result_selector={"value.$": "$.Payload"}, result_path=result_path,
                                      retry_on_service_exceptions=True)

        owner = {"owner.$": "$$.Execution.Name"}
        register = invoke("Register", "register", {"input.$": "$$.Execution.Input"}, REGISTRATION_AT)
        lock = invoke("Lock", "lock", owner, LOCK_AT)
        plan = invoke("Plan", "plan", {**owner, "rerun_months.$": at(REGISTRATION, Registration, "rerun_months"),
                                       "retry_failed.$": at(REGISTRATION, Registration, "retry_failed"),
                                       "maintain.$": at(REGISTRATION, Registration, "maintain")}, PLAN_AT)
        unlock = invoke("Unlock", "finish", {**owner, "started.$": "$$.Execution.StartTime"}, "$.finish")
        failure_path = self._failure_path(env, invoke, owner)
        apply_steps = self._apply_steps(invoke)
        # An operator's re-run or maintenance request is planned once, not by every later Plan.
        clear_rerun = sfn.Pass(self, "ClearRerunRequest", result=sfn.Result.from_array([]),
                               result_path=at(REGISTRATION, Registration, "rerun_months"))
        clear_maintain = sfn.Pass(self, "ClearMaintenanceRequest", result=sfn.Result.from_boolean(False),
                                  result_path=at(REGISTRATION, Registration, "maintain"))
        anything_to_do = sfn.Choice(self, "AnythingToDo").when(
            sfn.Condition.number_equals(at(PLAN, Plan, "count"), 0), unlock.next(sfn.Succeed(self, "AllApplied"))
        ).otherwise(apply_steps)
        apply_steps.next(clear_rerun).next(clear_maintain).next(plan)
        plan.next(anything_to_do)
        wait = sfn.Wait(self, "WaitForLock", time=sfn.WaitTime.duration(cdk.Duration.seconds(LOCK_POLL_SECONDS)))
        locked = sfn.Choice(self, "Locked").when(
            sfn.Condition.boolean_equals(at(LOCK, LockState, "acquired"), True), plan).otherwise(wait)
        wait.next(lock)
        lock.next(locked)
        preview = invoke("Preview", "plan", {**owner, "preview": True,
                                             "rerun_months.$": at(REGISTRATION, Registration, "rerun_months"),
                                             "retry_failed.$": at(REGISTRATION, Registration, "retry_failed"),
                                             "maintain.$": at(REGISTRATION, Registration, "maintain")}, "$.preview")
        preview.add_catch(failure_path, errors=["States.ALL"], result_path="$.error")
        preview.next(sfn.Succeed(self, "Previewed", comment="plan_only: nothing locked, registered or started"))
        proceed = sfn.Choice(self, "AnythingNew").when(
            sfn.Condition.boolean_equals(at(REGISTRATION, Registration, "proceed"), False),
            sfn.Succeed(self, "NothingNew")).when(
            sfn.Condition.boolean_equals(at(REGISTRATION, Registration, "plan_only"), True), preview).otherwise(lock)
        register.next(proceed)
        for state in (register, lock, plan, apply_steps, unlock):
            state.add_catch(failure_path, errors=["States.ALL"], result_path="$.error")

        log_group = logs.LogGroup(self, "ExecutionLogs", retention=retention(env.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.RETAIN if env.retain_data
                                  else cdk.RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", definition_body=sfn.DefinitionBody.from_chainable(register),
            state_machine_type=sfn.StateMachineType.STANDARD, tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment=f"DataDominion {env.name}: register, lock, plan, apply steps on EMR Serverless, unlock")
        self._grant_emr(spark)
        self._grant_notify(alerts_key)
        self._triggers(env, storage)
        acknowledge(self.state_machine.role, [
            ("AwsSolutions-IAM5[Resource::*]",
             "CloudWatch Logs delivery and X-Ray actions used by Step Functions support no resource-level "
             "permissions."),
            *[(f"AwsSolutions-IAM5[Resource::<{logical_id(fn)}.Arn>:*]",
               "Step Functions may invoke any version of this one function (CDK's standard LambdaInvoke grant).")
              for fn in functions.all],
            (f"AwsSolutions-IAM5[Resource::<{logical_id(spark.application)}.Arn>/jobruns/*]",
             "GetJobRun/CancelJobRun on the job runs of this one application (ids are generated)."),
        ])

    def _apply_steps(self, invoke: Any) -> sfn.Map:
        """One step at a time: renew the lock (LockLost stops the run), run the job, record it.
        Each iteration sees {"item": <planned step>, "owner": <execution name>}."""
        renew = invoke("RenewLock", "lock", {"owner.$": "$.owner", "renew": True}, "$.lease")
        run_job = sfn.CustomState(self, "RunJob", state_json={
            "Type": "Task", "Resource": START_JOB_RUN_SYNC,
            "Parameters": {key + ".$": f"{at(ITEM, PlanItem, 'request')}.{key}" for key in RUN_JOB_PARAMETERS},
            "ResultPath": "$.job",
        })
        run_job.add_retry(errors=RETRYABLE_JOB_ERRORS, interval=cdk.Duration.seconds(30), max_attempts=5,
                          backoff_rate=2.0)
        record_done = invoke("Record", "record", {"item.$": ITEM, "job.$": "$.job"}, RECORDED_AT)
        record_failed = invoke("RecordJobFailure", "record", {"item.$": ITEM, "error.$": "$.error"}, RECORDED_AT)
        run_job.add_catch(record_failed, errors=["States.ALL"], result_path="$.error")
        step_failed = sfn.Fail(self, "StepFailed", error="DataDominion.StepFailed",
                               cause="The step's job failed; its batches are FAILED in the ledger.")
        step_recorded = sfn.Choice(self, "StepOutcome").when(
            sfn.Condition.string_equals(at(RECORDED, Recorded, "outcome"), FAILED), step_failed
        ).otherwise(sfn.Succeed(self, "StepDone"))
        renew.next(run_job)
        run_job.next(record_done)
        record_done.next(step_recorded)
        record_failed.next(step_recorded)
        apply_steps = sfn.Map(self, "ApplySteps", items_path=at(PLAN, Plan, "steps"), max_concurrency=1,
                              item_selector={"item.$": "$$.Map.Item.Value", "owner.$": "$$.Execution.Name"},
                              result_path=sfn.JsonPath.DISCARD)
        apply_steps.item_processor(renew)
        return apply_steps

    def _failure_path(self, env: EnvironmentConfig, invoke: Any, owner: Dict[str, str]) -> sfn.IChainable:
        """Record the failure (re-queue, release the lock), notify, fail. Each task has a Catch, so
        the execution ends in RunFailed even when recording or notifying fails: if recording
        fails, the lock is still released; if notifying fails, the run still ends."""
        started = {**owner, "started.$": "$$.Execution.StartTime"}
        record_failure = invoke("RecordRunFailure", "finish", {**started, "error.$": "$.error"}, FAILURE_AT)
        release_lock = invoke("ReleaseLockAfterFailure", "finish",
                              {**started, "error.$": "$.error", "release_only": True}, FAILURE_AT)
        notify = tasks.SnsPublish(self, "Notify", topic=self.topic,
                                  subject=f"DataDominion {env.name}: run failed",
                                  message=sfn.TaskInput.from_json_path_at(at(FAILURE, Failure, "message")),
                                  result_path=sfn.JsonPath.DISCARD)
        failed = sfn.Fail(self, "RunFailed", error="DataDominion.RunFailed",
                          cause="A step failed or the run could not continue; see the notification and the ledger.")
        record_failure.add_catch(release_lock, errors=["States.ALL"], result_path="$.recordingError")
        release_lock.add_catch(notify, errors=["States.ALL"], result_path="$.releaseError")
        notify.add_catch(failed, errors=["States.ALL"], result_path="$.notifyError")
        release_lock.next(notify)
        return record_failure.next(notify).next(failed)

    def _grant_notify(self, alerts_key: kms.IKey) -> None:
        """Publishing to an SSE-KMS topic needs the topic key's GenerateDataKey and Decrypt
        (Amazon SNS developer guide, key management), used through SNS only."""
        self.state_machine.role.add_to_principal_policy(iam.PolicyStatement(
            sid="AlertsKeyViaSns", actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=[alerts_key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sns.{cdk.Stack.of(self).region}.amazonaws.com"}}))

    def _grant_emr(self, spark: SparkApplication) -> None:
        role = self.state_machine.role
        stack = cdk.Stack.of(self)
        role.add_to_principal_policy(iam.PolicyStatement(sid="StartJobRun", actions=["emr-serverless:StartJobRun"],
                                                         resources=[spark.application_arn]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="TrackJobRun", actions=["emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"],
            resources=[f"{spark.application_arn}/jobruns/*"]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="SyncEventsRule", actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[stack.format_arn(service="events", resource="rule", resource_name=EMR_EVENTS_RULE)]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="PassJobRole", actions=["iam:PassRole"], resources=[spark.job_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}))

    def _triggers(self, env: EnvironmentConfig, storage: DataStorage) -> None:
        self.arrivals = events.Rule(
            self, "BatchArrived", description="A _SUCCESS marker under accounts_all/ starts the state machine",
            event_pattern=events.EventPattern(source=["aws.s3"], detail_type=["Object Created"], detail={
                "bucket": {"name": [storage.landing.bucket_name]},
                "object": {"key": [{"wildcard": MARKER_WILDCARD}]},
            }),
            targets=[targets.SfnStateMachine(self.state_machine, retry_attempts=10,
                                             max_event_age=cdk.Duration.hours(6))])
        self.sweep = scheduler.Schedule(
            self, "Sweep", description="Sweep: pick up any batch whose event was lost",
            schedule=scheduler.ScheduleExpression.expression(env.schedule.sweep_expression),
            enabled=env.schedule.enabled,
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine, input=scheduler.ScheduleTargetInput.from_object({"sweep": True})))

