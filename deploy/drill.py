"""`make drill STAGE=dev`: a fire drill on the account of your credentials, after `make deploy`.

It launches a canary (the smallest instance type, two interfaces, an instance profile, in a VPC
and subnet of its own with no route to the internet), quarantines it through the API as an
operator would, checks from AWS that the promise holds (every interface, the profile, metadata,
preservation, connection tracking, snapshots, the signed evidence), releases it and checks the
exact restore, then deletes the canary and everything made for it. Everything it makes carries
the drill tag; the only instance it terminates is the one it launched itself, by the id
RunInstances returned. A previous drill's leftovers stop it before it makes anything: they are
named with the commands that remove them. Ctrl-C (or SIGTERM) cleans up before it exits.

With AWS_ENDPOINT_URL set it runs on the embedded AWS (`make local` serves the API:
`. build/local.env` first), the same code as on an account.
"""

import json
import os
import re
import signal
import sys
import time
import types
import uuid

from chalicelib.actions.instance import TAG_INCIDENT, TAGS as QUARANTINE_TAGS
from chalicelib.actions.isolation import DEFAULT_TRACKING, ROLE_TAG, SHORT_TRACKING
from deploy import names
from deploy.resources import EC2_TRUST
from deploy.session import rehearsal
from quarantine_cli import API_URL_VARIABLE, CliError, call, duration, release_steps

DRILL_TAG = f"{names.APP_NAME}:drill"  # on everything the drill launches; its value: the stage
RUN_TAG = f"{names.APP_NAME}:drill-run"  # this run's id, on the canary and its VPC
# Not under role/ec2-quarantine-*: the guardrail SCP keeps those names for the product's roles.
IAM_PATH = "/drill-canary/"
INSTANCE_TYPE = "t3.nano"  # the smallest type with two interfaces (and Nitro: tracking)
IMAGE_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
VPC_CIDR, SUBNET_CIDR = "10.254.0.0/16", "10.254.0.0/24"
ACTIVE = ("OPEN", "CONTAINED", "PARTIAL")  # an incident that holds its instance
ISOLATION_SECONDS = 60  # the first cut is synchronous: far less on any account
ISOLATION_POLL_SECONDS = 0.5  # two Describe calls each time, beside the product's own
SETTLE_SECONDS = 300  # a deletion waited for while AWS answers DependencyViolation and co.

# What the operator running the drill needs, beside execute-api:Invoke on the API's
# POST /quarantine, POST /release, GET /incidents and GET /incidents/* (README, "Fire drill").
DRILL_ACTIONS = (
    "ec2:CreateSecurityGroup", "ec2:CreateSubnet", "ec2:CreateTags", "ec2:CreateVpc",
    "ec2:DeleteNetworkInterface", "ec2:DeleteSecurityGroup", "ec2:DeleteSnapshot",
    "ec2:DeleteSubnet", "ec2:DeleteVolume", "ec2:DeleteVpc", "ec2:DescribeInstanceAttribute",
    "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshotAttribute", "ec2:DescribeSnapshots", "ec2:DescribeSubnets",
    "ec2:DescribeVolumes", "ec2:DescribeVpcs", "ec2:ModifyInstanceAttribute",
    "ec2:RunInstances", "ec2:TerminateInstances",
    "iam:AddRoleToInstanceProfile", "iam:CreateInstanceProfile", "iam:CreateRole",
    "iam:DeleteInstanceProfile", "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:GetRolePolicy",
    "iam:ListInstanceProfiles", "iam:ListRolePolicies", "iam:ListRoles", "iam:PassRole",
    "iam:RemoveRoleFromInstanceProfile",
    "kms:DescribeKey", "kms:GetPublicKey",
    "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket",
    "ssm:GetParameter", "states:DescribeExecution", "sts:GetCallerIdentity",
)


class Abort(Exception):
    """The drill cannot go on: the failed check says why."""


def say(message: str) -> None:
    print(f"[drill] {message}", flush=True)


def _code(error) -> str:
    return getattr(error, "response", {}).get("Error", {}).get("Code", "")


def _tags(resource: dict) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def where_denied(message: str, stage: str) -> str:
    """For an IAM denial, the action and the policy that lacks it; '' for anything else."""
    action = re.search(r"not authorized to perform:? ([\w-]+:\w+)", message)
    if not action:
        return ""
    role = re.search(r"(?:assumed-role|role)/([\w+=,.@-]+)", message)
    role = role.group(1) if role else ""
    if role == names.state_machine_role(stage):
        policy = f"the state machine's role {role} (deploy/statemachine.py, `make deploy`)"
    elif role.startswith(names.function(stage, "")):
        function = role[len(names.function(stage, "")):]
        policy = (f"role {role}: .chalice/policy-{stage}-{function}.json (`make policies`, "
                  "then `make deploy`)")
    elif role.startswith(names.APP_NAME):
        policy = f"role {role}: deploy/member-role-{stage}.yaml (the member account's roles)"
    else:
        user = re.search(r"User: (\S+)", message)
        policy = (f"the policies of {user.group(1) if user else 'your credentials'}: the drill "
                  "needs what README's \"Fire drill\" lists")
    return f"denied {action.group(1)}: look at {policy}"


def _answer(error, stage: str) -> str:
    """What AWS (or botocore) answered, in one line, with the policy to look at if denied."""
    message = " ".join(str(error).split())
    hint = where_denied(message, stage)
    return f"AWS answered {message}" + (f" ({hint})" if hint else "")


class Check:
    def __init__(self, name: str, passed: bool, detail: str = ""):
        self.name, self.passed, self.detail = name, passed, detail


class Drill:
    """One run: what it made (for the cleanup), what it saw, its checks."""

    def __init__(self, stage: str, api_url: str, session, poll: float = 2.0,
                 timeout: float = 1800.0):
        self.stage, self.api_url, self.poll, self.timeout = stage, api_url, poll, timeout
        self.session = session
        self.region = session.region_name
        self._clients = {}
        self.run_id = uuid.uuid4().hex[:8]
        self.name = f"drill-canary-{stage}-{self.run_id}"
        self.started_at = None  # when the drill began making things (UTC, from AWS's clock)
        self.made: dict[str, str] = {}  # vpc, subnet, group, role, profile, instance
        self.before: dict = {}  # the canary as launched (observe()): what release restores
        self.account = None
        self.incident_id = None
        self.errors_seen = 0  # the incident's errors already checked
        self.checks: list[Check] = []
        self.step = "reach AWS and the API"  # what runs now: the check an exception fails
        self.isolated_after = None

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    # -- what the drill reports --

    def check(self, name: str, passed: bool, detail: str = "", shown: bool = False) -> bool:
        """Record a check; its detail is what AWS showed, said when it failed (or `shown`)."""
        self.checks.append(Check(name, passed, detail))
        said = detail and (shown or not passed)
        say(f"{'PASS' if passed else 'FAIL'} {name}{': ' + detail if said else ''}")
        return passed

    def api(self, method: str, path: str, payload=None) -> dict:
        try:
            status, body = call(types.SimpleNamespace(api_url=self.api_url, region=self.region),
                                method, path, payload)
        except CliError as error:
            self.check(f"{method} {path}", False, str(error))
            raise Abort(path) from None
        if status >= 400:
            self.check(f"{method} {path}", False,
                       f"{status} {body.get('error')}: {body.get('message')}")
            raise Abort(path)
        return body

    # -- the drill --

    def preflight(self) -> None:
        identity = self.client("sts").get_caller_identity()
        self.account = identity["Account"]
        say(f"stage {self.stage}, account {self.account}, region {self.region}, as "
            f"{identity['Arn']}{' (embedded AWS)' if rehearsal() else ''}; API {self.api_url}")
        self.api("GET", "/incidents?limit=1")  # reachable and allowed, before anything is made
        left = leftovers(self, self.stage)
        if left:
            self.check("no previous drill's resources remain", False,
                       f"{len(left)} remain (below); nothing was made")
            for line in describe_leftovers(left):
                say(line)
            raise Abort("leftovers")

    def launch(self) -> None:
        self.step = "launch the canary"
        ec2, iam = self.client("ec2"), self.client("iam")
        tags = [{"Key": DRILL_TAG, "Value": self.stage}, {"Key": RUN_TAG, "Value": self.run_id},
                {"Key": "Name", "Value": self.name}]

        def tagged(kind):
            return [{"ResourceType": kind, "Tags": tags}]

        image = self.client("ssm").get_parameter(Name=IMAGE_PARAMETER)["Parameter"]["Value"]
        zones = sorted(o["Location"] for o in ec2.describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[
                {"Name": "instance-type", "Values": [INSTANCE_TYPE]}])["InstanceTypeOfferings"])
        if not zones:
            self.check("launch the canary", False, f"{INSTANCE_TYPE} is offered in no "
                       f"availability zone of {self.region}")
            raise Abort("no zone")
        self.started_at = time.time()
        self.made["vpc"] = ec2.create_vpc(CidrBlock=VPC_CIDR, TagSpecifications=tagged(
            "vpc"))["Vpc"]["VpcId"]
        self.made["subnet"] = ec2.create_subnet(
            VpcId=self.made["vpc"], CidrBlock=SUBNET_CIDR, AvailabilityZone=zones[0],
            TagSpecifications=tagged("subnet"))["Subnet"]["SubnetId"]
        self.made["group"] = ec2.create_security_group(
            GroupName=self.name, Description="ec2-quarantine drill canary: no inbound",
            VpcId=self.made["vpc"], TagSpecifications=tagged("security-group"))["GroupId"]
        iam.create_role(RoleName=self.name, Path=IAM_PATH,
                        AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
                        Description="ec2-quarantine drill canary: no rights")
        self.made["role"] = self.name
        profile = iam.create_instance_profile(InstanceProfileName=self.name, Path=IAM_PATH)
        self.made["profile"] = self.name
        iam.add_role_to_instance_profile(InstanceProfileName=self.name, RoleName=self.name)
        launch = {
            "ImageId": image, "InstanceType": INSTANCE_TYPE, "MinCount": 1, "MaxCount": 1,
            "ClientToken": self.name,  # a retried RunInstances launches no second canary
            "IamInstanceProfile": {"Arn": profile["InstanceProfile"]["Arn"]},
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            # not the default (stop), so containment has it to change and release to restore
            "InstanceInitiatedShutdownBehavior": "terminate",
            "NetworkInterfaces": [
                {"DeviceIndex": index, "SubnetId": self.made["subnet"],
                 "Groups": [self.made["group"]], "DeleteOnTermination": True}
                for index in (0, 1)],
            "TagSpecifications": [*tagged("instance"), *tagged("volume"),
                                  *tagged("network-interface")]}
        self.made["instance"] = self._run_instances(launch)["InstanceId"]
        ec2.get_waiter("instance_running").wait(
            InstanceIds=[self.made["instance"]], WaiterConfig={"Delay": 5, "MaxAttempts": 60})
        self.before = self.observe()
        self.check("canary launched", len(self.before["interfaces"]) == 2 and bool(
            self.before["volumes"]), f"{self.made['instance']} ({INSTANCE_TYPE}, "
            f"{len(self.before['interfaces'])} interfaces, {len(self.before['volumes'])} "
            f"volume(s)) in {self.made['vpc']}, no route to the internet", shown=True)

    def _run_instances(self, launch: dict) -> dict:
        """RunInstances, waiting out IAM's propagation of the new instance profile."""
        from botocore.exceptions import ClientError

        for attempt in range(20):
            try:
                return self.client("ec2").run_instances(**launch)["Instances"][0]
            except ClientError as error:
                if _code(error) != "InvalidParameterValue" or "profile" not in str(
                        error).lower() or attempt == 19:
                    raise
                time.sleep(3)

    def observe(self) -> dict:
        """The canary as AWS describes it now: what containment changes and release restores."""
        ec2, instance_id = self.client("ec2"), self.made["instance"]
        described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"][0]
        interfaces = ec2.describe_network_interfaces(Filters=[
            {"Name": "attachment.instance-id", "Values": [instance_id]}])["NetworkInterfaces"]

        def attribute(name):
            answer = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=name)
            return answer[name[0].upper() + name[1:]]["Value"]

        return {
            "state": described["State"]["Name"],
            "interfaces": {i["NetworkInterfaceId"]: sorted(g["GroupId"] for g in i["Groups"])
                           for i in interfaces},
            "tracking": {i["NetworkInterfaceId"]: {
                key: i.get("ConnectionTrackingConfiguration", DEFAULT_TRACKING).get(
                    key, DEFAULT_TRACKING[key]) for key in DEFAULT_TRACKING}
                for i in interfaces},
            "profile": (described.get("IamInstanceProfile") or {}).get("Arn"),
            "metadata": {key: value for key, value in described.get(
                "MetadataOptions", {}).items() if key != "State"},
            "termination_protection": attribute("disableApiTermination"),
            "stop_protection": attribute("disableApiStop"),
            "shutdown": attribute("instanceInitiatedShutdownBehavior"),
            "volumes": {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"]
                        for m in described.get("BlockDeviceMappings", []) if "Ebs" in m},
            "tags": _tags(described),
        }

    def quarantine(self) -> dict:
        self.step = "quarantine the canary"
        started = time.monotonic()
        try:
            opened = self.api("POST", "/quarantine", {
                "instance_id": self.made["instance"],
                "reason": f"fire drill {self.run_id} (make drill): a canary, no real incident"})
        except (Abort, KeyboardInterrupt):  # a 504 may have acted: the cleanup must know
            self.incident_id = self.find_incident()
            raise
        self.incident_id = opened["incident_id"]
        answered = time.monotonic() - started
        say(f"quarantine requested: {self.incident_id} (the API answered in {answered:.2f} s)")
        isolation = self._isolated_within(started)
        incident = self.wait(lambda found: found["status"] != "OPEN")
        cut = incident.get("first_cut") or {}
        self.check("every interface isolated", isolation is not None,
                   f"{self.isolated_after:.2f} s after the request, seen from AWS"
                   + (f" (the first cut took {duration(cut['start'], cut['end'])})"
                      if cut.get("end") else "") if isolation else
                   f"not within {ISOLATION_SECONDS} s: {self._interfaces_now()}", shown=True)
        return incident

    def find_incident(self) -> str | None:
        """The canary's newest incident, as the API lists it (None if it cannot say)."""
        try:
            status, body = call(types.SimpleNamespace(api_url=self.api_url, region=self.region),
                                "GET", "/incidents", query={
                                    "instance_id": self.made["instance"], "limit": 1})
        except CliError:
            return None
        listed = body.get("incidents") or [] if status == 200 else []
        return listed[0]["incident_id"] if listed else None

    def _isolated_within(self, started: float):
        """The isolation group once every interface shows it alone, polled from AWS."""
        isolation = None
        while time.monotonic() - started < ISOLATION_SECONDS:
            isolation = isolation or self._product_groups().get("isolation")
            if isolation and all(g == [isolation] for g in self._interfaces_now().values()):
                self.isolated_after = time.monotonic() - started
                return isolation
            time.sleep(ISOLATION_POLL_SECONDS)
        return None

    def _interfaces_now(self) -> dict:
        found = self.client("ec2").describe_network_interfaces(
            NetworkInterfaceIds=list(self.before["interfaces"]))["NetworkInterfaces"]
        return {i["NetworkInterfaceId"]: sorted(g["GroupId"] for g in i["Groups"])
                for i in found}

    def _product_groups(self) -> dict:
        """{role: group id} of the product's groups in the canary's VPC."""
        found = self.client("ec2").describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [self.made["vpc"]]},
            {"Name": "tag-key", "Values": [ROLE_TAG]}])["SecurityGroups"]
        return {_tags(g)[ROLE_TAG]: g["GroupId"] for g in found}

    def wait(self, done) -> dict:
        """The incident, polled through the API until `done(incident)`."""
        deadline, said = time.monotonic() + self.timeout, None
        while True:
            incident = self.api("GET", f"/incidents/{self.incident_id}")
            if done(incident):
                return incident
            steps = [t["step"] for t in incident.get("timeline") or []]
            if steps[-1:] != said:
                say(f"  ... {incident['status']}, steps so far: {', '.join(steps) or 'none'}")
                said = steps[-1:]
            if time.monotonic() > deadline:
                self.check(f"incident {self.incident_id} settles", False,
                           f"still {incident['status']} after {self.timeout:.0f} s")
                raise Abort("timeout")
            time.sleep(self.poll)

    def contained(self, incident: dict) -> None:
        """Every promise of containment, read from AWS, for what was there at launch."""
        self.step = "check containment"
        self._errors(incident)
        if not self.check("incident CONTAINED", incident["status"] == "CONTAINED",
                          f"{incident['status']}" + ("" if incident["status"] != "DRY_RUN"
                                                     else ": DRY_RUN is on for the stage")):
            if incident["status"] == "DRY_RUN":
                raise Abort("dry run")
        options = self._options(incident)
        now, isolation = self.observe(), self._product_groups().get("isolation")
        for eni in sorted(self.before["interfaces"]):
            on = now["interfaces"].get(eni, "detached")
            self.check(f"interface {eni} on the isolation group alone",
                       bool(isolation) and on == [isolation], f"on {on}")
        self.check("no interface attached since", set(now["interfaces"]) == set(
            self.before["interfaces"]), f"{sorted(now['interfaces'])}")
        rules = self.client("ec2").describe_security_groups(GroupIds=[isolation])[
            "SecurityGroups"][0] if isolation else {}
        self.check("the isolation group has no rules", bool(isolation) and not rules.get(
            "IpPermissions") and not rules.get("IpPermissionsEgress"),
            f"{isolation}: in {rules.get('IpPermissions')}, out {rules.get('IpPermissionsEgress')}"
            if isolation else "no isolation group in the VPC")
        deny_all = options.get("credentials_mode") == "deny-all"
        wanted = (f"arn:aws:iam::{self.account}:instance-profile/"
                  f"{names.deny_all_profile(self.stage)}" if deny_all else None)
        self.check("instance profile " + ("swapped for the stage's deny-all one" if deny_all
                                          else "taken away"), now["profile"] == wanted,
                   f"is {now['profile']}")
        self.check("metadata endpoint off", now["metadata"].get("HttpEndpoint") == "disabled",
                   f"{now['metadata']}")
        self.check("termination protection on", now["termination_protection"] is True)
        if options.get("disable_api_stop"):
            self.check("stop protection on", now["stop_protection"] is True)
        self.check("shutdown behaviour stop", now["shutdown"] == "stop", f"is {now['shutdown']}")
        kept = {volume: now["volumes"].get(volume, "detached") for volume in self.before[
            "volumes"]}
        self.check("every volume kept on termination", all(v is False for v in kept.values()),
                   f"{kept}")
        for eni in sorted(self.before["interfaces"]):
            tracking = now["tracking"].get(eni)
            self.check(f"interface {eni} tracks connections briefly", tracking == SHORT_TRACKING,
                       f"{tracking}")
        quarantine_tags = {k: v for k, v in now["tags"].items() if k in QUARANTINE_TAGS}
        self.check("quarantine tags", set(quarantine_tags) == set(QUARANTINE_TAGS) and
                   quarantine_tags.get(TAG_INCIDENT) == self.incident_id, f"{quarantine_tags}")
        if options.get("stop_after_evidence"):
            self.check("stopped after the evidence", now["state"] == "stopped", now["state"])
        self._snapshots(incident, options)
        self._evidence(incident)

    def _errors(self, incident: dict) -> None:
        """Each error the incident recorded since the last look, with the policy to look at
        when it was a denial."""
        errors = incident.get("errors") or []
        for error in errors[self.errors_seen:]:
            hint = where_denied(error.get("message", ""), self.stage)
            self.check(f"no error: {error.get('action')} {error.get('resource', '')}", False,
                       f"{error.get('code')}: {error.get('message')}"
                       + (f" ({hint})" if hint else ""))
        self.errors_seen = len(errors)

    def _options(self, incident: dict) -> dict:
        """The options the incident ran under (its execution's input)."""
        return json.loads(self.client("stepfunctions").describe_execution(
            executionArn=incident["execution_arn"])["input"]).get("options", {})

    def _snapshots(self, incident: dict, options: dict) -> None:
        ids = sorted((incident.get("evidence") or {}).get("snapshots") or {})
        found = self.client("ec2").describe_snapshots(SnapshotIds=ids)["Snapshots"] if ids else []
        of = {s["VolumeId"]: s for s in found if s["State"] == "completed"
              and _tags(s).get(TAG_INCIDENT) == self.incident_id}
        self.check("a completed snapshot of every volume, tagged with the incident",
                   set(of) == set(self.before["volumes"]),
                   f"volumes {sorted(self.before['volumes'])}, snapshots "
                   f"{[(s['SnapshotId'], s['VolumeId'], s['State']) for s in found]}")
        account = options.get("forensic_account_id")
        for snapshot in of.values() if account else ():
            shared = self.client("ec2").describe_snapshot_attribute(
                SnapshotId=snapshot["SnapshotId"], Attribute="createVolumePermission")[
                "CreateVolumePermissions"]
            self.check(f"{snapshot['SnapshotId']} shared with {account}",
                       {"UserId": account} in shared, f"{shared}")

    def _evidence(self, incident: dict) -> None:
        from quarantine_cli import evidence

        store = (incident.get("evidence") or {}).get("store") or ""
        if not store.startswith("s3://"):
            self.check("evidence verify", False, "the incident has no evidence store")
            return
        try:
            key = self.client("kms").describe_key(KeyId=names.evidence_signing_key_alias(
                self.stage))["KeyMetadata"]["Arn"]
            report = evidence.verify(self.client("s3"), store[5:].split("/", 1)[0],
                                     self.incident_id, evidence.load_public_key(
                                         evidence.public_key_pem(self.client("kms"), key)))
        except evidence.EvidenceError as error:
            self.check("evidence verify", False, str(error))
            return
        self.check("evidence verify", report["verified"],
                   f"{len(report.get('objects', []))} objects and the signature" if report[
                       "verified"] else evidence.render(report).replace("\n", "; "), shown=True)

    def release(self) -> None:
        self.step = "release the canary"
        attempts = release_steps(self.api("GET", f"/incidents/{self.incident_id}"))
        self.api("POST", "/release", {"instance_id": self.made["instance"],
                                      "reason": f"fire drill {self.run_id} over"})
        incident = self.wait(lambda found: release_steps(found) > attempts)
        self._errors(incident)
        self.check("incident RELEASED", incident["status"] == "RELEASED", incident["status"])
        if self.before["state"] == "running":  # a stopped canary is started again by release
            self.client("ec2").get_waiter("instance_running").wait(
                InstanceIds=[self.made["instance"]], WaiterConfig={"Delay": 5, "MaxAttempts": 60})
        now = self.observe()
        for what in ("interfaces", "tracking", "profile", "metadata", "termination_protection",
                     "stop_protection", "shutdown", "volumes", "tags", "state"):
            self.check(f"restored exactly: {what.replace('_', ' ')}",
                       now[what] == self.before[what],
                       f"before {self.before[what]}, now {now[what]}")

    def run(self) -> None:
        self.preflight()
        self.launch()
        incident = self.quarantine()
        self.contained(incident)
        self.release()


# -- what a drill leaves, and taking it away --

def _is_drills_vpc(vpc: dict, stage: str) -> bool:
    """A VPC the drill made: its tags, run id, name and CIDR all as the drill makes them (the
    tag alone is anyone's to write)."""
    tags = _tags(vpc)
    return (tags.get(DRILL_TAG) == stage and bool(tags.get(RUN_TAG))
            and tags.get("Name") == f"drill-canary-{stage}-{tags[RUN_TAG]}"
            and vpc.get("CidrBlock") == VPC_CIDR)


def _pages(client, operation: str, key: str, **arguments) -> list:
    return [item for page in client.get_paginator(operation).paginate(**arguments)
            for item in page[key]]


def leftovers(drill, stage: str) -> list[dict]:
    """What a drill of `stage` left, or what carries its tag: {kind, id, note, remove}. A
    removal command is offered only for what is shaped as the drill makes it; never a
    termination (an instance is named, and checked by a person)."""
    ec2, iam = drill.client("ec2"), drill.client("iam")
    tag = [{"Name": f"tag:{DRILL_TAG}", "Values": [stage]}]
    found = []
    vpcs = []
    for vpc in _pages(ec2, "describe_vpcs", "Vpcs", Filters=tag):
        if _is_drills_vpc(vpc, stage):
            vpcs.append(vpc["VpcId"])
            found.append({"kind": "vpc", "id": vpc["VpcId"], "remove": True})
        else:
            found.append({"kind": "vpc", "id": vpc["VpcId"], "note": NOT_A_DRILLS})
    for instance in (i for r in _pages(ec2, "describe_instances", "Reservations", Filters=[
            *tag, {"Name": "instance-state-name", "Values": [
                "pending", "running", "stopping", "stopped", "shutting-down"]}])
            for i in r["Instances"]):
        tags = _tags(instance)
        if instance.get("VpcId") not in vpcs:
            note = NOT_A_DRILLS
        else:
            note = (f"a canary ({tags.get('Name')}): check it with `aws ec2 describe-instances "
                    f"--instance-ids {instance['InstanceId']}`, then terminate it")
            if TAG_INCIDENT in tags:
                note += f", after `ec2-quarantine release {instance['InstanceId']}`"
        found.append({"kind": "instance", "id": instance["InstanceId"], "note": note})
    for kind, operation, key, ident, extra in (  # data: named, never offered for deletion
            ("volume", "describe_volumes", "Volumes", "VolumeId", {}),
            ("snapshot", "describe_snapshots", "Snapshots", "SnapshotId", {"OwnerIds": ["self"]})):
        found += [{"kind": kind, "id": item[ident], "note": HOLDS_DATA}
                  for item in _pages(ec2, operation, key, Filters=tag, **extra)]
    if vpcs:
        within = [{"Name": "vpc-id", "Values": vpcs}]
        found += [{"kind": "network-interface", "id": n["NetworkInterfaceId"], "remove": True}
                  for n in _pages(ec2, "describe_network_interfaces", "NetworkInterfaces",
                                  Filters=within)]
        found += [{"kind": "security-group", "id": g["GroupId"], "remove": True}
                  for g in _pages(ec2, "describe_security_groups", "SecurityGroups",
                                  Filters=within) if g["GroupName"] != "default"]
        found += [{"kind": "subnet", "id": s["SubnetId"], "remove": True}
                  for s in _pages(ec2, "describe_subnets", "Subnets", Filters=within)]
    prefix = f"drill-canary-{stage}-"
    found += [{"kind": "instance-profile", "id": p["InstanceProfileName"], "remove": True}
              for p in _pages(iam, "list_instance_profiles", "InstanceProfiles",
                              PathPrefix=IAM_PATH)
              if p["Path"] == IAM_PATH and p["InstanceProfileName"].startswith(prefix)]
    found += [{"kind": "role", "id": r["RoleName"], "remove": True}
              for r in _pages(iam, "list_roles", "Roles", PathPrefix=IAM_PATH)
              if r["Path"] == IAM_PATH and r["RoleName"].startswith(prefix)]
    order = list(REMOVE)
    return sorted(found, key=lambda item: order.index(item["kind"]))


NOT_A_DRILLS = "NOT shaped as a drill's (the tag alone is anyone's to write): take its tag away"
HOLDS_DATA = ("it may hold data, and its tags are anyone's to write: check it is the canary's "
              "before you delete it")
REMOVE = {  # in the order they can be removed; nothing that holds data is offered for deletion
    "instance": "",
    "snapshot": "",
    "volume": "",
    "network-interface": "aws ec2 delete-network-interface --network-interface-id {id}",
    "security-group": "aws ec2 delete-security-group --group-id {id}",
    "subnet": "aws ec2 delete-subnet --subnet-id {id}",
    "vpc": "aws ec2 delete-vpc --vpc-id {id}",
    "instance-profile": "aws iam remove-role-from-instance-profile --instance-profile-name {id} "
                        "--role-name {id}; aws iam delete-instance-profile "
                        "--instance-profile-name {id}",
    "role": "aws iam delete-role --role-name {id} (its inline policies first: "
            "aws iam list-role-policies --role-name {id})",
}


def describe_leftovers(left: list[dict]) -> list[str]:
    """One line per leftover: what it is, and the command that removes it (in this order)."""
    lines = []
    for item in left:
        note = item.get("note", "")
        command = REMOVE[item["kind"]].format(id=item["id"]) if item.get("remove") else ""
        lines.append(f"  {item['kind']} {item['id']}{': ' + note if note else ''}"
                     f"{'  →  ' + command if command else ''}")
    return lines


class Cleanup:
    """Take away what this run made, whatever happened before; what cannot be, named. What it
    deletes it knows as its own: the ids its calls returned, or this run's id in a tag written
    at creation, and for volumes and snapshots also made during this run."""

    def __init__(self, drill: Drill):
        self.drill, self.left = drill, []
        self.ec2, self.iam = drill.client("ec2"), drill.client("iam")

    def _try(self, what: str, call, *, retry=("DependencyViolation",
                                             "InvalidNetworkInterface.InUse", "VolumeInUse",
                                             "DeleteConflict")):
        """`call()`; gone already is done; what AWS refuses for now is tried again for
        SETTLE_SECONDS; anything else is left behind, said."""
        from botocore.exceptions import BotoCoreError, ClientError

        deadline, waiting = time.monotonic() + SETTLE_SECONDS, False
        while True:
            try:
                return call()
            except ClientError as error:
                if _code(error).endswith(".NotFound") or _code(error) == "NoSuchEntity":
                    return None
                if _code(error) in retry and time.monotonic() < deadline:
                    if not waiting:
                        say(f"  {what}: waiting ({_code(error)})")
                        waiting = True
                    time.sleep(min(10.0, self.drill.poll))
                    continue
                self.left.append(f"{what}: {_answer(error, self.drill.stage)}")
            except BotoCoreError as error:
                self.left.append(f"{what}: {_answer(error, self.drill.stage)}")
            return None

    def _ours(self, kind: str, operation: str, key: str, **arguments) -> list[dict]:
        """This run's resources of `kind`, found by its run tag (a call interrupted before it
        answered left no id)."""
        return self._try(f"find this run's {kind}", lambda: _pages(
            self.ec2, operation, key, Filters=[
                {"Name": f"tag:{RUN_TAG}", "Values": [self.drill.run_id]}], **arguments)) or []

    def run(self) -> None:
        drill, made, ec2, iam = self.drill, self.drill.made, self.ec2, self.iam
        if "instance" not in made:  # RunInstances interrupted before it answered
            made["instance"] = next((i["InstanceId"] for r in self._ours(
                "instance", "describe_instances", "Reservations") for i in r["Instances"]), None)
        if "vpc" not in made:
            made["vpc"] = next((v["VpcId"] for v in self._ours("VPC", "describe_vpcs", "Vpcs")),
                               None)
        if made["instance"]:
            drill.incident_id = drill.incident_id or drill.find_incident()
            if drill.incident_id:
                self._release_if_active()
            self._terminate(made["instance"])
        for snapshot in self._snapshots():
            self._try(f"delete snapshot {snapshot}", lambda s=snapshot: ec2.delete_snapshot(
                SnapshotId=s))
        for volume in self._volumes():  # kept on termination where release did not restore it
            self._try(f"delete volume {volume}", lambda v=volume: ec2.delete_volume(VolumeId=v))
        if made["vpc"]:
            within = [{"Name": "vpc-id", "Values": [made["vpc"]]}]
            for eni in self._try("find the VPC's interfaces", lambda: _pages(
                    ec2, "describe_network_interfaces", "NetworkInterfaces",
                    Filters=within)) or []:
                self._try(f"delete interface {eni['NetworkInterfaceId']}", lambda e=eni:
                          ec2.delete_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"]))
            for group in self._try("find the VPC's groups", lambda: _pages(
                    ec2, "describe_security_groups", "SecurityGroups", Filters=within)) or []:
                if group["GroupName"] != "default":  # the drill's, and the product's two
                    self._try(f"delete group {group['GroupId']} ({group['GroupName']})",
                              lambda g=group: ec2.delete_security_group(GroupId=g["GroupId"]))
            for subnet in self._try("find the VPC's subnets", lambda: _pages(
                    ec2, "describe_subnets", "Subnets", Filters=within)) or []:
                self._try(f"delete subnet {subnet['SubnetId']}", lambda s=subnet:
                          ec2.delete_subnet(SubnetId=s["SubnetId"]))
            self._try(f"delete VPC {made['vpc']}", lambda: ec2.delete_vpc(VpcId=made["vpc"]))
        name = drill.name  # the role and profile, by this run's own name
        self._try(f"empty instance profile {name}", lambda: iam.remove_role_from_instance_profile(
            InstanceProfileName=name, RoleName=name))
        self._try(f"delete instance profile {name}",
                  lambda: iam.delete_instance_profile(InstanceProfileName=name))
        for policy in self._try("list the role's policies", lambda: iam.list_role_policies(
                RoleName=name)["PolicyNames"]) or []:  # a revocation policy left on it
            self._try(f"delete policy {policy}", lambda p=policy: iam.delete_role_policy(
                RoleName=name, PolicyName=p))
        self._try(f"delete role {name}", lambda: iam.delete_role(RoleName=name))

    def _volumes(self) -> list[str]:
        """The canary's volumes: attached at launch (or carrying this run's tag), and made
        during this run; never one attached to it since."""
        launched = set(self.drill.before.get("volumes", {}))
        return [v["VolumeId"] for v in self._ours("volumes", "describe_volumes", "Volumes")
                if (not launched or v["VolumeId"] in launched) and self._this_run(
                    v["CreateTime"])]

    def _snapshots(self) -> list[str]:
        """The incident's snapshots of the canary's volumes, made during this run."""
        if not self.drill.incident_id:
            return []
        volumes = set(self.drill.before.get("volumes", {})) or {
            v["VolumeId"] for v in self._ours("volumes", "describe_volumes", "Volumes")}
        found = self._try("find the incident's snapshots", lambda: _pages(
            self.ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=[
                {"Name": f"tag:{TAG_INCIDENT}", "Values": [self.drill.incident_id]}])) or []
        return [s["SnapshotId"] for s in found
                if s["VolumeId"] in volumes and self._this_run(s["StartTime"])]

    def _this_run(self, created) -> bool:
        return self.drill.started_at is not None and created.timestamp() >= \
            self.drill.started_at - 60  # clocks differ by seconds; a volume of yesterday's no

    def _release_if_active(self) -> None:
        """An incident left active would keep the canary watched and block `make destroy`."""
        drill = self.drill
        try:
            incident = drill.api("GET", f"/incidents/{drill.incident_id}")
            if incident["status"] == "OPEN":
                incident = drill.wait(lambda found: found["status"] != "OPEN")
            if incident["status"] in ACTIVE:
                say(f"releasing {drill.incident_id} before cleaning up")
                attempts = release_steps(incident)
                drill.api("POST", "/release", {"instance_id": drill.made["instance"],
                                               "reason": f"fire drill {drill.run_id}: clean-up"})
                drill.wait(lambda found: release_steps(found) > attempts)
        except Abort:
            self.left.append(f"incident {drill.incident_id} may still be active: "
                             f"`ec2-quarantine release {drill.made['instance']}`")

    def _terminate(self, instance_id: str) -> None:
        """The canary, and only it: the id this run launched, its run tag checked first (AWS
        may not describe a new instance at once: asked again meanwhile)."""
        ec2 = self.ec2
        described = None
        for _ in range(12):
            described = self._try(f"describe canary {instance_id}", lambda: ec2.describe_instances(
                InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])
            if described:
                break
            time.sleep(min(5.0, self.drill.poll))
        if not described:
            self.left.append(f"instance {instance_id}: AWS does not describe it; check it "
                             f"(`aws ec2 describe-instances --instance-ids {instance_id}`)")
            return
        if described["State"]["Name"] == "terminated":
            return
        if _tags(described).get(RUN_TAG) != self.drill.run_id:
            self.left.append(f"instance {instance_id}: its run tag is not this drill's; not "
                             "terminated")
            return
        self._try("lift the canary's termination protection", lambda: ec2.modify_instance_attribute(
            InstanceId=instance_id, DisableApiTermination={"Value": False}))
        self._try(f"terminate canary {instance_id}",
                  lambda: ec2.terminate_instances(InstanceIds=[instance_id]))
        self._try(f"wait for canary {instance_id} to terminate",
                  lambda: ec2.get_waiter("instance_terminated").wait(
                      InstanceIds=[instance_id], WaiterConfig={"Delay": 5, "MaxAttempts": 120}))


def render(drill: Drill) -> str:
    width = max([len(c.name) for c in drill.checks] + [5])
    lines = [f"{'check':<{width}}  result  what AWS showed", "-" * (width + 40)]
    for check in drill.checks:
        lines.append(f"{check.name:<{width}}  {'pass' if check.passed else 'FAIL':<6}  "
                     f"{'' if check.passed else check.detail}")
    return "\n".join(lines)


def api_url_of(stage: str) -> str | None:
    """The stage's API, as Chalice recorded its deployment (the rehearsal's copy on the
    embedded AWS)."""
    from deploy import project

    path = os.path.join(project.working_copy(stage) if rehearsal() else project.PROJECT_DIR,
                        ".chalice", "deployed", f"{stage}.json")
    try:
        with open(path) as handle:
            deployed = json.load(handle)
    except (OSError, ValueError):
        return None
    return next((r.get("rest_api_url") for r in deployed.get("resources", [])
                 if r.get("resource_type") == "rest_api"), None)


def main(stage: str, api_url: str | None = None, poll: float = 2.0) -> int:
    import boto3

    api_url = api_url or os.environ.get(API_URL_VARIABLE) or api_url_of(stage)
    if not api_url:
        say(f"FAILED: no API for stage {stage}: `make deploy STAGE={stage}` first, or set "
            f"{API_URL_VARIABLE}")
        return 1
    session = boto3.session.Session()
    if not session.region_name:
        say("FAILED: no region: set AWS_REGION (or the profile's region), the stage's region")
        return 1
    drill = Drill(stage, api_url.rstrip("/"), session, poll=poll)
    for signum in INTERRUPTS:
        signal.signal(signum, _interrupt)
    try:
        drill.run()
    except Abort:
        pass
    except KeyboardInterrupt:
        drill.check("not interrupted", False, f"interrupted during: {drill.step}; cleaning up")
    except Exception as error:  # noqa: BLE001 - a failed check in one line, then the cleanup
        drill.check(drill.step, False, _answer(error, stage))
    finally:
        cleaned = _clean(drill)
    print(render(drill), flush=True)
    failed = [c for c in drill.checks if not c.passed]
    if drill.isolated_after is not None:
        say(f"time to isolation: {drill.isolated_after:.2f} s from the request")
    say(f"DRILL {'FAILED' if failed else 'PASSED'}: {len(drill.checks) - len(failed)} of "
        f"{len(drill.checks)} checks passed" + ("" if cleaned else "; something was left "
                                                "behind (above)"))
    return 1 if failed else 0


INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, a lost terminal


def _clean(drill: Drill) -> bool:
    """The cleanup, deaf to further interrupts; True when nothing of this drill remains."""
    if drill.started_at is None:  # nothing was made
        return True
    previous = {signum: signal.signal(signum, lambda *_: say("cleaning up first: a moment"))
                for signum in INTERRUPTS}
    try:
        say("cleaning up")
        cleanup = Cleanup(drill)
        try:
            cleanup.run()
        except Exception as error:  # noqa: BLE001 - said, and the search below still runs
            cleanup.left.append(f"the cleanup stopped: {_answer(error, drill.stage)}")
        left = _still_there(drill)
        for problem in cleanup.left:
            say(f"  left behind: {problem}")
        drill.check("nothing left behind", not left and not cleanup.left,
                    "; ".join(describe_leftovers(left)).strip() or "see above")
        return not left and not cleanup.left
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _still_there(drill: Drill) -> list[dict]:
    """The account searched again (none before it started: preflight); AWS's lists may lag a
    deletion by seconds, so what is found is looked for again before it counts."""
    for attempt in range(3):
        try:
            left = leftovers(drill, drill.stage)
        except Exception as error:  # noqa: BLE001 - counted as left behind, said
            return [{"kind": "vpc", "id": "?",
                     "note": f"the search failed: {_answer(error, drill.stage)}"}]
        if not left or attempt == 2:
            return left
        time.sleep(min(10.0, drill.poll * 2))
    return left


def _interrupt(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
