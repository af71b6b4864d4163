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
from dataclasses import asdict
from datetime import datetime, timezone

from chalicelib import (accounts, actions, approvals, aws, bindings, cut, execution, exemptions,
                        findings, incidents, instances, notices, outcomes, report, revocation,
                        rules, securityhub, settings, steps)
from chalicelib.actions.instance import RevokeRoleSessions
from chalicelib.actions import isolation

log = logging.getLogger(__name__)

PERMISSIONS = (
    "ec2:DescribeInstances", "states:StartExecution", "states:DescribeExecution", "sns:Publish",
    *bindings.SEAL_PERMISSIONS,
    *accounts.ORGANIZATION_PERMISSIONS,
    *incidents.CLAIM_PERMISSIONS, *incidents.UPDATE_PERMISSIONS,
    *incidents.RECORD_PERMISSIONS, *revocation.INVOKE_PERMISSIONS,  # _revoke_stolen
)
EXECUTION_NAME = re.compile(r"\A[A-Za-z0-9_-]{1,80}\Z")  # AWS's rule; moto accepts more
START_GRACE_SECONDS = 120  # a claim this old without a running step had its start lost
RESOURCES = ("state_machine_arn", "topic_arn", "incidents_table", "records_key_arn")


def approval_permissions(current) -> tuple[str, ...]:
    """What the entry functions need to decide on an incident awaiting approval (the API) or
    escalate it (both): nothing unless a response rule asks for approval."""
    if not rules.needs_approvers(current.response_rules):
        return ()
    return (*incidents.GET_PERMISSIONS, *approvals.WAKE_PERMISSIONS,
            *approvals.ABANDON_PERMISSIONS)


def deployed():
    """The settings to act under, once every one reads and the stage's resources are there;
    otherwise NotConfigured saying what to do. Every entry point asks first: a stage made by a
    plain `chalice deploy` lacks what only `make deploy` creates, and must fail loudly."""
    function = aws.current_function()
    stage = function[len(aws.APP_NAME) + 1:].split("-")[0] if function.startswith(
        f"{aws.APP_NAME}-") else "<stage>"
    try:
        current = settings.get()
    except settings.SettingsError as error:
        log.error("not configured: %s", error)
        raise outcomes.NotConfigured(
            f"{error}: correct it in stage {stage}'s settings (.chalice/config.json) and "
            "deploy again") from None
    missing = [name.upper() for name in RESOURCES if not getattr(current, name)]
    if missing:
        log.error("not deployed: %s not set", ", ".join(missing))
        raise outcomes.NotConfigured(
            f"{', '.join(missing)} not set: the stage's resources are not deployed. A plain "
            "`chalice deploy` cannot create them: run `make deploy "
            f"STAGE={stage}` (it creates them and writes them into .chalice/config.json); "
            "after it, `chalice deploy` updates the code")
    return current


def admit(request: findings.QuarantineRequest, home_account: str):
    """The settings to act under, once the app is configured and the account is allowed."""
    current = deployed()
    why = accounts.refusal(request.account_id, home_account, current)
    if why:
        raise outcomes.NotAllowed(f"account {request.account_id} is not allowed: {why}")
    return current


def start(request: findings.QuarantineRequest, home_account: str,
          response: rules.Decision = rules.CONTAIN):
    """Open an incident for `request` (or record it on the active one) as `response` says (the
    response rules' decision; the manual path's is to contain): the outcome."""
    current = admit(request, home_account)
    dry_run = request.dry_run or current.dry_run
    no_cut = cut.skipped(request, current, response.mode)
    observed = instances.observe(request, home_account, attributes=() if dry_run else cut.AHEAD,
                                 groups=no_cut is None or response.needs_tags)
    instance = observed.instance
    if response.needs_tags:  # the rules read the tags just described
        response = rules.decide(current.response_rules, request, rules.tags_of(instance))
        log.info("finding %s on %s: %s", request.finding.id, request.instance_id,
                 response.reason)
        if response.mode == "ignore":
            rules.count_ignored(response, request)
            return outcomes.Ignored(request.instance_id, response.reason)
        no_cut = cut.skipped(request, current, response.mode)
    incident = new_incident(request, instance, home_account, observed.attributes, response)
    tag = exemptions.tag_value(instance, current.exempt_tag)
    if exemptions.trusted_tag(tag, current):
        stopped = _exempt(request, f"{current.exempt_tag}=true (TRUST_EXEMPT_TAG=true)",
                          incident["notes"])
        if stopped:
            return stopped
    elif tag is not None:  # taken back if it shows an exemption the product issued
        incident["notes"].append(_tag_note(tag, current))
        log.warning("%s carries %s=%r: not itself an exemption", request.instance_id,
                    current.exempt_tag, tag[:64])
    if dry_run:
        return _unclaimed(request, incident, tag, "DRY_RUN")
    if response.mode == "notify":
        return _unclaimed(request, incident, tag, incidents.NOTIFIED)
    if response.mode == "approve":
        incident["status"] = incidents.AWAITING
        incident["approval"] = approvals.terms(response.rule, response.on_timeout,
                                               current.approval_timeout_seconds,
                                               incident["opened_at"])
    target = None if no_cut else steps.target_acting(incident, current)
    if target:
        cut.remember(target, instance, observed.groups, observed.attributes)
    try:  # the seal (and the groups a new VPC needs) beside the claim: nothing new in front
        stopped, incident["seal"], _ = aws.concurrently(
            [lambda: _claim(request, incident, tag), lambda: bindings.seal_incident(incident),
             lambda: target and cut.prepare(target)])
    except incidents.AlreadyActive as active:
        return further(active.incident_id, request, observed, home_account, response)
    except outcomes.Refusal:
        raise
    except Exception:  # claimed but not sealed: the next request starts it (no-op unclaimed)
        _mark_start_failed(incident)
        raise
    if stopped:
        return stopped
    log.info("opened %s for %s (%s): %s", incident["incident_id"], request.instance_id,
             request.source, response.reason)
    if not target and response.mode != "approve":
        log.info("no first cut on %s: %s", request.instance_id, no_cut)
    made = first_cut(target) if target else None
    outcome = (outcomes.AwaitingApproval if response.mode == "approve" else outcomes.Opened)(
        begin(incident, made))
    securityhub.follow(incident["incident_id"])  # after the cut and the start, never before
    return outcome


def _tag_note(tag: str, current) -> str:
    return (f"unverified exemption ignored: tag {current.exempt_tag}={tag[:64]!r} is not an "
            "exemption the product issued (POST /exemptions; TRUST_EXEMPT_TAG is off)")


def _claim(request, incident: dict, tag: str | None) -> outcomes.ExemptAnnounced | None:
    """Claim the instance for `incident` unless an exemption the product issued stops it (the
    check is inside the claim's transaction): the outcome that stopped it, or None (claimed)."""
    try:
        return incidents.claim(incident)
    except incidents.Exempted as found:
        stopped = _exemption_stops(request, found.exemption, tag, incident["notes"])
        if stopped:
            return stopped
    return incidents.claim(incident, unless_exempt=False)  # forced, or not the product's


def _exemption_stops(request, exemption: dict, tag: str | None, notes: list):
    """What an exemption record does to `request`: nothing (noted) unless the product issued
    it for this instance, it stands and the instance shows it (its tag); then what `_exempt`
    says, and the tag is not noted as unverified."""
    current = settings.get()
    where = incidents.instance_key(request.account_id, request.region, request.instance_id)
    why_not = (exemptions.unhonoured(exemption, where)
               or exemptions.unshown(exemption, tag, current.exempt_tag))
    if why_not:
        notes.append(why_not)
        return None
    shown_note = None if tag is None else _tag_note(tag, current)
    if shown_note in notes:  # the tag is the product's: not noted as unverified
        notes.remove(shown_note)
    return _exempt(request, exemptions.described(exemption), notes)


def _exempt(request, why: str, notes: list):
    """An exempt instance: the automatic path announces it and acts no further; the manual path
    needs "force" (refused without it; with it, noted). None: go on."""
    if request.source == "guardduty":
        announce(report.not_acted_on(request.to_dict(), "exempt", why))
        log.info("not acted on %s: exempt (%s)", request.instance_id, why)
        return outcomes.ExemptAnnounced(request.instance_id)
    if not request.force:
        raise outcomes.InstanceExempt(f"instance {request.instance_id} is exempt ({why}); "
                                      'send "force": true to quarantine it anyway')
    notes.append(f"forced past an exemption: {why}")
    log.info("%s: forced past an exemption (%s)", request.instance_id, why)
    return None


def _unclaimed(request, incident: dict, tag: str | None, status: str):
    """A dry run, or a finding a notify rule matched: recorded with its plan (its execution
    plans and changes nothing), claiming nothing; an exemption the product issued stops it as
    it would stop the incident."""
    exemption = incidents.get_exemption(request.account_id, request.region, request.instance_id)
    stopped = exemption and _exemption_stops(request, exemption, tag, incident["notes"])
    if stopped:
        return stopped
    incident["status"] = status
    if status == incidents.NOTIFIED:
        incident["resolution"] = f"announced with the plan, nothing changed: " \
                                 f"{incident['response']['reason']}"
    _, incident["seal"] = aws.concurrently(
        [lambda: incidents.put(incident), lambda: bindings.seal_incident(incident)])
    log.info("%s %s for %s (%s)", status.lower(), incident["incident_id"], request.instance_id,
             request.source)
    return (outcomes.DryRun if status == "DRY_RUN" else outcomes.Notified)(begin(incident))


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
    made["recorded"] = sorted({actions.change_key(c) for c in changes})  # once recorded
    try:
        incidents.record_step(incident["incident_id"], "cut", started,
                              "isolated" if len(isolated) == len(target.pre_state["interfaces"])
                              else "partly isolated", changes,
                              fields={"first_cut": made, **({"containment": made["containment"]}
                                                             if made["containment"] else {}),
                                      **isolation.named_groups(target)})
    except Exception:  # Contain records them instead
        log.exception("could not record the first cut on %s", incident["incident_id"])
        made["recorded"] = []
    return made


def new_incident(request: findings.QuarantineRequest, instance: dict, home_account: str,
                 attributes: dict | None = None,
                 response: rules.Decision = rules.CONTAIN) -> dict:
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
        "instance_summary": instances.summary(instance),
        "findings_count": 0,
        "latest_ring": {},
        "notes": [],
        **({"response": response.shown()} if request.source == "guardduty" else {}),
        "security_hub_findings": list(request.security_hub_findings
                                      or securityhub.of_finding(request)),
        **({"group_id": request.group_id} if request.group_id else {}),
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
            observed: instances.Observed, home_account: str,
            response: rules.Decision = rules.CONTAIN) -> outcomes.Recorded:
    """Record a further finding or request on the active incident; start it if it never was;
    one that is to be contained (a person's request, or a finding a `contain` rule matches)
    escalates an incident awaiting approval."""
    incident = incidents.record_finding(incident_id, {
        **(_finding_ref(request) or {}), "source": request.source, "reason": request.reason,
        "at": incidents.now(), **({"response": response.shown()}
                                  if request.source == "guardduty" else {})})
    if _start_was_lost(incident):
        log.warning("incident %s was claimed but never started: starting it", incident_id)
        incident = begin(_rebound(incident, request, observed, home_account, response))
        if incident["status"] != incidents.AWAITING:
            return outcomes.Recorded(incident)
    if incident.get("status") == incidents.AWAITING and response.mode == "contain":
        _revoke_stolen(incident, request)  # stolen credentials are denied as on any incident
        return _escalate(incident, request, home_account, response)
    revoked = _revoke_stolen(incident, request)
    if request.group_id:  # the group's one notice names it; each update would send 25 more
        incidents.join_group(incident_id, request.group_id)
    else:
        announce_quietly(report.duplicate(incidents.shown(incident), _finding_ref(request),
                                          revoked))
    log.info("recorded further %s for %s on %s", request.source, request.instance_id, incident_id)
    return outcomes.Recorded(incident)


def _revoke_stolen(incident: dict, request) -> str:
    """A credential exfiltration finding on an incident another finding opened (the host may
    set one off first to be contained by it): its sessions are denied all the same, scoped to
    the instance, through the revoking function, which revokes by the finding sealed on the
    incident here, and the change is recorded for release to lift. What was done, for the
    notice ("" for any other finding)."""
    finding = _finding_ref(request) or {}
    if not findings.is_credential_exfiltration(finding.get("type")) or \
            findings.is_credential_exfiltration(findings.incident_finding_type(incident)):
        return ""
    started = incidents.now()
    try:
        incidents.record_step(incident["incident_id"], "stolen-credentials", started, "sealed",
                              fields={"credentials_stolen": revocation.seal_stolen(
                                  incident, finding)})
        answer = revocation.invoke({
            "operation": "revoke", "account_id": incident["account_id"],
            "region": incident["region"], "incident_id": incident["incident_id"],
            "instance_arn": revocation.instance_arn(incident["region"], incident["account_id"],
                                                    incident["instance_id"]),
            "scope": "instance", "issued_before": revocation.now()})
    except Exception as error:
        log.error("stolen credentials on %s NOT revoked: %s", incident["instance_id"], error)
        incidents.record_step(incident["incident_id"], "stolen-credentials", started, "failed",
                              errors=[actions.error_record("revoke-role-sessions",
                                                           incident["instance_id"], error)])
        return f"the stolen sessions were NOT revoked ({error}): revoke them by hand"
    incidents.record_step(incident["incident_id"], "stolen-credentials", started, "revoked", [
        actions.change(RevokeRoleSessions.name, answer["role_name"],
                       f"policy:{answer['policy_name']}", None,
                       {"denies_sessions_issued_before": answer["issued_before"],
                        "scope": "instance"})])
    log.info("stolen credentials on %s: sessions of role %s issued before %s denied",
             incident["instance_id"], answer["role_name"], answer["issued_before"])
    return (f"sessions of role {answer['role_name']} used from this instance, issued before "
            f"{answer['issued_before']}, are denied")


def _rebound(incident: dict, request, observed: instances.Observed, home_account: str,
             response: rules.Decision) -> dict:
    """A claimed incident that never started: as the claim wrote it when its restart seal holds
    (its start failed after the first cut, which changed the instance); otherwise bound anew to
    what was just described and to this request's finding and response: the table's copy is
    not trusted (anyone who may write the table could have written it). Its status follows
    from what is sealed: awaiting approval if it carries an approval's terms, else OPEN.
    Without a seal the entry function stopped before starting the execution, and before its
    cut unless it was killed during it: an instance on the product's groups has lost its
    pre-incident state, and is left as it is (isolated), not rebound."""
    try:
        bound = bindings.verified_restart(incident)
        fields = {}
    except bindings.Refused as unsealed:
        log.info("incident %s is rebound to the instance as it is: %s", incident["incident_id"],
                 unsealed)
        bound = _bound_anew(incident, request, observed, home_account, response)
        fields = {name: bound[name] for name in (*bindings.BOUND_FIELDS, "approval")
                  if name != "incident_id"}
    bound["status"] = incidents.AWAITING if bound.get("approval") else "OPEN"
    incidents.record_step(incident["incident_id"], "start", incidents.now(), "restarted",
                          fields={**fields, "status": bound["status"]})
    return bound


def _bound_anew(incident: dict, request, observed: instances.Observed, home_account: str,
                response: rules.Decision) -> dict:
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
             "execution_arn": execution_arn(incident["incident_id"]),
             "approval": approvals.terms(response.rule, response.on_timeout,
                                         settings.get().approval_timeout_seconds,
                                         incidents.now()) if response.mode == "approve"
             else None}
    return {**bound, "seal": bindings.seal_incident(bound)}


def _start_was_lost(incident: dict) -> bool:
    """Marked as failed, or old and still without an execution. A running execution may not have
    reached Contain yet (memory capture comes first), so an old claim is checked, not assumed."""
    if incident.get("execution_started") or incident.get("status") not in (
            "OPEN", incidents.AWAITING):
        return False
    if incident.get("start_failed"):  # as the table says: Step Functions is asked
        return not _execution_exists(incident["incident_id"])
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
    """Publish `notice` (report.py) on the report topic, one message per protocol with its
    attributes; then its card on the Chatbot topic, if there is one (a lost card is logged:
    the report went out)."""
    current = settings.get()
    aws.client("sns", aws.region_of(current.topic_arn)).publish(
        TopicArn=current.topic_arn, Subject=notice["subject"],
        Message=notices.message(notice), MessageStructure="json",
        MessageAttributes=notice["attributes"])
    if current.chatbot_topic_arn:
        try:
            aws.client("sns", aws.region_of(current.chatbot_topic_arn)).publish(
                TopicArn=current.chatbot_topic_arn, Message=json.dumps(notice["card"]))
        except Exception:
            log.exception("the Chatbot card of %r was not published", notice["subject"])


def _announce_not_acted_on(request: findings.QuarantineRequest,
                           why_not: findings.NotActedOn) -> None:
    try:
        announce(report.not_acted_on(request.to_dict(), why_not.headline, why_not.reason))
    except Exception:  # decided and logged already: a lost notice must not make Lambda retry
        log.exception("could not announce finding %s on %s", request.finding.id,
                      request.instance_id)


def _finding_ref(request: findings.QuarantineRequest):
    """What the incident keeps of its finding: what it is, and what GuardDuty says of it (the
    manual path acts on a sample or a TARGET finding too: a person decided, the record shows it);
    for stolen credentials, the instance's role and who used them."""
    finding = request.finding
    if finding is None:
        return None
    return {"id": finding.id, "type": finding.type, "severity": finding.severity,
            "title": finding.title, "resource_type": finding.resource_type,
            "resource_role": finding.resource_role, "sample": finding.sample,
            "archived": finding.archived, "role": finding.role,
            "actor": asdict(finding.actor) if finding.actor else None,
            "remote": finding.remote, "updated_at": finding.updated_at}


def handle_finding(detail, home_account: str) -> dict:
    """The automatic path: a GuardDuty finding's detail, decided and acted on. Never raises
    once the stage is deployed (`deployed()`, asked by the entry point first): every finding
    ends logged with its decision (a raise would only make Lambda retry it)."""
    current = settings.get()  # the entry point checked `deployed()`
    try:
        wanted, not_read = findings.parse_all(detail)
    except findings.MalformedFinding as error:
        log.warning("dropped malformed finding: %s", error)
        return {"decision": "dropped", "reason": str(error)}
    request = wanted[0]  # the finding, and what the rules say of it, are the group's
    response = _response(request, current)
    why_not = findings.qualifies(request.finding, current, response)
    if why_not:
        log.info("%s finding %s on %s: %s", why_not.decision, request.finding.id,
                 request.instance_id, why_not.reason)
        if why_not.decision == "ignored":
            rules.count_ignored(response, request)
        if why_not.headline:
            _announce_not_acted_on(request, why_not)
        return {"decision": why_not.decision, "reason": why_not.reason}
    if request.group_id:
        return _start_group(wanted, not_read, home_account, response or rules.CONTAIN)
    try:
        outcome = start(request, home_account, response or rules.CONTAIN)
    except outcomes.Refusal as refusal:
        log.warning("did not act on finding %s on %s: %s", request.finding.id,
                    request.instance_id, refusal.message)
        return {"decision": "refused", "reason": refusal.message, "code": refusal.code}
    except Exception:
        log.exception("finding %s on %s failed", request.finding.id, request.instance_id)
        return {"decision": "error", "instance_id": request.instance_id}
    return {"decision": outcome.decision, **outcome.summary()}


def handle_action(detail, resources, home_account: str, home_region: str) -> dict:
    """Security Hub's custom action: every instance the selected findings name, quarantined as
    on the manual path (all at once; one refused or failed leaves the others). Never raises
    once the stage is deployed: each instance ends logged with its outcome."""
    current = settings.get()
    ours = securityhub.action_arn(home_region, home_account, current)
    if not current.security_hub:
        log.warning("a Security Hub custom action arrived with SECURITY_HUB off: ignored")
        return {"decision": "ignored", "reason": "SECURITY_HUB is off"}
    if not isinstance(resources, list) or ours not in resources:
        log.info("Security Hub custom action %s is not this stage's (%s): ignored",
                 str(resources)[:200], ours)
        return {"decision": "ignored", "reason": "another custom action"}
    try:
        wanted, problems = securityhub.requests(detail, ours)
    except securityhub.MalformedAction as error:
        log.warning("dropped custom action: %s", error)
        return {"decision": "dropped", "reason": str(error)}
    for problem in problems:
        log.warning("custom action: %s", problem)
    log.info("custom action %s on %d finding(s): %d instance(s) to quarantine", ours,
             len(detail["findings"]), len(wanted))
    return {"decision": "quarantined", "instances": _start_each(wanted, home_account),
            "not_read": problems}


def _start_each(wanted: list, home_account: str, response: rules.Decision = rules.CONTAIN
                ) -> list[dict]:
    """Each request started at once, as `start` does one (its own claim, dedupe and first
    cut): what became of each (one refused or failed leaves the others)."""
    answers = aws.settled(lambda r=r: start(r, home_account, response) for r in wanted)
    results = []
    for request, answer in zip(wanted, answers):
        if isinstance(answer, outcomes.Refusal):
            log.warning("%s not quarantined: %s", request.instance_id, answer.message)
            results.append({"instance_id": request.instance_id, "decision": "refused",
                            "code": answer.code, "reason": answer.message})
        elif isinstance(answer, Exception):
            log.error("%s failed", request.instance_id, exc_info=answer)
            results.append({"instance_id": request.instance_id, "decision": "error"})
        else:
            results.append({"decision": answer.decision, **answer.summary()})
    return results


def _start_group(wanted: list, not_read: list, home_account: str,
                 response: rules.Decision) -> dict:
    """A finding about a group of instances: one incident each, all at once, linked by the
    group id; one notice lists them all."""
    group = wanted[0].group_id
    for problem in not_read:
        log.warning("group %s: %s", group, problem)
    results = _start_each(wanted, home_account, response)
    log.info("finding %s on group %s: %d instance(s): %s", wanted[0].finding.id, group,
             len(wanted), ", ".join(f"{r['instance_id']} {r['decision']}" for r in results))
    announce_quietly(report.group(wanted[0].to_dict(), group, results, not_read))
    return {"decision": "group", "group_id": group, "instances": results,
            "not_read": not_read}


def _response(request: findings.QuarantineRequest, current) -> rules.Decision | None:
    """What the response rules say of the finding (None: there are none). A sample's instance
    is not read (it does not exist): its tags are taken to be none."""
    if not current.response_rules or request.finding.archived:
        return None
    response = rules.decide(current.response_rules, request,
                            {} if request.finding.sample else None)
    if not response.needs_tags:
        log.info("finding %s on %s: %s", request.finding.id, request.instance_id,
                 response.reason)
    return response


def decide(incident_id: str, decision: str, caller: str, reason: str,
           home_account: str) -> outcomes.Decided:
    """A person's decision ("approved" or "denied") on an incident awaiting approval, made
    by a caller in APPROVER_ARNS: sealed and recorded; an approval makes the first cut at
    once; then the execution's wait ends (it reads the decision from the record)."""
    current = deployed()
    if not approvals.may_decide(caller, current.approver_arns):
        log.warning("%s may not decide on %s: not in APPROVER_ARNS", caller or "a caller",
                    incident_id)
        raise outcomes.NotAnApprover(
            f"{caller or 'the caller'} is not in APPROVER_ARNS: only those named there may "
            "approve or deny a containment")
    incident = incidents.get(incident_id)
    if incident is None:
        raise outcomes.IncidentNotFound(f"no incident {incident_id}")
    why = accounts.refusal(incident["account_id"], home_account, current)
    if why:
        raise outcomes.NotAllowed(f"account {incident['account_id']} is not allowed: {why}")
    try:
        return _conclude(incident, decision, caller, reason, home_account)
    except Abandoned as abandoned:
        raise outcomes.NotAwaitingApproval(
            f"incident {incident_id}'s execution had ended ({abandoned.ended}) without a "
            "decision: it is closed and nothing was changed; to contain the instance, "
            "POST /quarantine") from None
    except approvals.NotAwaiting as first:
        found = first.incident or incident
        made = approvals.verified(found) or {}
        raise outcomes.NotAwaitingApproval(
            f"incident {incident_id} is {found.get('status')}, not awaiting approval"
            + (f": {made['decision']} by {made['by']} at {made['at']}" if made else "")
            + "; nothing was changed") from None


def _conclude(incident: dict, decision: str, by: str, reason: str,
              home_account: str) -> outcomes.Decided:
    """Decide once (approvals.settle: NotAwaiting when something decided first), cut at once
    when containment goes on, then wake the execution. Only an incident the product holds for
    approval (its sealed terms), whose execution can still act on the decision: one whose
    execution ended undecided is closed instead (Abandoned)."""
    try:
        bindings.verified_incident(incident)
    except bindings.Refused as refusal:
        raise approvals.NotAwaiting(incident) from refusal
    if not incident.get("approval"):
        raise approvals.NotAwaiting(incident)
    ended = approvals.execution_ended(incident)
    if ended:
        raise Abandoned(approvals.abandon(incident, ended), ended)
    made = approvals.sealed(incident["incident_id"], decision, by, reason)
    settled = approvals.settle(incident["incident_id"], made,
                               replacing=approvals.unverified(incident))
    if decision in approvals.CUTTING and not settings.get().memory_capture_document:
        _approved_cut(settled, home_account)
    woken = approvals.wake(settled, made)
    return outcomes.Decided(incidents.get(incident["incident_id"]) or settled, woken)


class Abandoned(Exception):
    """The incident's execution had ended without a decision: it was closed (nothing left to
    act on one), and the instance is free."""

    def __init__(self, incident: dict, ended: str):
        super().__init__(ended)
        self.incident, self.ended = incident, ended


def _escalate(incident: dict, request: findings.QuarantineRequest, home_account: str,
              response: rules.Decision) -> outcomes.Outcome:
    """A further finding or request that is to be contained, on an incident awaiting
    approval: contained at once, as an approval would (once: a decision made first stands);
    on one whose execution ended undecided, a new incident."""
    by = request.requested_by or (f"GuardDuty finding {request.finding.id}"
                                  if request.finding else request.source)
    why = response.reason if request.source == "guardduty" else "a person asked to quarantine it"
    try:
        decided = _conclude(incident, "escalated", by, f"{request.reason}: {why}", home_account)
    except Abandoned:  # closed, the instance free: this request opens the incident anew
        return start(request, home_account, response)
    except approvals.NotAwaiting as first:
        log.info("incident %s was decided before the escalation", incident["incident_id"])
        return outcomes.Recorded(first.incident or incident)
    announce_quietly(report.duplicate(incidents.shown(decided.incident), _finding_ref(request),
                                      "containment escalated: it no longer awaits approval"))
    return outcomes.Recorded(decided.incident)


def _approved_cut(incident: dict, home_account: str) -> None:
    """The first cut, made as soon as containment is approved (or escalated), on the
    incident's sealed binding and the instance as it is now (never when memory is captured
    first: SSM needs the network); Contain finishes it. A failure is Contain's to make good."""
    current = settings.get()
    try:
        observed = instances.observe(findings.QuarantineRequest(
            incident["instance_id"], incident["account_id"], incident["region"], "approval"),
            home_account, attributes=cut.AHEAD, groups=True)
        target = steps.target_acting(incident, current)
        cut.remember(target, observed.instance, observed.groups, observed.attributes)
        first_cut(target)
    except Exception:
        log.exception("no first cut on %s after its approval: Contain makes it",
                      incident["incident_id"])


def grant_exemption(request: findings.QuarantineRequest, expires: str,
                    home_account: str) -> outcomes.ExemptionGranted:
    """Exempt the instance until `expires`: the tag it must show, then the sealed record
    (replacing any earlier one); announced."""
    current = admit(request, home_account)
    instances.describe(request, home_account)
    exemption = exemptions.sealed({
        "instance_id": request.instance_id, "account_id": request.account_id,
        "region": request.region, "reason": request.reason, "expires_at": expires,
        "granted_by": request.requested_by, "granted_at": exemptions.now()})
    _mirror(request, home_account, "create_tags", current.exempt_tag, expires)
    replaced = incidents.put_exemption(exemption)
    log.info("exempted %s until %s by %s: %s", request.instance_id, expires,
             request.requested_by, request.reason)
    announce_quietly(report.exemption(exemption, "granted"))
    return outcomes.ExemptionGranted(exemptions.shown(exemption),
                                     replaced and exemptions.shown(replaced))


def _mirror(request, home_account: str, operation: str, key: str, expires: str) -> None:
    """Write (`create_tags`) or take away (`delete_tags`, the product's value only: another
    stays) the tag that shows an exemption: an exemption holds only while its instance shows it
    (`exemptions.unshown`)."""
    ec2 = accounts.client("ec2", request.account_id, request.region, home_account)
    getattr(ec2, operation)(Resources=[request.instance_id], Tags=[
        {"Key": key, "Value": exemptions.MIRROR + expires}])


def revoke_exemption(request: findings.QuarantineRequest,
                     home_account: str) -> outcomes.ExemptionRevoked:
    """End the instance's standing exemption now (kept on record, sealed, with who and why), and
    take its tag away if it is still the product's."""
    current = admit(request, home_account)
    found = incidents.get_exemption(request.account_id, request.region, request.instance_id)
    why_not = exemptions.unhonoured(found, found["where"]) if found else "none was granted"
    if why_not:
        raise outcomes.ExemptionNotFound(f"instance {request.instance_id} has no standing "
                                         f"exemption ({why_not})")
    ended = exemptions.revoked(found, request.requested_by, request.reason)
    try:
        incidents.put_exemption(ended, replacing=found)
    except LookupError:
        raise outcomes.ExemptionChanged(f"the exemption of {request.instance_id} changed while "
                                        "it was being revoked; look again") from None
    try:  # the record decides: revoked already, whatever happens to the tag
        _mirror(request, home_account, "delete_tags", current.exempt_tag, found["expires_at"])
        untagged = None
    except Exception as error:
        log.warning("the exempt tag of %s stays: %s", request.instance_id, error)
        untagged = actions.error_record("exemption-tag", request.instance_id, error)
    log.info("revoked the exemption of %s by %s: %s", request.instance_id, request.requested_by,
             request.reason)
    announce_quietly(report.exemption(ended, "revoked"))
    return outcomes.ExemptionRevoked(exemptions.shown(ended), untagged)


def list_exemptions(limit: int, start_key: dict | None,
                    home_account: str) -> tuple[list[dict], dict | None]:
    """Exemptions, newest first, each saying whether it stands: its record sealed, in its
    place, unrevoked, unexpired, and shown on its instance (one DescribeInstances per account
    and region of the page)."""
    page, last = incidents.exemptions_page(limit, start_key)
    places: dict = {}
    for account, region, instance_id in (e["where"].split("/") for e in page
                                         if e["where"].count("/") == 2):  # written by others?
        places.setdefault((account, region), []).append(instance_id)
    tags = {key: value for found in aws.concurrently(
        lambda place=place, ids=ids: _exempt_tags(*place, ids, home_account)
        for place, ids in places.items()) for key, value in found.items()}
    exempt_tag = settings.get().exempt_tag

    def why_not(e):
        return exemptions.unhonoured(e, e["where"]) or exemptions.unshown(
            e, tags.get(e["where"]), exempt_tag)
    found = aws.concurrently(lambda e=e: why_not(e) for e in page)
    return [{**exemptions.shown(e), "standing": not why, **({"note": why} if why else {})}
            for e, why in zip(page, found)], last


def _exempt_tags(account: str, region: str, instance_ids: list, home_account: str) -> dict:
    """The exempt tag of each of `instance_ids` (in `account` and `region`), by instance key."""
    ec2 = accounts.client("ec2", account, region, home_account)
    exempt_tag = settings.get().exempt_tag
    reservations = ec2.describe_instances(Filters=[
        {"Name": "instance-id", "Values": instance_ids}])["Reservations"]
    return {incidents.instance_key(account, region, i["InstanceId"]):
            exemptions.tag_value(i, exempt_tag) for r in reservations for i in r["Instances"]}


def announce_quietly(notice: dict) -> None:
    """Announce a decision already made and recorded: a lost notice is logged, not an error."""
    try:
        announce(notice)
    except Exception:
        log.exception("could not announce: %s", notice["subject"])


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
    release_input = execution.release(incident, request, reregister, current)
    release_input["release"] = bindings.seal_release(incident_id, _arn_of(name),
                                                     release_input["release"])
    arn = aws.client("stepfunctions", machine_region).start_execution(
        stateMachineArn=current.state_machine_arn, name=name, input=json.dumps(release_input),
    )["executionArn"]
    log.info("releasing %s (%s)", incident_id, request.instance_id)
    earlier = sum(1 for step in incident.get("timeline", []) if step["step"] == "release")
    return outcomes.ReleaseStarted(incident, arn, earlier)
