"""`make package`: one deployable template (Chalice's SAM merged with the resources stack) and a
zip that holds only the app, which imports nothing left out of it; cfn-lint (with the SAM
translator) passes, the API demands IAM."""

import ast
import json
import os
import subprocess
import sys
import zipfile

import pytest

from deploy import attach, names, package, permissions, project, resources, statemachine

STAGE = "prod"
RUNTIME = {"chalice/__init__.py", "chalice/app.py"}  # Chalice's runtime, bundled by design
# deploy/ only, never shipped
BUILD_TIME = {"names.py", "statemachine.py", "permissions.py", "policy_lint.py"}
LAMBDA_PROVIDES = {"boto3", "botocore"}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """The package of a working tree where Python has run (bytecode beside the sources)."""
    out_dir = str(tmp_path_factory.mktemp("package"))
    cache = os.path.join(project.PROJECT_DIR, "chalicelib", "__pycache__")
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, "planted.cpython-311.pyc"), "wb") as handle:
        handle.write(b"\0" * 100_000)
    package.build(STAGE, out_dir)
    with open(os.path.join(out_dir, "sam.json")) as handle:
        return out_dir, json.load(handle)


def _cfn_lint(*paths):
    cfn_lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    return subprocess.run([cfn_lint, *paths], capture_output=True, text=True)


def test_the_packaged_template_and_the_resources_stack_lint_clean(packaged, tmp_path):
    out_dir, template = packaged
    assert template["Transform"] == "AWS::Serverless-2016-10-31"  # linted through SAM
    from deploy import resources

    stack = tmp_path / "resources.json"
    stack.write_text(json.dumps(resources.template(STAGE)))
    result = _cfn_lint(os.path.join(out_dir, "sam.json"), str(stack))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_route_of_the_api_requires_iam(packaged):
    _, template = packaged
    api = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert api["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    methods = [(path, verb, spec) for path, verbs in api["paths"].items()
               for verb, spec in verbs.items() if verb != "options"]
    assert {(p, v) for p, v, _ in methods} == {
        ("/quarantine", "post"), ("/release", "post"), ("/incidents", "get"),
        ("/incidents/{incident_id}", "get"), ("/incidents/{incident_id}/findings", "get"),
        ("/incidents/{incident_id}/report", "get"), ("/incidents/{incident_id}/approve", "post"),
        ("/incidents/{incident_id}/deny", "post"),
        ("/exemptions", "post"), ("/exemptions", "get"), ("/exemptions/{instance_id}", "delete")}
    for path, verb, spec in methods:
        assert spec.get("security") == [{"sigv4": []}], (path, verb)


def test_functions_carry_the_names_the_state_machine_invokes_and_the_stacks_settings(packaged):
    _, template = packaged
    functions = {r["Properties"]["FunctionName"]: r["Properties"]
                 for r in template["Resources"].values()
                 if r["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == {names.api_function(STAGE)} | {
        names.function(STAGE, f) for f in permissions.needs() if f != "api_handler"}
    definition = template["Resources"]["StateMachine"]["Properties"]["DefinitionString"]
    for step in statemachine.STEP_FUNCTIONS:
        assert f":function:{names.function(STAGE, step)}\"" in definition["Fn::Sub"]
    for properties in functions.values():
        variables = properties["Environment"]["Variables"]
        assert variables["STATE_MACHINE_ARN"] == {"Ref": "StateMachine"}
        assert variables["TOPIC_ARN"] == {"Ref": "ReportsTopic"}
        assert variables["INCIDENTS_TABLE"] == {"Ref": "IncidentsTable"}
        assert variables["EVIDENCE_BUCKET"] == {"Ref": "EvidenceBucket"}


def _granted_roles(document) -> set[str]:
    """The role names a key or queue policy grants through `aws:PrincipalArn` conditions."""
    found = set()
    for statement in document["Statement"]:
        arns = statement.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn", [])
        for arn in arns if isinstance(arns, list) else [arns]:
            found.add(arn["Fn::Sub"].rsplit(":role/", 1)[1])
    return found


def test_the_roles_the_key_and_queue_policies_grant_are_the_functions_roles(packaged):
    """The policies name the roles (they cannot be principals before the roles exist): a role
    CloudFormation named would be refused by the records key, the signing key and the queue."""
    _, template = packaged
    found = template["Resources"]
    roles = {found[f["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"].get("RoleName")
             for f in found.values() if f["Type"] == "AWS::Serverless::Function"}
    assert roles == {names.function_role(STAGE, f) for f in permissions.needs()}
    granted = set()
    for logical_id, field in (("RecordsKey", "KeyPolicy"), ("EvidenceSigningKey", "KeyPolicy"),
                              ("FindingFailuresPolicy", "PolicyDocument")):
        granted |= _granted_roles(found[logical_id]["Properties"][field])
    assert names.function_role(STAGE, "collect_evidence") in granted  # the walk saw them
    assert granted <= roles, granted - roles


def test_every_checkov_suppression_in_the_package_says_why(packaged):
    """What checkov still reports on the packaged API and functions is suppressed, each with
    its reason; nothing else is (access logs, tracing and the failure queue are set instead)."""
    _, template = packaged
    skips = [(logical, skip) for logical, resource in template["Resources"].items()
             for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    functions = [logical for logical, resource in template["Resources"].items()
                 if resource["Type"] == "AWS::Serverless::Function"]
    assert len(functions) == len(permissions.needs())
    assert {(logical, skip["id"]) for logical, skip in skips} == {
        ("AccessLogsBucket", "CKV_AWS_18"), ("ApiAccessLogs", "CKV_AWS_158"),
        ("FindingFailures", "CKV_AWS_27"), ("RestAPI", "CKV_AWS_120")} | {
        (logical, check) for logical in functions
        for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173")}
    assert all(len(skip["comment"].split()) >= 8 for _, skip in skips)


def test_the_api_stage_logs_each_request_to_the_retained_group_and_traces(packaged):
    _, template = packaged
    found = template["Resources"]
    api = found["RestAPI"]
    logging = api["Properties"]["AccessLogSetting"]
    assert logging["DestinationArn"] == {"Fn::Sub": "arn:aws:logs:${AWS::Region}:"
                                                    "${AWS::AccountId}:log-group:${ApiAccessLogs}"}
    assert found["ApiAccessLogs"]["Type"] == "AWS::Logs::LogGroup"
    assert found["ApiAccessLogs"]["DeletionPolicy"] == "Retain"
    assert logging["Format"] == attach.ACCESS_LOG_FORMAT  # what make deploy sets
    assert api["Properties"]["TracingEnabled"] is True
    # API Gateway logs with the region's logging role, set before the stage is
    account = found[api["DependsOn"]]
    assert account == {"Type": "AWS::ApiGateway::Account", "Properties": {
        "CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}}}
    assert found["ApiGatewayLogsRole"]["DeletionPolicy"] == "Retain"


def test_the_finding_functions_failures_reach_the_queue_whose_policy_admits_them(packaged):
    _, template = packaged
    found = template["Resources"]
    function = found["OnGuarddutyFinding"]["Properties"]
    queue = {"Fn::GetAtt": ["FindingFailures", "Arn"]}
    assert function["EventInvokeConfig"] == {
        "MaximumRetryAttempts": attach.RETRIES,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": queue}}}
    (event,) = function["Events"].values()
    assert event["Type"] == "EventBridgeRule"  # SAM names and dead-letters only this type
    assert event["Properties"]["DeadLetterConfig"] == {"Arn": queue}
    assert event["Properties"]["Pattern"]["source"] == ["aws.guardduty"]  # Chalice's, kept
    statements = {s["Sid"]: s for s in found["FindingFailuresPolicy"]["Properties"][
        "PolicyDocument"]["Statement"]}
    rule_arn = statements["RuleDeadLetters"]["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert rule_arn["Fn::Sub"].endswith(f":rule/{event['Properties']['RuleName']}")
    role = found[function["Role"]["Fn::GetAtt"][0]]["Properties"]["RoleName"]
    assert _granted_roles({"Statement": [statements["FailedInvocations"]]}) == {role}
    assert resources.FINDING_HANDLER in role


def test_the_zip_holds_only_the_app(packaged):
    out_dir, _ = packaged
    with zipfile.ZipFile(os.path.join(out_dir, "deployment.zip")) as archive:
        entries = {e for e in archive.namelist() if not e.endswith("/")}
    assert "app.py" in entries and "chalicelib/workflow.py" in entries
    strays = {e for e in entries - RUNTIME - {"app.py"}
              if not e.startswith("chalicelib/") or not e.endswith(".py") or "__pycache__" in e}
    assert not strays, strays  # no boto3, no local/, no tests/, no bytecode
    shipped = {e.rsplit("/", 1)[-1] for e in entries}
    assert not shipped & BUILD_TIME, shipped & BUILD_TIME


def test_the_zipped_code_imports_only_what_the_zip_and_lambda_hold(packaged):
    """An import of deploy/ or local/ from chalicelib would pass every local test and fail in
    Lambda: read the imports of every module in the zip."""
    out_dir, _ = packaged
    imported = set()
    with zipfile.ZipFile(os.path.join(out_dir, "deployment.zip")) as archive:
        for entry in archive.namelist():
            if entry.endswith(".py") and entry not in RUNTIME:
                for node in ast.walk(ast.parse(archive.read(entry))):
                    if isinstance(node, ast.Import):
                        imported |= {alias.name.split(".")[0] for alias in node.names}
                    elif isinstance(node, ast.ImportFrom) and node.level == 0:
                        imported.add(node.module.split(".")[0])
    assert "chalicelib" in imported  # the walk saw the app's own imports
    assert imported - set(sys.stdlib_module_names) <= {"chalice", "chalicelib"} | LAMBDA_PROVIDES
