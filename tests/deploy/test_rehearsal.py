"""`make deploy` rehearsed on the embedded AWS (AWS_ENDPOINT_URL): the stack, the functions and
their roles, the REST API, the rules, the table, topic and bucket are created; a second run
converges (same resources, same names, no errors); Chalice's own `chalice deploy` updates the
code in place after it; destroy keeps the evidence and the key that verifies its records unless
told otherwise. A plain `chalice deploy` of a stage without its resources deploys an app that
refuses to act, naming `make deploy`; the stage `make local` serves is refused."""

import fcntl
import json
import os
import shutil
import subprocess
import sys

import pytest

from chalicelib import aws, incidents, outcomes
from deploy import names
from deploy import permissions, project, resources, rules
from local import drive

STAGE = "prod"  # the embedded AWS already holds the dev stage's resources (provisioned)


def _environ(stack):
    return {**os.environ, "AWS_ENDPOINT_URL": stack.endpoint, "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": stack.region}


def _run(stack, *arguments):
    return subprocess.run([sys.executable, "-m", "deploy", *arguments, "--stage", STAGE],
                          cwd=project.PROJECT_DIR, env=_environ(stack), capture_output=True,
                          text=True, timeout=300)


def _chalice_deploy(stack, project_dir):
    """`chalice deploy --stage prod`, Chalice's own command in the rehearsal's copy (what an
    operator runs after the first `make deploy`): none of what `make deploy` adds around it."""
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    return subprocess.run([chalice, "deploy", "--stage", STAGE], cwd=project_dir,
                          env={**_environ(stack), "PYTHONDONTWRITEBYTECODE": "1"},
                          capture_output=True, text=True, timeout=300)


def _rest_api_stage(stack):
    """The stage's REST API (id) and its API Gateway stage: access logs and tracing."""
    gateway = stack.client("apigateway")
    (api,) = [a["id"] for a in gateway.get_rest_apis()["items"]
              if a["name"] == "ec2-quarantine"]
    stage = gateway.get_stage(restApiId=api, stageName="api")
    return api, stage.get("accessLogSettings", {}).get("destinationArn"), stage.get(
        "tracingEnabled")


def _failures_go_to(stack):
    """Where the GuardDuty function's failed invocations and its rule's undelivered events go."""
    handler = resources.FINDING_HANDLER
    config = stack.client("lambda").get_function_event_invoke_config(
        FunctionName=names.function(STAGE, handler))
    targets = stack.client("events").list_targets_by_rule(Rule=names.rule(STAGE, handler))[
        "Targets"]
    return (config["DestinationConfig"]["OnFailure"]["Destination"],
            [t.get("DeadLetterConfig", {}).get("Arn") for t in targets])


def _deployed(stack):
    """What exists of the stage, by name and identity."""
    stage_prefix = names.function(STAGE, "")[:-1]
    cfn = stack.client("cloudformation")
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"]
    stack_resources = sorted(
        (r["LogicalResourceId"], r["PhysicalResourceId"])
        for r in cfn.list_stack_resources(StackName=resources.stack_name(STAGE))[
            "StackResourceSummaries"]) if resources.stack_name(STAGE) in live else []
    return {
        "stack": stack_resources,
        "functions": sorted((f["FunctionName"], f["Role"])
                            for f in stack.client("lambda").list_functions()["Functions"]
                            if f["FunctionName"].startswith(stage_prefix)),
        "rules": sorted((r["Name"], r["State"]) for r in stack.client("events").list_rules(
            NamePrefix=stage_prefix)["Rules"]),
        "tables": [t for t in stack.client("dynamodb").list_tables()["TableNames"]
                   if t == names.incidents_table(STAGE)],
        "buckets": [b["Name"] for b in stack.client("s3").list_buckets()["Buckets"]
                    if b["Name"] == names.evidence_bucket(stack.region, stack.account, STAGE)],
        "topics": [t["TopicArn"] for t in stack.client("sns").list_topics()["Topics"]
                   if t["TopicArn"].endswith(names.topic(STAGE))],
        "machines": [m["stateMachineArn"] for m in stack.client(
            "stepfunctions").list_state_machines()["stateMachines"]
            if m["name"] == names.state_machine(STAGE)],
        "keys": [a["TargetKeyId"] for a in stack.client("kms").list_aliases()["Aliases"]
                 if a["AliasName"] == names.records_key_alias(STAGE)],
        "apis": [a["id"] for a in stack.client("apigateway").get_rest_apis()["items"]
                 if a["name"] == "ec2-quarantine"],
    }


@pytest.fixture
def rehearsal_dir():
    """The rehearsal's copy of the project, one test at a time: two workers rehearsing the same
    stage would share it (and wire each other's ARNs)."""
    path = os.path.join(project.PROJECT_DIR, "build", "rehearsal", STAGE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(path, ignore_errors=True)
        yield path
        shutil.rmtree(path, ignore_errors=True)


def test_deploy_twice_converges_and_destroy_keeps_the_evidence(stack, rehearsal_dir):
    first = _run(stack, "deploy")
    assert first.returncode == 0, first.stdout + first.stderr
    after_first = _deployed(stack)

    functions = {name for name, _ in after_first["functions"]}
    assert functions == {names.api_function(STAGE)} | {
        names.function(STAGE, f) for f in permissions.needs() if f != "api_handler"}
    roles = {role.rsplit("/", 1)[-1] for _, role in after_first["functions"]}
    assert roles == {names.function(STAGE, f) for f in permissions.needs()}  # one role each
    assert after_first["rules"] == [(rule, "ENABLED") for rule in sorted(rules._rules(STAGE))]
    assert len(after_first["rules"]) == 4  # findings, custom actions, tampering, the sweep
    assert {logical for logical, _ in after_first["stack"]} >= {
        "StateMachine", "StateMachineRole", "ReportsTopic", "IncidentsTable", "EvidenceBucket",
        "ExecutionLogs", "DenyAllProfile", "RecordsKey", "RecordsKeyAlias"}
    assert after_first["tables"] and after_first["buckets"] and after_first["topics"]
    assert after_first["machines"] and after_first["keys"] and after_first["apis"]
    config = project.read_config(rehearsal_dir)["stages"][STAGE]["environment_variables"]
    assert config["STATE_MACHINE_ARN"] == after_first["machines"][0]
    key = stack.client("kms").describe_key(KeyId=config["RECORDS_KEY_ARN"])["KeyMetadata"]
    assert (key["KeyId"], key["KeySpec"], key["KeyUsage"]) == (
        after_first["keys"][0], "HMAC_256", "GENERATE_VERIFY_MAC")
    with open(os.path.join(project.CHALICE_DIR, "config.json")) as handle:
        assert after_first["machines"][0] not in handle.read()  # the real stage is untouched
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.client(
        "cloudformation").describe_stacks(StackName=resources.stack_name(STAGE))["Stacks"][0][
        "Outputs"]}
    queue = outputs["FindingFailuresArn"]
    assert _failures_go_to(stack) == (queue, [queue])
    assert stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.client("sqs").get_queue_url(QueueName=queue.rsplit(":", 1)[-1])[
            "QueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"] == queue
    assert outputs["AccessLogsBucket"] in [b["Name"] for b in stack.client(
        "s3").list_buckets()["Buckets"]]

    second = _run(stack, "deploy")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "is up to date" in second.stdout and "already point at the stack" in second.stdout
    assert _deployed(stack) == after_first
    assert _failures_go_to(stack) == (queue, [queue])

    api = _rest_api_stage(stack)
    assert api[1] == outputs["ApiAccessLogsArn"].removesuffix(":*") and api[2] is True
    code = {name: f["CodeSha256"] for f in stack.client("lambda").list_functions()["Functions"]
            for name in [f["FunctionName"]] if name.startswith(names.function(STAGE, ""))}
    with open(os.path.join(rehearsal_dir, "chalicelib", "__init__.py"), "a") as handle:
        handle.write("# a code change\n")
    bare = _chalice_deploy(stack, rehearsal_dir)
    assert bare.returncode == 0, bare.stdout + bare.stderr
    updated = _deployed(stack)
    assert updated == after_first  # the same functions, roles, rules (enabled) and resources
    assert all(f["CodeSha256"] != code[f["FunctionName"]] for f in stack.client(
        "lambda").list_functions()["Functions"] if f["FunctionName"] in code)  # new code
    assert _rest_api_stage(stack) == (*api[:2], False)  # the same API and its access logs;
    # Chalice's CreateDeployment turned tracing off (the project sets no Chalice `xray`)
    assert _failures_go_to(stack) == (queue, [None])  # the invoke config kept; Chalice's
    # PutTargets replaced the rule's target, and with it the dead-letter queue
    again = _run(stack, "deploy")  # which `make deploy` sets again
    assert again.returncode == 0, again.stdout + again.stderr
    assert _failures_go_to(stack) == (queue, [queue]) and _rest_api_stage(stack) == api

    table = names.incidents_table(STAGE)  # an instance still under an incident: kept running
    for incident_id, status in (("inc-0123456789ab", "CONTAINED"),
                                ("inc-0123456789ac", "AWAITING_APPROVAL")):  # holds it too
        stack.client("dynamodb").put_item(TableName=table, Item={
            "pk": {"S": incident_id}, "record_type": {"S": "incident"},
            "status": {"S": status}})
    refused = _run(stack, "destroy", "--purge")
    assert refused.returncode == 1 and "2 incident(s) of stage prod are still active" in (
        refused.stdout)
    assert _deployed(stack) == after_first  # nothing deleted
    for incident_id, status in (("inc-0123456789ab", "RELEASED"),
                                ("inc-0123456789ac", "NOTIFIED")):
        stack.client("dynamodb").put_item(TableName=table, Item={
            "pk": {"S": incident_id}, "record_type": {"S": "incident"},
            "status": {"S": status}})

    destroyed = _run(stack, "destroy")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    left = _deployed(stack)
    assert (left["stack"], left["functions"], left["rules"], left["machines"], left["apis"]) == (
        [], [], [], [], [])
    assert left["tables"] == after_first["tables"] and left["buckets"] == after_first["buckets"]
    assert outputs["AccessLogsBucket"] in [b["Name"] for b in stack.client(
        "s3").list_buckets()["Buckets"]]  # who touched the evidence stays with it
    assert left["keys"] == after_first["keys"]  # the records stay verifiable

    refused = _run(stack, "deploy")  # the kept table and bucket cannot be created again
    assert refused.returncode == 1 and "exist from an earlier deployment" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
    assert _deployed(stack)["functions"] == []  # nothing of the app runs without its stack

    purged = _run(stack, "destroy", "--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    purged_left = _deployed(stack)
    assert (purged_left["tables"], purged_left["buckets"], purged_left["keys"]) == ([], [], [])
    assert outputs["AccessLogsBucket"] not in [b["Name"] for b in stack.client(
        "s3").list_buckets()["Buckets"]]
    assert stack.client("kms").describe_key(KeyId=after_first["keys"][0])["KeyMetadata"][
        "KeyState"] == "PendingDeletion"


def test_a_failed_deploy_says_what_exists_and_a_rerun_finishes_it(stack, rehearsal_dir):
    stack.faults.arm("cloudformation", "CreateStack", "AccessDenied", count=1)
    refused = _run(stack, "deploy")
    assert refused.returncode == 1 and "AccessDenied" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
    nothing = _deployed(stack)
    assert (nothing["stack"], nothing["functions"], nothing["rules"]) == ([], [], [])

    stack.faults.arm("events", "PutTargets", "AccessDeniedException", count=20)
    half = _run(stack, "deploy")
    assert half.returncode == 1, half.stdout + half.stderr
    assert "is disabled, so no finding reaches a half-deployed app" in half.stdout
    assert "Rerun `make deploy STAGE=prod`" in half.stdout
    assert names.function(STAGE, "contain") in half.stdout  # what exists, by name
    rule = names.rule(STAGE, "on_guardduty_finding")
    every_rule = sorted(rules._rules(STAGE))
    made = _deployed(stack)["rules"]  # those made before the failure: nothing reaches them
    assert (rule, "DISABLED") in made and {state for _, state in made} == {"DISABLED"}

    stack.faults.reset()
    finished = _run(stack, "deploy")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert _deployed(stack)["rules"] == [(r, "ENABLED") for r in every_rule]
    targets = stack.client("events").list_targets_by_rule(Rule=rule)["Targets"]
    assert [t["Arn"].rsplit(":", 1)[-1] for t in targets] == [
        names.function(STAGE, "on_guardduty_finding")]


def test_a_deploy_over_an_older_table_adds_each_index_then_the_app(stack, rehearsal_dir):
    """A stack an earlier version made, its table three indexes behind the app's (CloudFormation
    adds one per update and does not wait for its backfill; the embedded AWS refuses a second
    index change while one is CREATING, as DynamoDB does), with an incident written then."""
    older = resources.template(STAGE)
    table = older["Resources"]["IncidentsTable"]["Properties"]
    table.pop("GlobalSecondaryIndexes")
    table.update(incidents.table_definition(incidents.GLOBAL_INDEXES[:1]))
    stack.client("cloudformation").create_stack(
        StackName=resources.stack_name(STAGE), TemplateBody=json.dumps(older),
        Capabilities=["CAPABILITY_NAMED_IAM"])
    dynamodb, name = stack.client("dynamodb"), names.incidents_table(STAGE)
    dynamodb.put_item(TableName=name, Item={
        "pk": {"S": "inc-0123456789ab"}, "incident_id": {"S": "inc-0123456789ab"},
        "record_type": {"S": "incident"}, "status": {"S": "RELEASED"},
        "opened_at": {"S": "2026-01-01T00:00:00.000000Z"},
        "findings": {"L": [{"M": {"id": {"S": "f" * 32}}}]}})

    upgraded = _run(stack, "deploy")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    steps = [line for line in upgraded.stdout.splitlines() if "adding index" in line]
    assert [line.rsplit(" ", 1)[-1] for line in steps] == [
        incidents.TIME_INDEX, incidents.STATUS_INDEX, incidents.GROUP_INDEX]
    described = dynamodb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
    assert {(i["IndexName"], i["IndexStatus"]) for i in described} == {
        (index["IndexName"], "ACTIVE") for index in incidents.GLOBAL_INDEXES}
    released = dynamodb.query(TableName=name, IndexName=incidents.STATUS_INDEX,
                              KeyConditionExpression="#s = :s",
                              ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":s": {"S": "RELEASED"}})["Items"]
    assert [item["pk"]["S"] for item in released] == ["inc-0123456789ab"]  # backfilled
    deployed = _deployed(stack)
    assert deployed["functions"] and deployed["rules"]  # the app followed

    again = _run(stack, "deploy")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "adding index" not in again.stdout and "is up to date" in again.stdout


def test_a_plain_chalice_deploy_without_the_resources_makes_an_app_that_names_make_deploy(
        stack, rehearsal_dir, monkeypatch):
    """Chalice alone creates the functions, the API and an enabled GuardDuty rule, but none of
    the resources: with the environment Chalice gave the GuardDuty function, its handler raises
    (Lambda's error metric and failure destination show it) and the API answers 503."""
    from chalice.test import Client

    import app
    from chalicelib import settings
    from local.bridge import LambdaContext

    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint)
    bare = _chalice_deploy(stack, project.working_copy(STAGE))
    assert bare.returncode == 0, bare.stdout + bare.stderr
    rule = names.rule(STAGE, resources.FINDING_HANDLER)
    assert (rule, "ENABLED") in _deployed(stack)["rules"]

    function = names.function(STAGE, resources.FINDING_HANDLER)
    given = stack.client("lambda").get_function_configuration(FunctionName=function)[
        "Environment"]["Variables"]
    for name in settings.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    settings.reload()
    try:
        context = LambdaContext(names.function_arn(stack.region, stack.account, STAGE,
                                                   resources.FINDING_HANDLER))
        with aws.acting_as(function), pytest.raises(outcomes.NotConfigured) as raised:
            app.on_guardduty_finding(drive.guardduty_event("i-0123456789abcdef0"), context)
        assert "STATE_MACHINE_ARN" in str(raised.value)
        assert "run `make deploy STAGE=prod`" in str(raised.value)
        with Client(app.app, stage_name=STAGE, project_dir=rehearsal_dir) as client, \
                aws.acting_as(names.api_function(STAGE)):
            answer = client.http.get("/incidents")
        assert answer.status_code == 503 and answer.json_body["error"] == "NotConfigured"
        assert "make deploy STAGE=prod" in answer.json_body["message"]
    finally:
        monkeypatch.undo()
        settings.reload()


def test_the_stage_make_local_serves_is_refused_with_the_reason(stack):
    """The embedded AWS holds the dev stage's table, bucket and keys, provisioned as `make
    local` provisions them: not a destroyed deployment's, and never to be purged."""
    for command in (("deploy",), ("destroy", "--purge")):
        refused = subprocess.run(
            [sys.executable, "-m", "deploy", *command, "--stage", stack.stage],
            cwd=project.PROJECT_DIR, env=_environ(stack), capture_output=True, text=True,
            timeout=300)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"stage {stack.stage} on {stack.endpoint} is the one `make local` serves" in (
            refused.stdout)
        assert "`make deploy STAGE=prod`" in refused.stdout and "PURGE" not in refused.stdout
        assert "Traceback" not in refused.stdout + refused.stderr
    assert stack.client("dynamodb").describe_table(TableName=stack.names["INCIDENTS_TABLE"])
    assert stack.client("s3").head_bucket(Bucket=stack.names["EVIDENCE_BUCKET"])
    assert stack.client("cloudformation").list_stacks()["StackSummaries"] == []
