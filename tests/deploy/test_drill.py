"""`make drill` rehearsed on the embedded AWS: the same command an operator runs after `make
deploy` (`python -m deploy drill`, AWS_ENDPOINT_URL set, the API `make local` serves). It passes,
fails clearly when a policy lacks an action (a function's or the operator's), refuses to start
over a previous drill's leftovers, cleans up on Ctrl-C, and in every case leaves nothing of its
own behind and terminates nothing but its canary."""

import os
import signal
import subprocess
import sys
import time

import pytest

from chalicelib import incidents
from deploy import drill, names
from local import iam
from local.victims import make_victim
from tests.helpers import interface_groups, remove_action, user_keys

STAGE = "dev"  # the stage the embedded AWS serves


def _environment(stack, keys=None) -> dict:
    keys = keys or {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    return {**os.environ, **stack.client_environment(), **keys, "PYTHONDONTWRITEBYTECODE": "1"}


def _drill(stack, keys=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy", "drill", "--stage", STAGE],
                          env=_environment(stack, keys), capture_output=True, text=True,
                          timeout=300)


def _tagged(stack) -> dict:
    """Everything in the account that carries the drill tag or lies in a drill's VPC, and the
    drill's IAM roles and profiles, as AWS lists them."""
    ec2, iam_client = stack.client("ec2"), stack.client("iam")
    tag = [{"Name": "tag-key", "Values": [drill.DRILL_TAG]}]
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs(Filters=tag)["Vpcs"]]
    within = [{"Name": "vpc-id", "Values": vpcs}]
    return {
        "vpcs": vpcs,
        "instances": [i["InstanceId"] for r in ec2.describe_instances(Filters=tag)["Reservations"]
                      for i in r["Instances"] if i["State"]["Name"] != "terminated"],
        "volumes": [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag)["Volumes"]],
        "snapshots": [s["SnapshotId"] for s in ec2.describe_snapshots(
            OwnerIds=["self"], Filters=tag)["Snapshots"]],
        "in_vpcs": [] if not vpcs else (
            [s["SubnetId"] for s in ec2.describe_subnets(Filters=within)["Subnets"]]
            + [n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces(
                Filters=within)["NetworkInterfaces"]]
            + [g["GroupId"] for g in ec2.describe_security_groups(Filters=within)[
                "SecurityGroups"] if g["GroupName"] != "default"]),
        "roles": [r["RoleName"] for r in iam_client.list_roles()["Roles"]
                  if r["Path"] == drill.IAM_PATH],
        "profiles": [p["InstanceProfileName"] for p in iam_client.list_instance_profiles()[
            "InstanceProfiles"] if p["Path"] == drill.IAM_PATH],
    }


NOTHING = {"vpcs": [], "instances": [], "volumes": [], "snapshots": [], "in_vpcs": [],
           "roles": [], "profiles": []}


def _terminated(stack) -> list[str]:
    return [i["InstanceId"] for r in stack.client("ec2").describe_instances()["Reservations"]
            for i in r["Instances"] if i["State"]["Name"] == "terminated"]


def _canary_incident(stack, output: str) -> dict:
    (incident_id,) = {word for word in output.split() if word.startswith("inc-")}
    return incidents.get(incident_id)


def _bystander(stack) -> dict:
    """An instance of somebody else's, running before the drill: it must end as it began."""
    victim = make_victim(stack, interfaces=1, volumes=1)
    return {**victim, "state": "running"}


def _untouched(stack, bystander) -> None:
    described = stack.client("ec2").describe_instances(InstanceIds=[bystander["instance_id"]])[
        "Reservations"][0]["Instances"][0]
    assert described["State"]["Name"] == "running"
    for eni, groups in bystander["interfaces"].items():
        assert interface_groups(stack, eni) == groups


def test_the_drill_passes_on_the_embedded_aws_and_leaves_nothing_behind(stack):
    bystander = _bystander(stack)
    ran = _drill(stack)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "DRILL PASSED" in ran.stdout and "FAIL" not in ran.stdout
    table = ran.stdout[ran.stdout.index("check "):]
    for check in ("every interface isolated", "instance profile taken away",
                  "metadata endpoint off", "termination protection on",
                  "shutdown behaviour stop", "every volume kept on termination",
                  "tracks connections briefly", "a completed snapshot of every volume",
                  "evidence verify", "incident RELEASED", "restored exactly: interfaces",
                  "restored exactly: profile", "restored exactly: shutdown",
                  "nothing left behind"):
        assert check in table
    assert "time to isolation:" in ran.stdout
    record = _canary_incident(stack, ran.stdout)
    assert record["status"] == "RELEASED"
    assert {c["action"] for c in record["changes"]} >= {
        "isolate-interface", "detach-instance-profile", "disable-instance-metadata",
        "shutdown-behaviour", "connection-tracking", "snapshots"}
    assert _tagged(stack) == NOTHING
    assert _terminated(stack) == [record["instance_id"]]  # the canary, and nothing else
    _untouched(stack, bystander)


def test_a_function_policy_without_an_action_fails_the_drill_naming_both(stack):
    """collect_evidence's role without ec2:CreateSnapshots, as a too-narrow deployment would
    be; the drill runs with exactly the rights it declares. (Not an action the tamper watch
    also holds: it would put that part of containment in place on its own, sooner or later.)"""
    role = names.function_role(STAGE, "collect_evidence")
    with stack.enforce_iam():
        remove_action(stack, role, "ec2:CreateSnapshots")
        ran = _drill(stack, user_keys(stack, "drill-operator", drill.DRILL_ACTIONS))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert iam.authorizations.denied(role) == {"ec2:CreateSnapshots"}
    failed = [line for line in ran.stdout.splitlines() if line.startswith("[drill] FAIL")]
    assert any("a completed snapshot of every volume" in line for line in failed), failed
    assert any("denied ec2:CreateSnapshots: look at role "
               f"{role}: .chalice/policy-{STAGE}-collect_evidence.json" in line
               for line in failed), failed
    assert "PASS every interface isolated" in ran.stdout  # the rest of containment holds
    assert "DRILL FAILED" in ran.stdout
    assert "PASS nothing left behind" in ran.stdout
    assert _canary_incident(stack, ran.stdout)["status"] == "RELEASED"
    assert _tagged(stack) == NOTHING


def test_an_operator_without_a_right_the_drill_needs_is_told_which(stack):
    with stack.enforce_iam():
        ran = _drill(stack, user_keys(stack, "drill-operator",
                                      set(drill.DRILL_ACTIONS) - {"ec2:RunInstances"}))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "FAIL launch the canary: AWS answered" in ran.stdout
    assert "denied ec2:RunInstances: look at the policies of " \
           f"arn:aws:iam::{stack.account}:user/drill-operator" in ran.stdout
    assert "DRILL FAILED" in ran.stdout
    assert _tagged(stack) == NOTHING  # its VPC, subnet, group, role and profile deleted


def test_a_previous_drills_leftovers_stop_it_before_it_makes_anything(stack):
    """A VPC a drill left is named with the command that removes it. A VPC and an instance of
    somebody else's that an insider tagged as a drill's are named as not a drill's, with no
    command: the drill makes nothing, and offers nothing that would delete them."""
    ec2 = stack.client("ec2")
    left = ec2.create_vpc(CidrBlock=drill.VPC_CIDR, TagSpecifications=[{
        "ResourceType": "vpc", "Tags": [
            {"Key": drill.DRILL_TAG, "Value": STAGE}, {"Key": drill.RUN_TAG, "Value": "0badc0de"},
            {"Key": "Name", "Value": f"drill-canary-{STAGE}-0badc0de"}]}])["Vpc"]["VpcId"]
    bystander = _bystander(stack)
    for resource in (bystander["vpc_id"], bystander["instance_id"]):
        ec2.create_tags(Resources=[resource], Tags=[{"Key": drill.DRILL_TAG, "Value": STAGE}])
    instances_before = _instances(stack)
    ran = _drill(stack)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "FAIL no previous drill's resources remain: 3 remain (below); nothing was made" \
        in ran.stdout
    assert f"vpc {left}  →  aws ec2 delete-vpc --vpc-id {left}" in ran.stdout
    for resource in (bystander["vpc_id"], bystander["instance_id"]):
        (named,) = [line for line in ran.stdout.splitlines() if resource in line]
        assert "NOT shaped as a drill's" in named and "→" not in named, named
    assert _instances(stack) == instances_before
    assert sorted(_tagged(stack)["vpcs"]) == sorted([left, bystander["vpc_id"]])
    assert not _tagged(stack)["roles"]
    _untouched(stack, bystander)


def test_what_an_insider_attaches_to_the_canary_is_neither_deleted_nor_offered(stack):
    """While the drill runs, an insider attaches a production volume to the canary and tags it
    with the drill's tags and run id: the drill reports the volume it did not launch, and
    neither its cleanup nor its leftover listing deletes the volume or its backup."""
    ec2 = stack.client("ec2")
    production = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    backup = ec2.create_snapshot(VolumeId=production)["SnapshotId"]

    def attach():
        (canary,) = [i for r in ec2.describe_instances(Filters=[
            {"Name": f"tag:{drill.DRILL_TAG}", "Values": [STAGE]}])["Reservations"]
            for i in r["Instances"]]
        run = {t["Key"]: t["Value"] for t in canary["Tags"]}[drill.RUN_TAG]
        ec2.attach_volume(VolumeId=production, InstanceId=canary["InstanceId"],
                          Device="/dev/sdh")
        ec2.create_tags(Resources=[production, backup], Tags=[
            {"Key": drill.DRILL_TAG, "Value": STAGE}, {"Key": drill.RUN_TAG, "Value": run}])

    stack.faults.when("ec2", "CreateSnapshots", attach)
    ran = _drill(stack)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "FAIL a completed snapshot of every volume" in ran.stdout
    assert ec2.describe_volumes(VolumeIds=[production])["Volumes"]
    assert ec2.describe_snapshots(SnapshotIds=[backup])["Snapshots"]
    for resource in (production, backup):
        named = [line for line in ran.stdout.splitlines() if resource in line and "→" in line]
        assert not named, named
    assert "FAIL nothing left behind" in ran.stdout and production in ran.stdout
    left = _tagged(stack)
    assert left["vpcs"] == [] and left["instances"] == [] and left["roles"] == []
    assert set(left["volumes"]) == {production} and backup in left["snapshots"]


def _instances(stack) -> list[str]:
    return sorted(i["InstanceId"] for r in stack.client("ec2").describe_instances()[
        "Reservations"] for i in r["Instances"])


def test_ctrl_c_in_the_middle_cleans_up(stack):
    """Interrupted while the incident is open: the drill releases it, then deletes its own."""
    process = subprocess.Popen([sys.executable, "-m", "deploy", "drill", "--stage", STAGE],
                               env=_environment(stack), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        lines.append(line)
        if "quarantine requested" in line:
            process.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(lines)
    rest, _ = process.communicate(timeout=300)
    output = "".join(lines) + rest
    assert process.returncode == 1, output
    assert "FAIL not interrupted: interrupted during: " in output
    assert "PASS nothing left behind" in output
    assert _canary_incident(stack, output)["status"] == "RELEASED"
    assert _tagged(stack) == NOTHING


@pytest.mark.parametrize("message, said", [
    # EC2's own words
    ("You are not authorized to perform this operation. User: arn:aws:sts::111122223333:"
     "assumed-role/ec2-quarantine-prod-contain/ec2-quarantine-prod-contain is not authorized "
     "to perform: ec2:ModifyInstanceMetadataOptions on resource: arn:aws:ec2:us-east-1:"
     "111122223333:instance/i-0abc because no identity-based policy allows the "
     "ec2:ModifyInstanceMetadataOptions action. Encoded authorization failure message: x",
     "denied ec2:ModifyInstanceMetadataOptions: look at role ec2-quarantine-prod-contain: "
     ".chalice/policy-prod-contain.json (`make policies`, then `make deploy`)"),
    ("User: arn:aws:sts::111122223333:assumed-role/ec2-quarantine-prod-states/x is not "
     "authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:...",
     "denied lambda:InvokeFunction: look at the state machine's role ec2-quarantine-prod-states "
     "(deploy/statemachine.py, `make deploy`)"),
    ("User: arn:aws:sts::444455556666:assumed-role/ec2-quarantine-member-contain/s is not "
     "authorized to perform: ec2:CreateSnapshots",
     "denied ec2:CreateSnapshots: look at role ec2-quarantine-member-contain: "
     "deploy/member-role-prod.yaml (the member account's roles)"),
    ("User: arn:aws:iam::111122223333:user/alice is not authorized to perform: "
     "iam:CreateRole on resource: arn:aws:iam::111122223333:role/drill-canary/x",
     "denied iam:CreateRole: look at the policies of arn:aws:iam::111122223333:user/alice: the "
     "drill needs what README's \"Fire drill\" lists"),
    ("The volume 'vol-1' is in use", ""),
])
def test_a_denial_names_the_action_and_the_policy_to_look_at(message, said):
    assert drill.where_denied(message, "prod") == said
