"""Containment and evidence in depth on the embedded AWS: Auto Scaling, load balancers, Elastic
IP, credentials, preservation, the evidence store with hashes, memory capture."""

import hashlib
import json

from local import recording, scenario
from local.victims import make_fleet_member
from tests.helpers import (
    deliver_finding,
    finish,
    guardduty_event,
    interface_groups,
    make_victim,
    messages,
    product_groups,
    snapshots_of,
    subscribe_queue,
)


def _contain(stack, instance_id):
    return finish(stack, deliver_finding(stack, guardduty_event(instance_id)))


def _group(stack, name="web"):
    return stack.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def _volumes(stack, instance_id):
    described = stack.client("ec2").describe_instances(InstanceIds=[instance_id])
    return {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"]
            for m in described["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]}


def test_fleet_member_leaves_its_group_and_load_balancers_right_after_isolation(stack):
    fleet = make_fleet_member(stack)
    victim = fleet["instance_id"]
    assert any(_volumes(stack, victim).values())  # the root volume deletes on termination
    recording.start(stack)

    record, execution = _contain(stack, victim)
    recording.stop(stack)

    assert record["status"] == "CONTAINED", record["errors"]
    group = _group(stack)
    assert victim not in [i["InstanceId"] for i in group["Instances"]]
    assert group["DesiredCapacity"] == 2  # the group replaces it; nothing shrinks
    elbv2 = stack.client("elbv2")
    for arn in fleet["target_groups"]:
        targets = [t["Target"]["Id"] for t in
                   elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]]
        assert victim not in targets and fleet["members"][1] in targets
    classic = stack.client("elb").describe_load_balancers(LoadBalancerNames=["web-classic"])
    assert [i["InstanceId"] for i in classic["LoadBalancerDescriptions"][0]["Instances"]] == [
        fleet["members"][1]]
    assert set(_volumes(stack, victim).values()) == {False}
    (eni,) = fleet["interfaces"]
    assert interface_groups(stack, eni) == [product_groups(stack, fleet["vpc_id"])[
        "isolation"]["GroupId"]]
    # the Elastic IP stays unless asked (DISASSOCIATE_ELASTIC_IP is off by default)
    addresses = stack.client("ec2").describe_addresses(AllocationIds=[fleet["allocation_id"]])
    assert addresses["Addresses"][0].get("InstanceId") == victim
    names = [c.name for c in recording.calls(stack)]
    swap = max(i for i, n in enumerate(names) if n == "ec2:ModifyNetworkInterfaceAttribute")
    for later in ("autoscaling:SetInstanceProtection", "autoscaling:DetachInstances",
                  "elasticloadbalancing:DeregisterTargets",
                  "elasticloadbalancing:DeregisterInstancesFromLoadBalancer"):
        assert names.index(later) > swap, f"{later} came before the isolation swap"
    recorded = {c["action"] for c in record["changes"]}
    assert {"leave-autoscaling-group", "leave-target-groups", "leave-classic-load-balancers",
            "keep-volumes-on-termination"} <= recorded


def test_standby_mode_keeps_the_instance_in_its_group_protected(stack):
    stack.configure(AUTOSCALING_MODE="standby")
    fleet = make_fleet_member(stack)
    record, _ = _contain(stack, fleet["instance_id"])
    assert record["status"] == "CONTAINED", record["errors"]
    member = next(i for i in _group(stack)["Instances"] if i["InstanceId"] == fleet["instance_id"])
    assert member["LifecycleState"] == "Standby" and member["ProtectedFromScaleIn"] is True


def test_optional_actions_elastic_ip_deny_all_profile_revocation_and_stop(stack):
    queue = subscribe_queue(stack)
    stack.configure(DISASSOCIATE_ELASTIC_IP="true", CREDENTIALS_MODE="deny-all",
                    REVOKE_ROLE_SESSIONS="true", STOP_AFTER_EVIDENCE="true",
                    FORENSIC_ACCOUNT_ID="210987654321")
    victim = make_victim(stack, interfaces=1, volumes=2)
    ec2, iam = stack.client("ec2"), stack.client("iam")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=allocation, InstanceId=victim["instance_id"])
    profile = ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [victim["instance_id"]]}])[
        "IamInstanceProfileAssociations"][0]["IamInstanceProfile"]["Arn"]
    sibling = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                IamInstanceProfile={"Arn": profile})["Instances"][0]["InstanceId"]

    record, _ = _contain(stack, victim["instance_id"])

    assert record["status"] == "CONTAINED", record["errors"]
    address = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    assert not address.get("InstanceId") and not address.get("AssociationId")
    associations = ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [victim["instance_id"]]}])["IamInstanceProfileAssociations"]
    assert [a["IamInstanceProfile"]["Arn"] for a in associations] == [
        stack.names["DENY_ALL_PROFILE_ARN"]]
    role = profile.rsplit("/", 1)[-1]  # make_victim names role and profile alike
    policy = iam.get_role_policy(RoleName=role,
                                 PolicyName=f"ec2-quarantine-revoke-{record['incident_id']}")
    statement = policy["PolicyDocument"]["Statement"][0]
    assert statement["Effect"] == "Deny" and "aws:TokenIssueTime" in json.dumps(statement)
    assert statement["Condition"]["StringEquals"] == {"ec2:SourceInstanceARN": (
        f"arn:aws:ec2:{stack.region}:{stack.account}:instance/{victim['instance_id']}")}
    report = next(m for m in messages(stack, queue) if m["Subject"].endswith(": contained"))
    # scoped to the instance (the default): the sibling sharing the role keeps working
    assert f"the other instances sharing the role keep working ({sibling})" in report["Text"]
    state = ec2.describe_instances(InstanceIds=[victim["instance_id"]])["Reservations"][0][
        "Instances"][0]["State"]["Name"]
    assert state in ("stopping", "stopped")
    for snapshot in snapshots_of(stack, record["incident_id"]):
        permissions = ec2.describe_snapshot_attribute(
            SnapshotId=snapshot["SnapshotId"], Attribute="createVolumePermission")
        assert {"UserId": "210987654321"} in permissions["CreateVolumePermissions"]


def test_disable_api_stop_is_optional(stack):
    stack.configure(DISABLE_API_STOP="true")
    victim = make_victim(stack, interfaces=1, volumes=1)
    record, _ = _contain(stack, victim["instance_id"])
    described = stack.client("ec2").describe_instance_attribute(
        InstanceId=victim["instance_id"], Attribute="disableApiStop")
    assert described["DisableApiStop"]["Value"] is True and record["status"] == "CONTAINED"


def test_evidence_store_holds_every_piece_with_matching_hashes(stack):
    victim = make_victim(stack, interfaces=2, volumes=2)
    record, _ = _contain(stack, victim["instance_id"])
    s3, bucket = stack.client("s3"), stack.names["EVIDENCE_BUCKET"]
    prefix = f"{record['incident_id']}/"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())

    keys = {o["key"] for o in manifest["objects"]}
    assert keys == {prefix + name for name in ("instance.json", "interfaces.json", "network.json",
                                               "console-output.txt", "console-screenshot.jpg",
                                               "report.html")}  # the page: test_page.py
    for listed in manifest["objects"]:
        body = s3.get_object(Bucket=bucket, Key=listed["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == listed["sha256"] and len(body) == listed["size"]
    assert sorted(manifest["snapshot_ids"]) == sorted(
        s["SnapshotId"] for s in snapshots_of(stack, record["incident_id"]))
    interfaces = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "interfaces.json")["Body"].read())
    assert interfaces["pre_incident_groups"] == {eni: groups for eni, groups in
                                                  victim["interfaces"].items()} or all(
        sorted(interfaces["pre_incident_groups"][eni]) == groups
        for eni, groups in victim["interfaces"].items())
    network = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "network.json")["Body"].read())
    assert network["route_tables"] and network["network_acls"]
    console = s3.get_object(Bucket=bucket, Key=prefix + "console-output.txt")["Body"].read()
    assert console.startswith(b"Linux version")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"][
        "BlockPublicPolicy"] is True


def test_memory_capture_runs_before_isolation_on_ssm_managed_instances(stack):
    stack.configure(MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture")
    managed = make_victim(stack, interfaces=1, volumes=1)
    stack.manage_with_ssm(managed["instance_id"])
    recording.start(stack)
    record, _ = _contain(stack, managed["instance_id"])
    recording.stop(stack)

    assert record["memory"]["outcome"] == "captured" and record["status"] == "CONTAINED"
    names = [c.name for c in recording.calls(stack)]
    assert names.index("ssm:SendCommand") < names.index("ec2:ModifyNetworkInterfaceAttribute")
    assert record["timeline"][0]["step"] == "capture-memory"


def test_instances_without_ssm_are_skipped_with_a_note_not_blocked(stack):
    stack.configure(MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture")
    victim = make_victim(stack, interfaces=1, volumes=1)
    record, execution = _contain(stack, victim["instance_id"])
    assert record["memory"]["outcome"] == "skipped"
    assert "not managed by SSM" in record["memory"]["note"]
    assert record["status"] == "CONTAINED" and execution["status"] == "SUCCEEDED"


def test_a_failing_optional_action_is_reported_and_the_rest_proceed(stack):
    queue = subscribe_queue(stack)
    fleet = make_fleet_member(stack)
    stack.faults.arm("autoscaling", "DetachInstances", "AccessDenied")
    stack.faults.arm("elasticloadbalancing", "DeregisterTargets", "AccessDenied")

    record, execution = _contain(stack, fleet["instance_id"])

    # isolated and its credentials cut: contained, whatever else failed
    assert record["status"] == "CONTAINED" and execution["status"] == "SUCCEEDED"
    assert sorted(e["action"] for e in record["errors"]) == [
        "leave-autoscaling-group", "leave-target-groups"]
    classic = stack.client("elb").describe_load_balancers(LoadBalancerNames=["web-classic"])
    assert fleet["instance_id"] not in [i["InstanceId"] for i in
                                        classic["LoadBalancerDescriptions"][0]["Instances"]]
    assert len(snapshots_of(stack, record["incident_id"])) == 1
    report = next(m for m in messages(stack, queue) if "contained, with 2 errors" in m["Subject"])
    assert "leave-autoscaling-group" in report["Text"]
    body = report["Text"]
    assert body.index("Not done (errors):") < body.index("Changes made:"), "failures first"


def test_the_manifest_lists_what_the_memory_capture_wrote(stack):
    stack.configure(MEMORY_CAPTURE_DOCUMENT="AWSSupport-ExampleMemoryCapture")
    victim = make_victim(stack, interfaces=1, volumes=1)
    stack.manage_with_ssm(victim["instance_id"])
    s3, bucket = stack.client("s3"), stack.names["EVIDENCE_BUCKET"]
    record, _ = _contain(stack, victim["instance_id"])  # the image is under memory/ first
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{record['incident_id']}/manifest.json")[
        "Body"].read())
    memory = [o for o in manifest["objects"] if "/memory/" in o["key"]]
    assert [(o["size"], o["written_by"]) for o in memory] == [
        (len(scenario.MEMORY_IMAGE), "instance via presigned upload")]
    assert len({o["key"] for o in manifest["objects"]}) == len(manifest["objects"])
