"""What the product decides not to do, and does only once: filters, findings read as GuardDuty
means them (samples, archived, the instance the target), exemptions, duplicates, concurrent
starts, and a claim whose execution never started; stolen credentials admitted."""

import copy
import json
import threading

from chalicelib import findings, incidents, outcomes, workflow
from tests.helpers import (
    api,
    deliver_finding,
    finish,
    guardduty_event,
    instance_tags,
    interface_groups,
    make_victim,
    messages,
    product_groups,
    put_event,
    release,
    sample,
    stolen_credentials_event,
    subscribe_queue,
    wait_execution,
)

HOME = "123456789012"


def _executions(stack):
    return stack.client("stepfunctions").list_executions(
        stateMachineArn=stack.names["STATE_MACHINE_ARN"])["executions"]


def _untouched(stack, victim):
    for eni, groups in victim["interfaces"].items():
        assert interface_groups(stack, eni) == groups
    assert "QuarantineIncident" not in instance_tags(stack, victim["instance_id"])


def test_low_severity_finding_changes_nothing(stack):
    victim = make_victim(stack)
    decided = deliver_finding(stack, guardduty_event(victim["instance_id"], severity=5.0))
    assert decided["decision"] == "dropped" and "below SEVERITY_THRESHOLD 7" in decided["reason"]
    assert _executions(stack) == []
    _untouched(stack, victim)


def test_low_severity_sample_is_dropped(stack):
    event = sample("ssh-bruteforce-target-low.json")
    decided = deliver_finding(stack, event)
    assert decided["decision"] == "dropped"


def test_finding_type_outside_the_prefixes_changes_nothing(stack):
    stack.configure(FINDING_TYPE_PREFIXES="CryptoCurrency:EC2,Trojan:EC2")
    victim = make_victim(stack)
    decided = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert decided["decision"] == "dropped" and "FINDING_TYPE_PREFIXES" in decided["reason"]
    _untouched(stack, victim)


def test_non_ec2_finding_never_reaches_the_handler(stack):
    before = len(stack.bridge.invocations)
    put_event(stack, sample("s3-finding-not-ec2.json"))
    stack.bridge.wait_idle()
    assert len(stack.bridge.invocations) == before
    assert _executions(stack) == []


def _left_alone(stack, victim, event) -> dict:
    """What the handler decided of `event`, having changed nothing on `victim`."""
    decided = deliver_finding(stack, event)
    assert _executions(stack) == []
    _untouched(stack, victim)
    return decided


def _pointed_at(name: str, instance_id: str, **service) -> dict:
    """A sample finding about `instance_id`, with `service` fields set as GuardDuty would."""
    event = copy.deepcopy(sample(name))
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = instance_id
    event["detail"]["service"].update(service)
    return event


def test_a_sample_finding_on_a_live_instance_is_announced_not_acted_on(stack):
    """GuardDuty's create-sample-findings, with the instance id of a real one (a drill)."""
    queue = subscribe_queue(stack)
    victim = make_victim(stack)
    decided = _left_alone(stack, victim, _pointed_at("backdoor-cc-activity-sample-finding.json",
                                                     victim["instance_id"]))
    assert decided["decision"] == "sample" and "would have been contained" in decided["reason"]
    (notice,) = messages(stack, queue)
    assert notice["Subject"].endswith("not acted on: sample finding")
    assert "would have been contained" in notice["Text"]


def test_a_target_finding_is_announced_not_acted_on(stack):
    """A brute force from the internet at the instance: it is attacked, not shown compromised."""
    queue = subscribe_queue(stack)
    victim = make_victim(stack)
    event = _pointed_at("ssh-bruteforce-target-low.json", victim["instance_id"])
    event["detail"]["severity"] = 8
    decided = _left_alone(stack, victim, event)
    assert decided["decision"] == "target" and "TARGET_FINDING_TYPES" in decided["reason"]
    (notice,) = messages(stack, queue)
    assert notice["Subject"].endswith("not acted on: the instance is the target")


def test_a_target_finding_of_a_listed_type_is_contained(stack):
    stack.configure(TARGET_FINDING_TYPES="UnauthorizedAccess:EC2/SSHBruteForce")
    victim = make_victim(stack, interfaces=1, volumes=1)
    event = _pointed_at("ssh-bruteforce-target-low.json", victim["instance_id"])
    event["detail"]["severity"] = 8
    record, _ = finish(stack, deliver_finding(stack, event))
    assert record["status"] == "CONTAINED" and record["finding"]["resource_role"] == "TARGET"
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    for eni in victim["interfaces"]:
        assert interface_groups(stack, eni) == [isolation]


def test_an_archived_finding_changes_nothing_and_is_not_announced(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack)
    decided = _left_alone(stack, victim, _pointed_at("backdoor-cc-activity-high.json",
                                                     victim["instance_id"], archived=True))
    assert decided["decision"] == "dropped" and "archived" in decided["reason"]
    assert messages(stack, queue) == []


def test_a_person_may_act_on_a_sample_target_finding_and_the_record_says_what_it_was(stack):
    """The manual path is a person's decision: GuardDuty's flags inform it, they do not stop it."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    pasted = _pointed_at("backdoor-cc-activity-sample-finding.json", victim["instance_id"],
                         resourceRole="TARGET")
    status, answer = api(stack, "POST", "/quarantine", {
        "instance_id": victim["instance_id"], "reason": "drill", "finding": pasted})
    assert status == 202, answer
    record, _ = finish(stack, answer)
    assert record["status"] == "CONTAINED"
    assert (record["finding"]["sample"], record["finding"]["resource_role"]) == (True, "TARGET")


def test_stolen_instance_credentials_open_an_incident_that_isolates_the_instance(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=2, volumes=1)
    record, execution = finish(stack, deliver_finding(stack, stolen_credentials_event(
        victim["instance_id"])))
    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED")
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    for eni in victim["interfaces"]:
        assert interface_groups(stack, eni) == [isolation]
    assert record["finding"]["role"] == "app-server"
    assert record["finding"]["actor"]["ip"] == "203.0.113.77"
    report = next(m for m in messages(stack, queue) if m["Subject"].endswith("contained"))
    assert ("stolen credentials of role app-server used from 203.0.113.77 (EXAMPLE-HOSTING-AS, "
            "Example Hosting, Netherlands)") in report["Text"]
    # REVOKE_ROLE_SESSIONS is off: the stolen sessions are denied all the same, on the instance
    iam = stack.client("iam")
    profile = record["pre_state"]["instance_profile"].rsplit("/", 1)[-1]
    role = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"][0]
    denied = json.loads(json.dumps(iam.get_role_policy(
        RoleName=role["RoleName"], PolicyName=f"ec2-quarantine-revoke-{record['incident_id']}")[
        "PolicyDocument"]))
    (statement,) = denied["Statement"]
    assert statement["Condition"]["StringEquals"]["ec2:SourceInstanceARN"].endswith(
        f":instance/{victim['instance_id']}")


def _revocation_policies(stack, record: dict) -> list[str]:
    iam = stack.client("iam")
    profile = record["pre_state"]["instance_profile"].rsplit("/", 1)[-1]
    role = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"][0]
    return [name for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
            if name.startswith("ec2-quarantine-revoke-")]


def test_stolen_credentials_after_another_finding_contained_the_instance_are_revoked(stack):
    """The host sets an ordinary finding off first (one DNS lookup of a known C&C domain) to be
    contained by it, then uses its role's credentials from elsewhere: the exfiltration finding
    lands on the active incident, and its sessions are denied all the same (then lifted on
    release)."""
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    record, _ = finish(stack, deliver_finding(stack, guardduty_event(victim["instance_id"])))
    assert record["status"] == "CONTAINED" and _revocation_policies(stack, record) == []
    messages(stack, queue)
    again = deliver_finding(stack, stolen_credentials_event(victim["instance_id"]))
    assert again["decision"] == "recorded" and again["incident_id"] == record["incident_id"]
    assert _revocation_policies(stack, record) == [
        f"ec2-quarantine-revoke-{record['incident_id']}"]
    (notice,) = messages(stack, queue)
    assert "Stolen credentials: stolen credentials of role app-server used from 203.0.113.77" \
        in notice["Text"] and "used from this instance, issued before" in notice["Text"]
    release(stack, victim["instance_id"])
    assert _revocation_policies(stack, record) == []


def test_only_credential_exfiltration_among_access_key_findings_reaches_the_handler(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.bridge.wait_idle()  # the CloudTrail events of making it delivered
    before = len(stack.bridge.invocations)
    put_event(stack, stolen_credentials_event(
        victim["instance_id"], finding_type="UnauthorizedAccess:IAMUser/MaliciousIPCaller"))
    stack.bridge.wait_idle()
    assert len(stack.bridge.invocations) == before
    assert _executions(stack) == []
    _untouched(stack, victim)


def test_malformed_finding_is_dropped_not_raised(stack):
    event = guardduty_event("i-0123456789abcdef0")
    event["detail"]["severity"] = "high"
    assert deliver_finding(stack, event)["decision"] == "dropped"


def test_finding_for_a_missing_instance_is_refused_and_logged(stack):
    decided = deliver_finding(stack, guardduty_event("i-0123456789abcdef0"))
    assert decided["decision"] == "refused" and decided["code"] == "InstanceNotFound"


def test_duplicate_finding_is_recorded_and_announced_not_rerun(stack):
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    first = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    finish(stack, first)
    messages(stack, queue)

    again = deliver_finding(stack, guardduty_event(victim["instance_id"], finding_id="f" * 32))

    assert again["incident_id"] == first["incident_id"] and again["decision"] == "recorded"
    assert len(_executions(stack)) == 1
    record = incidents.shown(incidents.get(first["incident_id"]))
    assert record["findings_count"] == 1
    assert [f["id"] for f in record["latest_findings"]] == ["f" * 32]
    (notice,) = messages(stack, queue)
    assert first["incident_id"] in notice["Subject"]


def test_twenty_concurrent_starts_for_one_instance_make_one_incident(stack):
    victim = make_victim(stack, interfaces=1, volumes=1)
    request = findings.parse(guardduty_event(victim["instance_id"])["detail"])
    barrier = threading.Barrier(20)
    answers, failures = [], []

    def start():
        barrier.wait()
        try:
            answers.append(workflow.start(request, HOME))
        except Exception as error:  # collected: the assertion below shows it
            failures.append(error)

    threads = [threading.Thread(target=start) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    kinds = [type(answer) for answer in answers]
    assert (kinds.count(outcomes.Opened), kinds.count(outcomes.Recorded)) == (1, 19)
    assert len({answer.incident["incident_id"] for answer in answers}) == 1
    assert len(_executions(stack)) == 1
    stored = incidents.get(answers[0].incident["incident_id"])
    assert stored["findings_count"] == 19  # none lost to the race: each its own number
    assert [f["sequence"] for f in incidents.further_findings(stored, 20, 100)] == list(
        range(19, 0, -1))
    finish(stack, answers[0].summary())


def _lost_start(stack):
    """A victim whose first finding was claimed and cut, but whose execution did not start."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.faults.arm("states", "StartExecution", "AccessDeniedException")
    lost = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert lost["decision"] == "refused" and lost["code"] == "ExecutionNotStarted"
    assert _executions(stack) == []
    incident_id = incidents.active_for(stack.account, "us-east-1", victim["instance_id"])
    return victim, incident_id


def test_a_claim_whose_execution_never_started_is_started_by_the_next_request(stack):
    """From the pre-incident state the claim wrote (under its restart seal), not from the
    instance the first cut already isolated: release gives back the groups it had."""
    victim, incident_id = _lost_start(stack)
    (eni, groups), = victim["interfaces"].items()
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]
    assert interface_groups(stack, eni) == [isolation]  # the cut came before the start
    status, shown = api(stack, "GET", f"/incidents/{incident_id}")
    assert status == 200 and shown.get("start_failed") is True
    assert not {"seal", "restart_seal", "change_seals"} & set(shown)  # nothing to start it with

    picked_up = deliver_finding(stack, guardduty_event(victim["instance_id"]))

    (execution,) = _executions(stack)
    assert execution["name"] == picked_up["incident_id"] == incident_id
    record, finished = finish(stack, picked_up)
    assert record["status"] == "CONTAINED" and finished["status"] == "SUCCEEDED"
    status, answer = api(stack, "POST", "/release", {"instance_id": victim["instance_id"],
                                                     "reason": "drill"})
    assert status == 202, answer
    assert wait_execution(stack, answer["release_execution_arn"])["status"] == "SUCCEEDED"
    assert interface_groups(stack, eni) == groups


def test_a_lost_start_without_its_restart_seal_is_not_rebound_to_the_cut_instance(stack):
    """Someone deletes the restart seal (or the entry function died before writing it): the
    instance now carries the product's groups, which are not its pre-incident state. The next
    request leaves it isolated and says why, instead of binding the incident to them."""
    victim, incident_id = _lost_start(stack)
    stack.client("dynamodb").update_item(TableName=stack.names["INCIDENTS_TABLE"],
                                         Key={"pk": {"S": incident_id}},
                                         UpdateExpression="REMOVE restart_seal")
    (eni, _), = victim["interfaces"].items()
    isolation = product_groups(stack, victim["vpc_id"])["isolation"]["GroupId"]

    again = deliver_finding(stack, guardduty_event(victim["instance_id"]))

    assert again["decision"] == "refused" and again["code"] == "ExecutionNotStarted"
    assert "cannot be verified" in again["reason"]
    assert _executions(stack) == [] and interface_groups(stack, eni) == [isolation]
    assert incidents.get(incident_id)["pre_state"]["interfaces"][0]["groups"] != [isolation]


def test_an_old_claim_whose_execution_runs_is_not_restarted_but_recorded(stack, monkeypatch):
    """Past START_GRACE_SECONDS an incident not yet marked started (memory capture, a retried
    step) is checked against Step Functions: it runs, so the finding is a duplicate."""
    from local import recording

    monkeypatch.setattr(workflow, "START_GRACE_SECONDS", 0)
    queue = subscribe_queue(stack)
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.faults.arm("lambda", "Invoke", "TooManyRequestsException", count=2)  # Contain waits
    first = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    assert incidents.get(first["incident_id"]).get("execution_started") is None

    recording.start(stack)
    again = deliver_finding(stack, guardduty_event(victim["instance_id"]))
    recording.stop(stack)

    assert again["incident_id"] == first["incident_id"]
    actions = [c.action for c in recording.calls(stack)]
    assert "DescribeExecution" in actions and "StartExecution" not in actions
    assert any("finding recorded on" in m["Subject"] for m in messages(stack, queue))
    record, execution = finish(stack, first)
    assert (record["status"], execution["status"]) == ("CONTAINED", "SUCCEEDED")
    assert len(_executions(stack)) == 1
