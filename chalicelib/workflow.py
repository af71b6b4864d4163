"""Start incidents: describe the instance, claim it atomically, make the first cut, start the
execution.

The critical path to isolation is four round trips after the invoke: DescribeInstances (which
yields the exempt tag and the pre-incident state, written with the claim; the product's groups
and the preservation attributes are read beside it), the claim (one conditional write, sealed
beside it), and the two swaps of the first cut (chalicelib/cut.py: every interface at once,
preservation and tracking beside the first). StartExecution follows (named after the incident,
so a retry cannot run twice). A further finding for an instance under an active incident is
recorded on it and announced, not re-run; a claim whose execution never started is started by
the next request for that instance.
"""

import json
import logging
import re
import time
from datetime import datetime, timezone

from chalicelib import (accounts, actions, aws, bindings, cut, execution, findings, incidents,
                        instances, outcomes, report, settings, steps)
from chalicelib.actions import isolation

log = logging.getLogger(__name__)

PERMISSIONS = (
    "ec2:DescribeInstances", "states:StartExecution", "states:DescribeExecution", "sns:Publish",
    *bindings.SEAL_PERMISSIONS,
    *accounts.ORGANIZATION_PERMISSIONS,
    *incidents.CLAIM_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
    *incidents.RECORD_PERMISSIONS,
)
EXECUTION_NAME = re.compile(r"\A[A-Za-z0-9_-]{1,80}\Z")  # AWS's rule; moto accepts more
START_GRACE_SECONDS = 120  # a claim this old without a running step had its start lost
def check_settings(current) -> None:
    """Refuse to act without the app's resources."""
    for name in ("state_machine_arn", "topic_arn", "incidents_table", "records_key_arn"):
        if not getattr(current, name):
            raise outcomes.NotConfigured(f"{name.upper()} is not set: the app cannot act")


def admit(request: findings.QuarantineRequest, home_account: str):
    """The settings to act under, once the app is configured and the account is allowed."""
    current = settings.get()
    check_settings(current)
    why = accounts.refusal(request.account_id, home_account, current)
    if why:
        raise outcomes.NotAllowed(f"account {request.account_id} is not allowed: {why}")
    return current


def start(request: findings.QuarantineRequest,
          home_account: str) -> outcomes.Outcome | outcomes.ExemptAnnounced:
    """Open an incident for `request` (or record it on the active one): the outcome."""
    current = admit(request, home_account)
    dry_run = request.dry_run or current.dry_run
    observed = instances.observe(request, home_account, attributes=() if dry_run else cut.AHEAD,
                                 groups=cut.skipped(request, current, False) is None)
    instance = observed.instance
    exempt = findings.is_exempt(instance.get("Tags"), current.exempt_tag)
    if exempt:
        if request.source == "guardduty":
            announce(report.not_acted_on(request.to_dict(), "exempt"))
            log.info("not acted on %s: exempt (%s=true)", request.instance_id, current.exempt_tag)
            return outcomes.ExemptAnnounced(request.instance_id)
        if not request.force:
            raise outcomes.InstanceExempt(
                f"instance {request.instance_id} carries {current.exempt_tag}=true; "
                'send "force": true to quarantine it anyway')
    incident = new_incident(request, instance, home_account, observed.attributes)
    if dry_run:
        incident["status"] = "DRY_RUN"
        _, incident["seal"] = aws.concurrently(
            [lambda: incidents.put(incident), lambda: bindings.seal_incident(incident)])
        log.info("dry run %s for %s (%s)", incident["incident_id"], request.instance_id,
                 request.source)
        return outcomes.DryRun(begin(incident))
    why_not = cut.skipped(request, current, exempt)
    target = None if why_not else steps.target_acting(incident, current)
    if target:
        cut.remember(target, instance, observed.groups, observed.attributes)
    try:  # the seal (and the groups a new VPC needs) beside the claim: nothing new in front
        _, incident["seal"], _ = aws.concurrently(
            [lambda: incidents.claim(incident), lambda: bindings.seal_incident(incident),
             lambda: target and cut.prepare(target)])
    except incidents.AlreadyActive as active:
        return further(active.incident_id, request, observed, home_account)
    except Exception:  # claimed but not sealed: the next request starts it (no-op unclaimed)
        _mark_start_failed(incident)
        raise
    log.info("opened %s for %s (%s)", incident["incident_id"], request.instance_id, request.source)
    if why_not:
        log.info("no first cut on %s: %s", request.instance_id, why_not)
        return outcomes.Opened(begin(incident))
    return outcomes.Opened(begin(incident, first_cut(target)))


def first_cut(target) -> dict:
    """Isolate the claimed instance from here (chalicelib/cut.py) and record what the cut made
    on the incident (sealed, before the execution starts: should Contain never run, release
    still undoes it); what the execution's Contain step is told of it: when, which interfaces
    ended isolated, what failed, which changes are recorded already."""
    incident = target.incident
    started = incidents.now()
    failures = cut.make(target)
    isolated = sorted(eni for eni, why in target.cache.get("isolated", {}).items() if not why)
    made = {"start": started, "end": incidents.now(), "isolated": isolated,
            "failures": failures, "containment": cut.containment(target)}
    log.info("first cut on %s for %s: %d of %d interfaces isolated, %d failures",
             incident["instance_id"], incident["incident_id"], len(isolated),
             len(incident["pre_state"]["interfaces"]), len(failures))
    changes = cut.changes(target)
    try:
        incidents.record_step(incident["incident_id"], "cut", started,
                              "isolated" if len(isolated) == len(target.pre_state["interfaces"])
                              else "partly isolated", changes,
                              fields={"first_cut": made, **({"containment": made["containment"]}
                                                             if made["containment"] else {})})
        made["recorded"] = sorted({actions.change_key(c) for c in changes})
    except Exception:  # Contain records them instead
        log.exception("could not record the first cut on %s", incident["incident_id"])
    return made


def new_incident(request: findings.QuarantineRequest, instance: dict, home_account: str,
                 attributes: dict | None = None) -> dict:
    incident_id = incidents.new_id()
    opened = incidents.now()
    return {
        "incident_id": incident_id,
        "status": "OPEN",
        "instance_id": request.instance_id,
        "account_id": request.account_id,
        "home_account": home_account,
        "region": request.region,
        "source": request.source,
        "reason": request.reason,
        "finding": _finding_ref(request),
        "requested_by": request.requested_by,
        "force": request.force,
        "opened_at": opened,
        "updated_at": opened,
        "execution_arn": execution_arn(incident_id),
        "pre_state": instances.pre_state(instance, attributes),
        "findings_count": 0,
        "latest_ring": {},
    }


def execution_name(incident_id: str) -> str:
    if not EXECUTION_NAME.match(incident_id):
        raise ValueError(f"{incident_id!r} cannot name an execution")
    return incident_id


def execution_arn(incident_id: str) -> str:
    """Known before the execution starts, so the claim can hold it."""
    return _arn_of(execution_name(incident_id))


def _arn_of(name: str) -> str:
    machine = settings.get().state_machine_arn
    return machine.replace(":stateMachine:", ":execution:") + ":" + name


def begin(incident: dict, cut_made: dict | None = None) -> dict:
    """Start the incident's execution (its name makes a repeated start a no-op), telling it of
    the first cut made; the incident."""
    from botocore.exceptions import ClientError

    current = settings.get()
    execution_input = execution.quarantine(incident, current, cut_made)
    machine_region = aws.region_of(current.state_machine_arn)
    stepfunctions = aws.client("stepfunctions", machine_region)
    try:
        started = aws.tolerate(
            "ExecutionAlreadyExists", stepfunctions.start_execution,
            stateMachineArn=current.state_machine_arn,
            name=execution_name(incident["incident_id"]),
            input=json.dumps(execution_input, default=str),
        )
        if started is None:
            _check_it_is_ours(incident, execution_input, stepfunctions)
    except ClientError as error:
        log.error("execution of %s did not start: %s", incident["incident_id"], error)
        _mark_start_failed(incident)
        raise outcomes.ExecutionNotStarted(
            f"incident {incident['incident_id']} is claimed but its execution did not start; "
            "repeat the request to start it") from None
    return incident


def _check_it_is_ours(incident: dict, execution_input: dict, stepfunctions) -> None:
    """An execution of the incident's name exists already: AWS says so only when its input
    differs from ours (or it has ended). One started by someone else, before us, is logged and
    recorded as such: the steps act on its binding, never on what its options say is true."""
    arn = execution_arn(incident["incident_id"])
    found = json.loads(stepfunctions.describe_execution(executionArn=arn)["input"])
    if found == json.loads(json.dumps(execution_input, default=str)):
        return
    message = (f"execution {arn} exists with an input the product did not give it: started by "
               "someone else; check who (CloudTrail: states:StartExecution)")
    log.error("incident %s: %s", incident["incident_id"], message)
    incidents.record_step(incident["incident_id"], "start", incidents.now(), "foreign", errors=[
        actions.failure_record("start", arn, "ForeignExecution", message)])


def further(incident_id: str, request: findings.QuarantineRequest,
            observed: instances.Observed, home_account: str) -> outcomes.Recorded:
    """Record a further finding or request on the active incident; start it if it never was."""
    incident = incidents.record_finding(incident_id, {
        **(_finding_ref(request) or {}), "source": request.source, "reason": request.reason,
        "at": incidents.now()})
    if _start_was_lost(incident):
        log.warning("incident %s was claimed but never started: starting it", incident_id)
        return outcomes.Recorded(begin(_rebound(incident, request, observed, home_account)))
    try:
        announce(report.duplicate(incidents.shown(incident), _finding_ref(request)))
    except Exception:  # recorded already: a lost notice must not turn it into a failure
        log.exception("could not announce the further %s on %s", request.source, incident_id)
    log.info("recorded further %s for %s on %s", request.source, request.instance_id, incident_id)
    return outcomes.Recorded(incident)


def _rebound(incident: dict, request, observed: instances.Observed, home_account: str) -> dict:
    """A claimed incident that never started: as the claim wrote it when its restart seal holds
    (its start failed after the first cut, which changed the instance); otherwise bound anew to
    what was just described and to this request's finding: the table's copy is not trusted
    (anyone who may write the table could have written it). Without a seal the entry function
    stopped before starting the execution, and before its cut unless it was killed during it:
    an instance on the product's groups has lost its pre-incident state, and is left as it is
    (isolated), not rebound."""
    try:
        return bindings.verified_restart(incident)
    except bindings.Refused as unsealed:
        log.info("incident %s is rebound to the instance as it is: %s", incident["incident_id"],
                 unsealed)
    instance = observed.instance
    cut_made = [n["NetworkInterfaceId"] for n in instance.get("NetworkInterfaces", [])
                if any(isolation.product_group_name(g.get("GroupName", ""))
                       for g in n.get("Groups", []))]
    if cut_made:  # its state now is not its state before: nothing to bind it to
        log.error("incident %s never started and cannot be rebound: %s carry the product's "
                  "groups, its pre-incident state is unverified; release them by hand",
                  incident["incident_id"], cut_made)
        raise outcomes.ExecutionNotStarted(
            f"incident {incident['incident_id']} was claimed and its instance cut, but its "
            "execution never started and its pre-incident state cannot be verified: the "
            f"instance stays as it is ({', '.join(cut_made)} isolated); see the logs")
    fresh = new_incident(request, instance, home_account, observed.attributes)
    bound = {**incident, **{name: fresh[name] for name in bindings.BOUND_FIELDS
                            if name not in ("incident_id", "opened_at", "execution_arn")},
             "execution_arn": execution_arn(incident["incident_id"])}
    incidents.record_step(incident["incident_id"], "start", incidents.now(), "restarted",
                          fields={name: bound[name] for name in bindings.BOUND_FIELDS
                                  if name != "incident_id"})
    return {**bound, "seal": bindings.seal_incident(bound)}


def _start_was_lost(incident: dict) -> bool:
    """Marked as failed, or old and still without an execution. A running execution may not have
    reached Contain yet (memory capture comes first), so an old claim is checked, not assumed."""
    if incident.get("execution_started") or incident.get("status") != "OPEN":
        return False
    if incident.get("start_failed"):
        return True
    opened = datetime.strptime(incident["opened_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    if time.time() - opened.replace(tzinfo=timezone.utc).timestamp() <= START_GRACE_SECONDS:
        return False
    return not _execution_exists(incident["incident_id"])


def _execution_exists(incident_id: str) -> bool:
    arn = execution_arn(incident_id)
    return aws.tolerate("ExecutionDoesNotExist", aws.client(
        "stepfunctions", aws.region_of(arn)).describe_execution, executionArn=arn) is not None


def _mark_start_failed(incident: dict) -> None:
    """Mark the claim as not started, with a restart seal over its binding: the restart then
    acts on the pre-incident state the claim wrote (the first cut may have changed the
    instance since)."""
    try:
        incidents.record_step(incident["incident_id"], "start", incidents.now(), "failed",
                              fields={"start_failed": True,
                                      "restart_seal": bindings.seal_restart(incident)})
    except Exception:  # the age check still finds the lost start
        log.exception("could not mark %s as not started", incident["incident_id"])


def announce(notice: dict) -> None:
    topic = settings.get().topic_arn
    aws.client("sns", aws.region_of(topic)).publish(
        TopicArn=topic, Subject=notice["subject"], Message=notice["message"])


def _finding_ref(request: findings.QuarantineRequest):
    finding = request.finding
    if finding is None:
        return None
    return {"id": finding.id, "type": finding.type, "severity": finding.severity,
            "title": finding.title}


def handle_finding(detail, home_account: str) -> dict:
    """The automatic path: a GuardDuty finding's detail, decided and acted on. Never raises:
    every finding ends logged with its decision (a raise would only make Lambda retry it)."""
    try:
        request = findings.parse(detail)
        current = settings.get()
    except findings.MalformedFinding as error:
        log.warning("dropped malformed finding: %s", error)
        return {"decision": "dropped", "reason": str(error)}
    except settings.SettingsError as error:
        log.error("refused to act on a finding: misconfigured: %s", error)
        return {"decision": "refused", "reason": str(error), "code": "InvalidSetting"}
    why_not = findings.qualifies(request.finding, current)
    if why_not:
        log.info("dropped finding %s on %s: %s", request.finding.id, request.instance_id, why_not)
        return {"decision": "dropped", "reason": why_not}
    try:
        outcome = start(request, home_account)
    except outcomes.Refusal as refusal:
        log.warning("did not act on finding %s on %s: %s", request.finding.id,
                    request.instance_id, refusal.message)
        return {"decision": "refused", "reason": refusal.message, "code": refusal.code}
    except Exception:
        log.exception("finding %s on %s failed", request.finding.id, request.instance_id)
        return {"decision": "error", "instance_id": request.instance_id}
    return {"decision": outcome.decision, **outcome.summary()}


def release(request: findings.QuarantineRequest, home_account: str,
            reregister: bool = False) -> outcomes.ReleaseStarted:
    """Start undoing the instance's contained or partial incident (through Step Functions)."""
    current = admit(request, home_account)
    instances.describe(request, home_account)
    incident_id = incidents.active_for(request.account_id, request.region, request.instance_id)
    incident = incidents.get(incident_id) if incident_id else None
    if incident is None or incident["status"] not in incidents.RELEASABLE:
        state = f"its incident {incident_id} is {incident['status']}" if incident else \
            "it has no active incident"
        raise outcomes.NothingToRelease(
            f"instance {request.instance_id} cannot be released: {state} (release works on "
            f"{' and '.join(incidents.RELEASABLE)} incidents)")
    import secrets

    machine_region = aws.region_of(current.state_machine_arn)
    # Each release request is its own execution: one that failed can be asked for again, and
    # the release step skips what an earlier attempt already restored.
    name = execution_name(f"{incident_id}-release-{secrets.token_hex(4)}")
    release_input = execution.release(incident_id, request, reregister, current)
    release_input["release"] = bindings.seal_release(incident_id, _arn_of(name),
                                                     release_input["release"])
    arn = aws.client("stepfunctions", machine_region).start_execution(
        stateMachineArn=current.state_machine_arn, name=name, input=json.dumps(release_input),
    )["executionArn"]
    log.info("releasing %s (%s)", incident_id, request.instance_id)
    earlier = sum(1 for step in incident.get("timeline", []) if step["step"] == "release")
    return outcomes.ReleaseStarted(incident, arn, earlier)
