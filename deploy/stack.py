"""The stage's resources stack (deploy/resources.py): created or updated, deleted, and waited
for, within bounds, with what failed named when it ends badly. An update first brings the
incidents table's indexes to the app's, one per update (deploy/indexes.py)."""

import json
import os
import time

from chalicelib import incidents
from deploy import indexes, names, resources, retained
from deploy.session import DeployError, client, rehearsal, say

IN_PROGRESS = "_IN_PROGRESS"


def _describe(cfn, name: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def _wait(cfn, name: str, timeout: float = 3600) -> dict | None:
    """The stack once no operation is running on it (None: there is none)."""
    delay, deadline = (0.2 if rehearsal() else 10), time.monotonic() + timeout
    while True:
        stack = _describe(cfn, name)
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


def converge(stage: str, given: dict[str, str], build_dir: str) -> dict[str, str]:
    """Create or update the stage's resources stack and wait; returns its outputs."""
    from botocore.exceptions import ClientError

    cfn, name = client("cloudformation"), resources.stack_name(stage)
    template = resources.template(stage)
    if resources.ORGANIZATION_PARAMETER in template["Parameters"]:
        given = {**given, resources.ORGANIZATION_PARAMETER: organization_id()}
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
        retained.refuse_orphans(stage)
        say(f"creating stack {name}")
        cfn.create_stack(OnFailure="ROLLBACK", **arguments)
    else:
        _step_indexes(cfn, name, stack, stage, arguments)
        try:
            cfn.update_stack(**arguments)
            say(f"updating stack {name}")
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
            say(f"stack {name} is up to date")
    stack = _settled(cfn, name, stage)
    indexes.wait_active(names.incidents_table(stage))
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def organization_id() -> str:
    """The home account's organization, whose accounts' tamper events the default bus admits
    with MEMBER_ACCOUNTS=* (any account of an organization may ask which it is)."""
    from botocore.exceptions import ClientError

    try:
        return client("organizations").describe_organization()["Organization"]["Id"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "AWSOrganizationsNotInUseException":
            raise
    raise DeployError("MEMBER_ACCOUNTS=* admits the accounts of the home account's "
                      "organization, and this account belongs to none: list the member "
                      "accounts instead. Nothing was changed")


def _settled(cfn, name: str, stage: str) -> dict:
    """The stack once its operation ended, which must have ended well."""
    stack = _wait(cfn, name)
    if stack is None or stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        status = stack["StackStatus"] if stack else "deleted"
        raise DeployError(
            f"stack {name} ended {status}; nothing of the app was deployed. Failures: "
            f"{_failures(cfn, name) if stack else 'see the stack events'}. Fix the cause and "
            f"rerun `make deploy STAGE={stage}` (CloudFormation rolled back what it created)")
    return stack


def _step_indexes(cfn, name: str, stack: dict, stage: str, arguments: dict) -> None:
    """Bring the table's indexes to the app's, one per update of the stack's current template
    with only the table changed (each new index waited for until ACTIVE); then the stack's own
    update changes no index. A rerun resumes where a failed step left the table."""
    table = names.incidents_table(stage)
    for _ in range(2 * MAX_INDEXES):  # each step deletes or adds one of at most 20 and 20
        current = indexes.live(table)
        step = None if current is None else indexes.next_step(current)
        if step is None:
            return
        template = cfn.get_template(StackName=name)["TemplateBody"]
        template = json.loads(template) if isinstance(template, str) else template
        table_resource = template["Resources"]["IncidentsTable"]
        table_resource["Properties"] = {
            **{key: value for key, value in table_resource["Properties"].items()
               if key != "GlobalSecondaryIndexes"}, **incidents.table_definition(step)}
        added = {i["IndexName"] for i in step} - {i["IndexName"] for i in current}
        removed = {i["IndexName"] for i in current} - {i["IndexName"] for i in step}
        say(f"table {table}: " + (f"adding index {added.pop()}" if added
                                  else f"deleting index {removed.pop()}"))
        cfn.update_stack(**{**arguments, "TemplateBody": json.dumps(template),
                            "Parameters": _parameters(template.get("Parameters", {}), {}, stack)})
        _settled(cfn, name, stage)
        indexes.wait_active(table)
    raise DeployError(f"table {table}: its indexes did not reach the app's; see the stack events")


MAX_INDEXES = 20  # DynamoDB's limit of global secondary indexes per table


def delete(stage: str) -> None:
    """Delete the stage's stack and wait (the table and bucket it retains stay)."""
    cfn, name = client("cloudformation"), resources.stack_name(stage)
    stack = _wait(cfn, name)
    if stack is None:
        say(f"no stack {name}")
        return
    say(f"deleting stack {name}")
    cfn.delete_stack(StackName=name)
    stack = _wait(cfn, name)
    if stack is not None and stack["StackStatus"] != "DELETE_COMPLETE":
        raise DeployError(f"stack {name} ended {stack['StackStatus']}: "
                          f"{_failures(cfn, name)}; rerun `make destroy STAGE={stage}`")
