"""Security Hub both ways (`SECURITY_HUB=true`).

In: the custom action "Quarantine instance" (the resources stack creates it, `action_id`) sends
the findings an analyst selected; each EC2 instance they name (`Resources[]` of type
`AwsEc2Instance`) is quarantined as on the manual path (a person decided). The event names no
caller: the requester recorded is the action's ARN, and the reason names the finding ids.

Out: an incident's originating findings follow it, through classic `BatchUpdateFindings`:
`NOTIFIED` with a note naming the incident when it opens, the note updated with the outcome when
it settles, `RESOLVED` once the instance is released. The findings are the custom action's, or
the GuardDuty finding as Security Hub imported it (its Id there is the GuardDuty finding's ARN);
they are written on the incident when it opens and sealed with it. One function
(`sync_findings`) makes the call, asked asynchronously, after StartExecution, with the incident
id and the workflow status by the function that changed the incident. It takes the findings
from the incident's sealed binding in its execution's own input (Step Functions' record, which
nobody who writes the table can change: such a writer cannot point the update at another
finding), reads where the incident stands from its record, and sets `RESOLVED` only on a record
that says released. A Security Hub that is off or denies is a
recorded step and a notice, never a failed containment.
"""

import json
import logging
import re
from dataclasses import dataclass

from chalicelib import actions, aws, bindings, findings, incidents, seals, settings
from chalicelib.settings import ACCOUNT_ID

log = logging.getLogger(__name__)

FUNCTION = "sync_findings"  # its Chalice name
INVOKE_PERMISSIONS = ("lambda:InvokeFunction/sync-findings",)  # what a caller needs to ask it
UPDATE_PERMISSIONS = ("securityhub:BatchUpdateFindings",)
PERMISSIONS = (*incidents.GET_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
               *seals.VERIFY_PERMISSIONS, "states:DescribeExecution", *UPDATE_PERMISSIONS,
               "sns:Publish")  # verified_seal and release_request check no account
EVENT_PATTERN = {"source": ["aws.securityhub"],
                 "detail-type": ["Security Hub Findings - Custom Action"]}
ACTION_NAME = "Quarantine instance"  # what analysts see (Security Hub: 20 characters at most)
WORKFLOW = ("NOTIFIED", "RESOLVED")  # the only statuses it sets (its policy says so too)
# The fields it writes, and the ones it never does (deploy/grants.py: the policy refuses them).
WRITTEN = ("Workflow.Status", "Note.Text", "Note.UpdatedBy")
NEVER_WRITTEN = ("Severity.Label", "Severity.Normalized", "Severity.Product", "Confidence",
                 "Criticality", "Types", "UserDefinedFields", "VerificationState",
                 "RelatedFindings.Id", "RelatedFindings.ProductArn")
UPDATED_BY = aws.APP_NAME
NOTE_LIMIT = 512  # Security Hub's bound on Note.Text
MAX_FINDINGS = 100  # of one event, and of one incident (one BatchUpdateFindings call's)
MAX_INSTANCES = 25  # quarantined from one custom action
MAX_RESOURCES = 32  # read of one finding
FINDING_ID = re.compile(r"\A[\x21-\x7e]{1,512}\Z")  # printable ASCII, no space
PRODUCT_ARN = re.compile(r"\Aarn:aws:securityhub:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}):"
                         r"(?:[0-9]{12})?:product/[\w.-]{1,128}/[\w.-]{1,128}\Z", re.ASCII)


class MalformedAction(ValueError):
    """A custom action's event the product cannot read."""


@dataclass(frozen=True)
class Chosen:
    """An instance the selected findings name, and those findings ({Id, ProductArn})."""

    instance_id: str
    account_id: str
    region: str
    findings: tuple


def action_id(stage: str) -> str:
    """The custom action's Id in Security Hub: one per stage (alphanumeric, 20 at most)."""
    return ("Quarantine" + re.sub(r"[^A-Za-z0-9]", "", stage))[:20]


def action_arn(region: str, account: str, current=None) -> str:
    """This stage's custom action (the stage: the state machine's name, `<app>-<stage>`)."""
    machine = (current or settings.get()).state_machine_arn.rsplit(":", 1)[-1]
    stage = machine.removeprefix(f"{aws.APP_NAME}-")
    return f"arn:aws:securityhub:{region}:{account}:action/custom/{action_id(stage)}"


def of_finding(request: findings.QuarantineRequest) -> tuple:
    """The GuardDuty finding of an automatic request as Security Hub holds it (none when its
    ARN is unknown, and none for a finding pasted on the manual path: whoever pastes it chooses
    which finding it names). `alone`: it names this instance only (its release resolves it;
    a group's finding is resolved by none)."""
    finding = request.finding
    if request.source != "guardduty" or finding is None or not finding.arn:
        return ()
    return ({"Id": finding.arn, "alone": not request.group_id,
             "ProductArn": f"arn:aws:securityhub:{request.region}::product/aws/guardduty"},)


def chosen(detail) -> tuple[list[Chosen], list[str]]:
    """The instances a custom action's findings name (at most MAX_INSTANCES), each with the
    findings naming it; and what was not read (a finding or resource that is not well formed,
    instances over the bound), for the log."""
    if not isinstance(detail, dict) or not isinstance(detail.get("findings"), list):
        raise MalformedAction("the event carries no list of findings")
    selected = detail["findings"]
    if not selected or len(selected) > MAX_FINDINGS:
        raise MalformedAction(f"the event carries {len(selected)} findings "
                              f"(1..{MAX_FINDINGS} are read)")
    named: dict[tuple, list] = {}
    problems = []
    for finding in selected:
        identifier, why = _identifier(finding)
        if why:
            problems.append(why)
            continue
        resources = finding.get("Resources")
        if not isinstance(resources, list) or not resources:
            problems.append(f"finding {identifier['Id'][:80]} names no resource")
            continue
        instances = []
        for resource in resources[:MAX_RESOURCES]:
            where, why = _instance(resource, finding)
            if why:
                problems.append(f"finding {identifier['Id'][:80]}: {why}")
            elif where and where not in instances:
                instances.append(where)
        identifier["alone"] = len(instances) == 1
        for where in instances:
            if identifier not in named.setdefault(where, []):
                named[where].append(identifier)
    instances = list(named.items())
    for (instance_id, _, _), _ in instances[MAX_INSTANCES:]:
        problems.append(f"instance {instance_id} not quarantined: one action quarantines "
                        f"{MAX_INSTANCES} instances at most (select fewer findings)")
    return [Chosen(*where, tuple(ids)) for where, ids in instances[:MAX_INSTANCES]], problems


def _identifier(finding) -> tuple[dict | None, str]:
    if not isinstance(finding, dict):
        return None, "a finding that is not an object"
    finding_id, product = finding.get("Id"), finding.get("ProductArn")
    if not isinstance(finding_id, str) or not FINDING_ID.match(finding_id):
        return None, f"a finding whose Id is not one: {str(finding_id)[:80]!r}"
    if not isinstance(product, str) or not PRODUCT_ARN.match(product):
        return None, f"finding {finding_id[:80]} has no valid ProductArn"
    return {"Id": finding_id, "ProductArn": product}, ""


def _instance(resource, finding: dict) -> tuple[tuple | None, str]:
    """(instance, account, region) of an `AwsEc2Instance` resource (None: another type), in the
    finding's own account and region: a finding anyone imported into one account cannot name
    instances in another."""
    if not isinstance(resource, dict) or resource.get("Type") != "AwsEc2Instance":
        return None, ""
    named = resource.get("Id")
    account, region = finding.get("AwsAccountId"), resource.get("Region") or finding.get("Region")
    if not (isinstance(account, str) and ACCOUNT_ID.match(account)):
        return None, "the finding names no valid AwsAccountId"
    arn = findings.INSTANCE_ARN.match(named) if isinstance(named, str) else None
    if arn:
        where = (arn.group("id"), arn.group("account"), arn.group("region"))
    elif isinstance(named, str) and findings.INSTANCE_ID.match(named) and \
            isinstance(region, str) and findings.REGION.match(region):
        where = (named, account, region)
    else:
        return None, f"an AwsEc2Instance resource without an instance ARN: {str(named)[:80]!r}"
    if where[1] != account or (isinstance(region, str) and where[2] != region):
        return None, (f"instance {where[0]} is in {where[1]}/{where[2]}, outside the finding's "
                      f"account and region ({account}/{region})")
    return where, ""


def requests(detail, action: str) -> tuple[list[findings.QuarantineRequest], list[str]]:
    """One quarantine request per instance the custom action's findings name."""
    found, problems = chosen(detail)
    return [findings.QuarantineRequest(
        instance_id=c.instance_id, account_id=c.account_id, region=c.region,
        source="securityhub", requested_by=action, security_hub_findings=c.findings,
        reason=f"Security Hub custom action {ACTION_NAME!r} on finding(s) "
               f"{', '.join(f['Id'] for f in c.findings)}"[:1024]) for c in found], problems


def follow(incident_id: str, release_execution: str | None = None) -> None:
    """Ask for the incident's findings to follow it (asynchronously: no caller waits, and a
    failure is logged, never the caller's): NOTIFIED, or RESOLVED from the release step
    (`release_execution`: its execution); nothing while SECURITY_HUB is off."""
    try:
        if not settings.get().security_hub:
            return
        asked = {"incident_id": incident_id, "workflow_status": "NOTIFIED"}
        if release_execution:
            asked.update(workflow_status="RESOLVED", release_execution=release_execution)
        aws.client("lambda").invoke(FunctionName=settings.stage_function(FUNCTION),
                                    InvocationType="Event", Payload=json.dumps(asked).encode())
    except Exception:
        log.exception("could not ask Security Hub to follow %s", incident_id)


def note(incident: dict, bound: dict) -> str:
    """What the finding's note says of the incident (where it stands: `incident`, its record;
    which instance: `bound`, its sealed binding), within Security Hub's bound."""
    status = incident.get("status")
    said = {"OPEN": "opened: containment under way",
            "AWAITING_APPROVAL": "opened: containment awaits approval",
            "RELEASED": "released: "
                        + str((incident.get("release") or {}).get("reason") or "")[:200],
            incidents.NOTIFIED: "closed without containment: "
                                + str(incident.get("resolution") or "")[:200]}.get(
        status, f"containment {status}")
    text = (f"{UPDATED_BY} incident {bound['incident_id']} on {bound['instance_id']} "
            f"({bound['account_id']}, {bound['region']}): {said}. "
            f"GET /incidents/{bound['incident_id']}")
    return text[:NOTE_LIMIT]


def run(event) -> dict:
    """Bring the incident's findings in Security Hub to the workflow status asked, with a note
    saying where the incident stands; keep the outcome on the incident (one field, replaced:
    however often it is asked, the record does not grow) and announce a failure once."""
    event = event if isinstance(event, dict) else {}
    incident_id, wanted = event.get("incident_id"), event.get("workflow_status")
    if not isinstance(incident_id, str) or not incidents.INCIDENT_ID.match(incident_id) or \
            wanted not in WORKFLOW:
        log.warning("Security Hub not updated: not a request: %r", str(event)[:200])
        return {"updated": False, "reason": "not a request"}
    incident = incidents.get(incident_id)
    try:
        if incident is None:
            raise bindings.Refused("no such incident")
        bound = _sealed(incident_id)
        if wanted == "RESOLVED":
            _released(incident, event.get("release_execution"))
        elif incident.get("status") == "RELEASED":  # late: the release's RESOLVED stands
            raise bindings.Refused("the incident is released: RESOLVED stands")
    except bindings.Refused as refusal:
        log.warning("Security Hub not updated for %s: %s", incident_id, refusal)
        return {"updated": False, "incident_id": incident_id, "reason": str(refusal)}
    identifiers = list(bound.get("security_hub_findings") or [])[:MAX_FINDINGS]
    if not identifiers:
        log.info("%s has no finding in Security Hub", incident_id)
        return {"updated": False, "incident_id": incident_id, "reason": "no finding"}
    text = note(incident, bound)
    # A finding that names other instances too is not resolved by this one's release: noted.
    resolved = [i for i in identifiers if wanted == "NOTIFIED" or i.get("alone")]
    noted = [i for i in identifiers if i not in resolved]
    errors = _update(resolved, wanted, text) + _update(noted, "NOTIFIED", text)
    missing = [e for e in errors if e["code"] == "FindingNotFound"]
    outcome = ("updated" if not errors else "not-found" if len(missing) == len(identifiers)
               else "failed" if len(errors) == len(identifiers) else "partial")
    before = incident.get("security_hub") or {}
    incidents.note_progress(incident_id, {"security_hub": {
        "workflow_status": wanted, "outcome": outcome, "at": incidents.now(),
        "findings": len(identifiers), "not_updated": len(errors), "errors": errors[:5]}})
    log.info("Security Hub, %s: %d finding(s) %s, %s (%d not)", incident_id, len(identifiers),
             wanted, outcome, len(errors))
    failed = [e for e in errors if e not in missing]  # not found yet: Security Hub imports late
    if failed and (before.get("outcome"), before.get("workflow_status")) != (outcome, wanted):
        from chalicelib import report, workflow

        workflow.announce_quietly(report.not_followed(incident, wanted, failed))
    return {"updated": not errors, "incident_id": incident_id, "workflow_status": wanted,
            "outcome": outcome}


def _released(incident: dict, release_execution) -> None:
    """RESOLVED only for a release the product made: the record says RELEASED, and the
    release execution the release step names carries a release of this incident sealed for
    it (whoever may write the table and invoke this function can forge neither)."""
    if incident.get("status") != "RELEASED":
        raise bindings.Refused(f"RESOLVED asked, and the incident is {incident.get('status')}")
    if not isinstance(release_execution, str) or not release_execution.startswith(
            settings.get().state_machine_arn.replace(":stateMachine:", ":execution:") + ":"):
        raise bindings.Refused("RESOLVED asked without the release's execution")
    described = aws.tolerate("ExecutionDoesNotExist", aws.client(
        "stepfunctions", aws.region_of(release_execution)).describe_execution,
        executionArn=release_execution)
    started = json.loads((described or {}).get("input") or "{}") or {}
    if started.get("mode") != "release" or \
            (started.get("incident") or {}).get("incident_id") != incident["incident_id"]:
        raise bindings.Refused(f"{release_execution} is no release of this incident")
    bindings.release_request({**started, "execution": release_execution})


def _sealed(incident_id: str) -> dict:
    """The incident as its execution was started with it, its seal verified (it touches no
    account: whether the account is allowed today does not matter)."""
    from chalicelib import workflow  # late: workflow asks this module to follow

    arn = workflow.execution_arn(incident_id)
    described = aws.tolerate("ExecutionDoesNotExist", aws.client(
        "stepfunctions", aws.region_of(arn)).describe_execution, executionArn=arn)
    if described is None:
        raise bindings.Refused("its execution has not started")
    held = (json.loads(described.get("input") or "{}") or {}).get("incident")
    if not isinstance(held, dict) or held.get("incident_id") != incident_id:
        raise bindings.Refused("its execution is not that incident's")
    return bindings.verified_seal(held)


def _update(identifiers: list[dict], wanted: str, text: str) -> list[dict]:
    """BatchUpdateFindings in each region the findings live in; the failure records."""
    by_region: dict[str, list] = {}
    for identifier in identifiers:
        by_region.setdefault(PRODUCT_ARN.match(identifier["ProductArn"]).group("region"),
                             []).append({"Id": identifier["Id"],
                                         "ProductArn": identifier["ProductArn"]})
    errors = []
    for region, batch in by_region.items():
        try:
            answer = aws.client("securityhub", region).batch_update_findings(
                FindingIdentifiers=batch, Workflow={"Status": wanted},
                Note={"Text": text, "UpdatedBy": UPDATED_BY})
        except Exception as error:  # off, denied, throttled: recorded and reported
            errors += [actions.error_record("security-hub", i["Id"], error) for i in batch]
            continue
        errors += [actions.failure_record(
            "security-hub", (u.get("FindingIdentifier") or {}).get("Id", "?"),
            str(u.get("ErrorCode") or "Unprocessed"), str(u.get("ErrorMessage") or ""))
            for u in answer.get("UnprocessedFindings") or []]
    return errors
