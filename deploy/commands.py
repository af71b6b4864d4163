"""`make deploy`, `make destroy` and `make package`: one stage into one account and region.

deploy: (1) the resources stack (deploy/resources.py) is created or updated and waited for;
(2) its outputs are written into the stage's environment in `.chalice/config.json`; (3) Chalice
deploys the functions, the API and the EventBridge rule. Nothing of the app is deployed before
its resources exist, and an app left half-deployed has its rule disabled, so no finding reaches
it until a rerun finishes the job. Every run converges: a second one changes nothing.

With AWS_ENDPOINT_URL set (a rehearsal on the embedded AWS) the commands work on a copy of the
project under build/rehearsal/, so the real stage's files never see the rehearsal's ARNs, and
the REST API is left out: moto cannot import Chalice's Swagger 2.0 (`make package` covers it).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from deploy import names
from deploy import permissions
from deploy import resources

PROJECT_DIR = permissions.PROJECT_DIR
CONFIG = os.path.join(".chalice", "config.json")
PROJECT_FILES = ("app.py", "chalicelib", "requirements.txt", CONFIG)
IN_PROGRESS = "_IN_PROGRESS"
API_LOGICAL_ID = "APIHandler"


class DeployError(Exception):
    """A deployment step failed; the message says what exists now and how to resume."""


def say(message: str) -> None:
    print(f"[deploy] {message}", flush=True)


def _rehearsal() -> bool:
    return bool(os.environ.get("AWS_ENDPOINT_URL"))


def _project(stage: str) -> str:
    """The project directory to deploy from: this one, or the rehearsal's copy of it."""
    if not _rehearsal():
        return PROJECT_DIR
    copy = os.path.join(PROJECT_DIR, "build", "rehearsal", stage)
    say(f"rehearsal against {os.environ['AWS_ENDPOINT_URL']}: working on a copy in {copy}")
    wired = _read_config(copy) if os.path.exists(os.path.join(copy, CONFIG)) else None
    for name in PROJECT_FILES:
        source, target = os.path.join(PROJECT_DIR, name), os.path.join(copy, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    for name in os.listdir(os.path.join(PROJECT_DIR, ".chalice")):
        if name.startswith("policy-"):
            shutil.copy(os.path.join(PROJECT_DIR, ".chalice", name),
                        os.path.join(copy, ".chalice", name))
    if wired:  # keep the rehearsal's own wiring: the project's holds the real stage's
        config = _read_config(copy)
        config["stages"] = wired["stages"]
        _write_config(copy, config)
    return copy


def _without_bytecode(project_dir: str) -> None:
    """Chalice zips chalicelib/ as it is, `__pycache__` included: leave only the sources."""
    for root, dirs, _ in os.walk(os.path.join(project_dir, "chalicelib")):
        if "__pycache__" in dirs:
            shutil.rmtree(os.path.join(root, "__pycache__"))
            dirs.remove("__pycache__")


def _client(service: str):
    import boto3

    return boto3.session.Session().client(service)


# -- the resources stack ---------------------------------------------------------------------

def _stack(cfn, name: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def _wait(cfn, name: str, timeout: float = 3600) -> dict | None:
    """The stack once no operation is running on it (None: there is none)."""
    delay, deadline = (0.2 if _rehearsal() else 10), time.monotonic() + timeout
    while True:
        stack = _stack(cfn, name)
        if stack is None or not stack["StackStatus"].endswith(IN_PROGRESS):
            return stack
        if stack["StackStatus"] == "REVIEW_IN_PROGRESS":  # a change set nobody executed
            raise DeployError(f"stack {name} waits for a change set to be executed or deleted "
                              "(CloudFormation console); then rerun the command")
        if time.monotonic() > deadline:
            raise DeployError(f"stack {name} is still {stack['StackStatus']} after "
                              f"{timeout:.0f} s; rerun the command once it has settled")
        time.sleep(delay)


def _failures(cfn, name: str) -> list[str]:
    events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    return [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}"
            for e in events if e["ResourceStatus"].endswith("_FAILED")][:10]


def _parameters(declared, given: dict[str, str], existing: dict | None) -> list[dict]:
    """Given values, else the stack's previous ones (a rerun without them changes nothing)."""
    previous = {p["ParameterKey"] for p in (existing or {}).get("Parameters", [])}
    found = []
    for key in declared:
        if given.get(key) is not None:
            found.append({"ParameterKey": key, "ParameterValue": str(given[key])})
        elif key in previous:
            found.append({"ParameterKey": key, "UsePreviousValue": True})
    return found


def _kept_resources(stage: str) -> dict[str, str]:
    """The table and bucket that outlive the stack, by their deterministic names."""
    account = _client("sts").get_caller_identity()["Account"]
    region = _client("cloudformation").meta.region_name
    return {"table": names.incidents_table(stage),
            "bucket": names.evidence_bucket(region, account, stage)}


def _existing(kept: dict[str, str]) -> dict[str, str]:
    """Which of the kept resources exist now."""
    from botocore.exceptions import ClientError

    found = {}
    for kind, check in (("table", lambda: _client("dynamodb").describe_table(
                             TableName=kept["table"])),
                        ("bucket", lambda: _client("s3").head_bucket(Bucket=kept["bucket"]))):
        try:
            check()
            found[kind] = kept[kind]
        except ClientError:
            pass
    return found


def _listed(found: dict[str, str]) -> str:
    return " and ".join(f"{kind} {name}" for kind, name in found.items())


def _refuse_orphans(stage: str) -> None:
    """A table or bucket kept by an earlier `make destroy` cannot be created again: say so
    before CloudFormation fails half-way."""
    found = _existing(_kept_resources(stage))
    if found:
        raise DeployError(
            f"{_listed(found)} exist from an earlier deployment (kept by `make destroy`). "
            "Nothing was created. Either import them into a new stack with CloudFormation's "
            "resource import (template: build/<stage>/resources.json), or copy the evidence "
            f"elsewhere and run `make destroy STAGE={stage} PURGE=1`, then deploy again")


def converge_stack(stage: str, given: dict[str, str], build_dir: str) -> dict[str, str]:
    """Create or update the stage's resources stack and wait; returns its outputs."""
    from botocore.exceptions import ClientError

    cfn, name = _client("cloudformation"), resources.stack_name(stage)
    template = resources.template(stage)
    body = json.dumps(template, indent=1, sort_keys=True)
    os.makedirs(build_dir, exist_ok=True)
    with open(os.path.join(build_dir, "resources.json"), "w") as handle:
        handle.write(body)
    stack = _wait(cfn, name)
    if stack and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        say(f"stack {name} is what a failed first deploy left (empty): deleting it")
        cfn.delete_stack(StackName=name)
        stack = _wait(cfn, name)
    if stack and stack["StackStatus"].endswith("_FAILED"):
        raise DeployError(f"stack {name} is {stack['StackStatus']}: resolve it in the "
                          f"CloudFormation console, then rerun `make deploy STAGE={stage}`")
    arguments = {"StackName": name, "TemplateBody": body,
                 "Parameters": _parameters(template["Parameters"], given, stack),
                 "Capabilities": ["CAPABILITY_NAMED_IAM"],
                 "Tags": [{"Key": "app", "Value": names.APP_NAME}]}
    if stack is None:
        _refuse_orphans(stage)
        say(f"creating stack {name}")
        cfn.create_stack(OnFailure="ROLLBACK", **arguments)
    else:
        try:
            cfn.update_stack(**arguments)
            say(f"updating stack {name}")
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
            say(f"stack {name} is up to date")
    stack = _wait(cfn, name)
    if stack is None or stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        status = stack["StackStatus"] if stack else "deleted"
        raise DeployError(
            f"stack {name} ended {status}; nothing of the app was deployed. Failures: "
            f"{_failures(cfn, name) if stack else 'see the stack events'}. Fix the cause and "
            f"rerun `make deploy STAGE={stage}` (CloudFormation rolled back what it created)")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


# -- the stage's settings -------------------------------------------------------------------

def _read_config(project_dir: str) -> dict:
    with open(os.path.join(project_dir, CONFIG)) as handle:
        return json.load(handle)


def _write_config(project_dir: str, config: dict) -> None:
    with open(os.path.join(project_dir, CONFIG), "w") as handle:
        json.dump(config, handle, indent=2)
        handle.write("\n")


def wire_settings(project_dir: str, stage: str, outputs: dict[str, str]) -> bool:
    """Write the stack's outputs into the stage's environment; True when something changed."""
    config = _read_config(project_dir)
    environment = config["stages"][stage].setdefault("environment_variables", {})
    wanted = {setting: outputs[output]
              for output, setting in resources.SETTINGS_FROM_OUTPUTS.items()}
    if all(environment.get(key) == value for key, value in wanted.items()):
        say(f"stage {stage}'s settings already point at the stack")
        return False
    environment.update(wanted)
    _write_config(project_dir, config)
    say(f"wired {', '.join(sorted(wanted))} into stage {stage} ({CONFIG})")
    return True


# -- the app (Chalice) ----------------------------------------------------------------------

class _WithoutRestApi:
    """Chalice's application graph with the REST API replaced by its function (and role): the
    embedded AWS cannot import the API's Swagger 2.0, everything else is rehearsed."""

    def __init__(self, builder):
        self._builder = builder

    def build(self, config, stage):
        from chalice.deploy import models

        application = self._builder.build(config, stage)
        application.resources = [
            r.lambda_function if isinstance(r, models.RestAPI) else r
            for r in application.resources]
        return application


def _chalice(project_dir: str, stage: str):
    from chalice.cli.factory import CLIFactory
    from chalice.utils import UI

    factory = CLIFactory(project_dir)
    config = factory.create_config_obj(chalice_stage_name=stage)
    return factory, config, factory.create_botocore_session(), UI()


def _rules(stage: str) -> list[str]:
    """The EventBridge rules Chalice creates for the app's event handlers."""
    import app as chalice_app

    return [names.rule(stage, source.name) for source in chalice_app.app.event_sources
            if hasattr(source, "event_pattern")]


def _set_rules(stage: str, enabled: bool) -> list[str]:
    events, changed = _client("events"), []
    existing = {rule["Name"] for rule in events.list_rules(
        NamePrefix=names.function(stage, ""))["Rules"]}
    for rule in _rules(stage):
        if rule in existing:
            (events.enable_rule if enabled else events.disable_rule)(Name=rule)
            changed.append(rule)
    return changed


def _functions(stage: str) -> list[str]:
    prefix = names.api_function(stage)
    return sorted(f["FunctionName"] for page in _client("lambda").get_paginator(
        "list_functions").paginate() for f in page["Functions"]
        if f["FunctionName"].startswith(prefix))


def deploy_app(project_dir: str, stage: str) -> dict:
    """`chalice deploy --stage`; a failure disables the rule, so nothing runs half-deployed."""
    factory, config, session, ui = _chalice(project_dir, stage)
    _without_bytecode(project_dir)
    deployer = factory.create_default_deployer(session=session, config=config, ui=ui)
    if _rehearsal():
        say("rehearsal: the REST API is left out, not its function (the embedded AWS cannot "
            "import Swagger 2.0)")
        deployer._application_builder = _WithoutRestApi(deployer._application_builder)
    say(f"deploying the app (Chalice) to stage {stage}")
    try:
        deployed = deployer.deploy(config, chalice_stage_name=stage)
    except BaseException as error:  # Ctrl-C too: never leave a half-deployed app listening
        held = _set_rules(stage, enabled=False)
        created = _functions(stage)
        guard = (f"rule {', '.join(held)} is disabled, so no finding reaches a half-deployed app"
                 if held else "no rule exists yet, so no finding reaches it")
        raise DeployError(
            f"the app's deployment failed ({' '.join(str(error).split())}). In place: the "
            f"resources stack and {len(created)} function(s) ({', '.join(created) or '-'}); "
            f"{guard}. "
            f"Rerun `make deploy STAGE={stage}` to finish: Chalice updates what exists") from None
    say(f"rules enabled: {', '.join(_set_rules(stage, enabled=True)) or 'none'}")
    factory.create_deployment_reporter(ui=ui).display_report(deployed)
    return deployed


def deploy(stage: str, parameters: dict[str, str]) -> dict:
    project_dir = _project(stage)
    stale = permissions.stale()
    if stale:
        raise DeployError(f"policy files are stale ({', '.join(stale)}): run `make policies`")
    build_dir = os.path.join(project_dir, "build", stage)
    outputs = converge_stack(stage, parameters, build_dir)
    wire_settings(project_dir, stage, outputs)
    deployed = deploy_app(project_dir, stage)
    say(f"done: stage {stage} is deployed")
    return {"outputs": outputs, "deployed": deployed}


# -- destroy --------------------------------------------------------------------------------

def _active_incidents(table: str) -> int:
    """Incidents still holding an instance (OPEN, CONTAINED, PARTIAL): their records are what
    releases those instances."""
    from botocore.exceptions import ClientError

    try:
        pages = _client("dynamodb").get_paginator("scan").paginate(
            TableName=table, Select="COUNT",
            FilterExpression="record_type = :incident AND #status IN (:o, :c, :p)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":incident": {"S": "incident"}, ":o": {"S": "OPEN"},
                                       ":c": {"S": "CONTAINED"}, ":p": {"S": "PARTIAL"}})
        return sum(page["Count"] for page in pages)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return 0
        raise


def destroy(stage: str, purge: bool, force: bool = False) -> None:
    """Delete the app and the stack; the table and the evidence bucket stay unless `purge`.
    Refused while incidents are active (their instances could not be released), unless
    `force`."""
    project_dir = _project(stage)
    active = _active_incidents(names.incidents_table(stage))
    if active and not force:
        raise DeployError(f"{active} incident(s) of stage {stage} are still active: release "
                          f"them first (or `make destroy STAGE={stage} FORCE=1`). Nothing was "
                          "deleted")
    if os.path.exists(os.path.join(project_dir, ".chalice", "deployed", f"{stage}.json")):
        factory, config, session, ui = _chalice(project_dir, stage)
        say(f"deleting the app (Chalice) of stage {stage}")
        factory.create_deletion_deployer(session=session, ui=ui).deploy(
            config, chalice_stage_name=stage)
    elif _functions(stage):
        held = _set_rules(stage, enabled=False)
        raise DeployError(
            f"functions of stage {stage} exist ({', '.join(_functions(stage))}) but this "
            f"project has no record of deploying them (.chalice/deployed/{stage}.json); "
            f"rule(s) disabled: {', '.join(held) or 'none'}. Run the destroy from the clone "
            "that deployed them. Nothing else was deleted")
    else:
        say(f"no app deployed for stage {stage}: nothing to delete")
    cfn, name = _client("cloudformation"), resources.stack_name(stage)
    stack = _wait(cfn, name)
    if stack is not None:
        say(f"deleting stack {name}")
        cfn.delete_stack(StackName=name)
        stack = _wait(cfn, name)
        if stack is not None and stack["StackStatus"] != "DELETE_COMPLETE":
            raise DeployError(f"stack {name} ended {stack['StackStatus']}: "
                              f"{_failures(cfn, name)}; rerun `make destroy STAGE={stage}`")
    else:
        say(f"no stack {name}")
    kept = _kept_resources(stage)
    found = _existing(kept)
    if not found:
        return
    if not purge:
        say(f"kept (evidence is never deleted by default): {_listed(found)}; "
            f"`make destroy STAGE={stage} PURGE=1` removes them")
        return
    _purge(found)


def _purge(found: dict[str, str]) -> None:
    """The evidence first, the records last: if object lock keeps evidence, the incidents that
    name it stay too."""
    from botocore.exceptions import ClientError

    if "bucket" in found:
        s3, bucket = _client("s3"), found["bucket"]
        say(f"purging bucket {bucket} (every version)")
        kept = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if doomed:
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed,
                                                                  "Quiet": True})
                kept += [e["Key"] for e in answer.get("Errors", [])]
        try:
            if kept:
                raise DeployError(f"{len(kept)} object version(s) were not deleted")
            s3.delete_bucket(Bucket=bucket)
        except (ClientError, DeployError) as error:
            raise DeployError(f"bucket {bucket} was not deleted ({error}; object lock keeps "
                              "evidence until its retention ends); the incidents table is "
                              "kept with it") from None
    if "table" in found:
        say(f"purging table {found['table']}")
        _client("dynamodb").delete_table(TableName=found["table"])


# -- package --------------------------------------------------------------------------------

def merge_template(stage: str) -> dict:
    """The resources stack plus what wires Chalice's functions to it: their deterministic
    names (the state machine invokes them by name) and their settings (from the resources)."""
    from chalice.utils import to_cfn_resource_name

    template = resources.template(stage)
    settings = {setting: template["Outputs"][output]["Value"]
                for output, setting in resources.SETTINGS_FROM_OUTPUTS.items()}
    for function in permissions.needs():
        if function == "api_handler":
            logical_id, name = API_LOGICAL_ID, names.api_function(stage)
        else:
            logical_id, name = to_cfn_resource_name(function), names.function(stage, function)
        template["Resources"][logical_id] = {"Properties": {
            "FunctionName": name, "Environment": {"Variables": dict(settings)}}}
    return template


def package(stage: str, out_dir: str | None = None) -> str:
    """build/<stage>/ (or out_dir): sam.json (one deployable template) and deployment.zip."""
    out_dir = out_dir or os.path.join(PROJECT_DIR, "build", stage)
    os.makedirs(out_dir, exist_ok=True)
    merge_path = os.path.join(out_dir, "merge-template.json")
    with open(merge_path, "w") as handle:
        json.dump(merge_template(stage), handle, indent=1, sort_keys=True)
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    environ = {"AWS_DEFAULT_REGION": "us-east-1", **os.environ,  # the template is region-free
               "PYTHONDONTWRITEBYTECODE": "1"}
    _without_bytecode(PROJECT_DIR)
    subprocess.run([chalice, "package", "--stage", stage, "--merge-template", merge_path,
                    out_dir], cwd=PROJECT_DIR, env=environ, check=True)
    say(f"wrote {out_dir}/sam.json and {out_dir}/deployment.zip")
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("deploy", "destroy", "package"))
    parser.add_argument("--stage", required=True, choices=permissions.STAGES)
    parser.add_argument("--alert-email", default=None)
    parser.add_argument("--evidence-retention-days", default=None)
    parser.add_argument("--purge", action="store_true",
                        help="destroy: delete the incidents table and evidence bucket too")
    parser.add_argument("--force", action="store_true",
                        help="destroy: even while incidents are active")
    args = parser.parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if args.command == "deploy":
            deploy(args.stage, {"AlertEmail": args.alert_email,
                                "EvidenceRetentionDays": args.evidence_retention_days})
        elif args.command == "destroy":
            destroy(args.stage, args.purge, args.force)
        else:
            package(args.stage)
    except DeployError as error:
        say(f"FAILED: {error}")
        return 1
    except (BotoCoreError, ClientError) as error:
        say(f"FAILED: AWS answered {error}. Rerun the same command once the cause is fixed: "
            "every step converges")
        return 1
    return 0
