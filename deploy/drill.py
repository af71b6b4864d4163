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
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
          "UnauthorizedAccess", "AuthorizationError")

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
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


class Abort(Exception):
    """The drill cannot go on: the failed check says why."""


def say(message: str) -> None:
    print(f"[drill] {message}", flush=True)


def _code(error) -> str:
    return getattr(error, "response", {}).get("Error", {}).get("Code", "")


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


class Check:
    def __init__(self, name: str, passed: bool, detail: str = ""):
        self.name, self.passed, self.detail = name, passed, detail


class Drill:
    """One run: what it made (for the cleanup), what it saw, its checks."""

    def __init__(self, stage: str, api_url: str, poll: float = 2.0,
                 timeout: float = 1800.0):
        import boto3

        self.stage, self.api_url, self.poll, self.timeout = stage, api_url, poll, timeout
        self.session = boto3.session.Session()
        self.region = self.session.region_name or "us-east-1"
        self._clients = {}
        self.run_id = uuid.uuid4().hex[:8]
        self.name = f"drill-canary-{stage}-{self.run_id}"
        self.made: dict[str, str] = {}  # vpc, subnet, group, role, profile, instance
        self.before: dict = {}  # the canary as launched (observe()): what release restores
        self.account = None
        self.incident_id = None
        self.errors_seen = 0  # the incident's errors already checked
        self.checks: list[Check] = []
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

    def answered(self, step: str, error) -> Abort:
        """A failed AWS call of the drill's own, as a failed check, and the abort it means."""
        message = str(error)
        hint = where_denied(message, self.stage) if _code(error) in DENIED or \
            "not authorized" in message else ""
        self.check(step, False, f"AWS answered {message}" + (f" ({hint})" if hint else ""))
        return Abort(step)

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
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            identity = self.client("sts").get_caller_identity()
        except (BotoCoreError, ClientError) as error:
            raise self.answered("your credentials", error) from None
        self.account = identity["Account"]
        say(f"stage {self.stage}, account {self.account}, region {self.region}, as "
            f"{identity['Arn']}{' (embedded AWS)' if rehearsal() else ''}; API {self.api_url}")
        self.api("GET", "/incidents?limit=1")  # reachable and allowed, before anything is made
        try:
            left = leftovers(self, self.stage)
        except ClientError as error:
            raise self.answered("look for a previous drill's resources", error) from None
        if left:
            self.check("no previous drill's resources remain", False,
                       f"{len(left)} remain (below); nothing was made")
            for line in describe_leftovers(left):
                say(line)
            raise Abort("leftovers")

    def launch(self) -> None:
        from botocore.exceptions import ClientError

        ec2, iam = self.client("ec2"), self.client("iam")
        tags = [{"Key": DRILL_TAG, "Value": self.stage}, {"Key": RUN_TAG, "Value": self.run_id},
                {"Key": "Name", "Value": self.name}]

        def tagged(kind):
            return [{"ResourceType": kind, "Tags": tags}]

        try:
            image = self.client("ssm").get_parameter(Name=IMAGE_PARAMETER)["Parameter"]["Value"]
            zone = sorted(o["Location"] for o in ec2.describe_instance_type_offerings(
                LocationType="availability-zone", Filters=[
                    {"Name": "instance-type", "Values": [INSTANCE_TYPE]}])[
                "InstanceTypeOfferings"])[0]
            self.made["vpc"] = ec2.create_vpc(CidrBlock=VPC_CIDR, TagSpecifications=tagged(
                "vpc"))["Vpc"]["VpcId"]
            self.made["subnet"] = ec2.create_subnet(
                VpcId=self.made["vpc"], CidrBlock=SUBNET_CIDR, AvailabilityZone=zone,
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
            instance = self._run_instances(launch)
            self.made["instance"] = instance["InstanceId"]
            ec2.get_waiter("instance_running").wait(
                InstanceIds=[self.made["instance"]], WaiterConfig={"Delay": 5, "MaxAttempts": 60})
            self.before = self.observe()
        except ClientError as error:
            raise self.answered("launch the canary", error) from None
        self.check("canary launched", True, f"{self.made['instance']} ({INSTANCE_TYPE}, "
                   f"{len(self.before['interfaces'])} interfaces) in {self.made['vpc']}, no "
                   "route to the internet", shown=True)

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
        metadata = described.get("MetadataOptions", {})
        return {
            "state": described["State"]["Name"],
            "interfaces": {i["NetworkInterfaceId"]: sorted(g["GroupId"] for g in i["Groups"])
                           for i in interfaces},
            "tracking": {i["NetworkInterfaceId"]: {
                key: i.get("ConnectionTrackingConfiguration", DEFAULT_TRACKING).get(
                    key, DEFAULT_TRACKING[key]) for key in DEFAULT_TRACKING}
                for i in interfaces},
            "profile": (described.get("IamInstanceProfile") or {}).get("Arn"),
            "metadata": {key: metadata.get(key) for key in (
                "HttpEndpoint", "HttpTokens", "HttpPutResponseHopLimit")},
            "termination_protection": ec2.describe_instance_attribute(
                InstanceId=instance_id, Attribute="disableApiTermination")[
                "DisableApiTermination"]["Value"],
            "shutdown": ec2.describe_instance_attribute(
                InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")[
                "InstanceInitiatedShutdownBehavior"]["Value"],
            "volumes": {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"]
                        for m in described.get("BlockDeviceMappings", []) if "Ebs" in m},
            "tags": {t["Key"]: t["Value"] for t in described.get("Tags", [])},
        }

    def quarantine(self) -> dict:
        started = time.monotonic()
        opened = self.api("POST", "/quarantine", {
            "instance_id": self.made["instance"],
            "reason": f"fire drill {self.run_id} (make drill): a canary, no real incident"})
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

    def _isolated_within(self, started: float):
        """The isolation group once every interface shows it alone, polled from AWS."""
        while time.monotonic() - started < ISOLATION_SECONDS:
            groups = self._interfaces_now()
            isolation = self._product_groups().get("isolation")
            if isolation and all(g == [isolation] for g in groups.values()):
                self.isolated_after = time.monotonic() - started
                return isolation
            time.sleep(0.2)
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
        return {t["Value"]: g["GroupId"] for g in found for t in g.get("Tags", [])
                if t["Key"] == ROLE_TAG}

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
        """Every promise of containment, read from AWS."""
        self._errors(incident)
        if not self.check("incident CONTAINED", incident["status"] == "CONTAINED",
                          f"{incident['status']}" + ("" if incident["status"] != "DRY_RUN"
                                                     else ": DRY_RUN is on for the stage")):
            if incident["status"] == "DRY_RUN":
                raise Abort("dry run")
        options = self._options(incident)
        now, groups = self.observe(), self._product_groups()
        isolation = groups.get("isolation")
        for eni, on in sorted(now["interfaces"].items()):
            self.check(f"interface {eni} on the isolation group alone",
                       bool(isolation) and on == [isolation], f"on {on}")
        rules = self.client("ec2").describe_security_groups(GroupIds=[isolation])[
            "SecurityGroups"][0] if isolation else {}
        self.check("the isolation group has no rules", bool(isolation) and not rules.get(
            "IpPermissions") and not rules.get("IpPermissionsEgress"),
            f"{isolation}: in {rules.get('IpPermissions')}, out {rules.get('IpPermissionsEgress')}"
            if isolation else "no isolation group in the VPC")
        deny_all = options.get("credentials_mode") == "deny-all"
        wanted = options.get("deny_all_profile_arn") if deny_all else None
        self.check("instance profile " + ("swapped for the deny-all one" if deny_all else
                                          "taken away"), now["profile"] == wanted,
                   f"is {now['profile']}")
        self.check("metadata endpoint off", now["metadata"]["HttpEndpoint"] == "disabled",
                   f"{now['metadata']}")
        self.check("termination protection on", now["termination_protection"] is True)
        self.check("shutdown behaviour stop", now["shutdown"] == "stop", f"is {now['shutdown']}")
        self.check("every volume kept on termination",
                   not any(now["volumes"].values()), f"{now['volumes']}")
        for eni, tracking in sorted(now["tracking"].items()):
            self.check(f"interface {eni} tracks connections briefly", tracking == SHORT_TRACKING,
                       f"{tracking}")
        self.check("quarantine tags", all(k in now["tags"] for k in QUARANTINE_TAGS) and
                   now["tags"].get(TAG_INCIDENT) == self.incident_id,
                   f"{ {k: v for k, v in now['tags'].items() if k.startswith('Quarantine')} }")
        if options.get("stop_after_evidence"):
            self.check("stopped after the evidence", now["state"] == "stopped", now["state"])
        self._snapshots(incident, now, options)
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
        from botocore.exceptions import ClientError

        try:
            return json.loads(self.client("stepfunctions").describe_execution(
                executionArn=incident["execution_arn"])["input"]).get("options", {})
        except ClientError as error:
            raise self.answered("read the execution's options", error) from None

    def _snapshots(self, incident: dict, now: dict, options: dict) -> None:
        ids = sorted((incident.get("evidence") or {}).get("snapshots") or {})
        found = self.client("ec2").describe_snapshots(SnapshotIds=ids)["Snapshots"] if ids else []
        of = {s["VolumeId"]: s for s in found if s["State"] == "completed" and {
            t["Key"]: t["Value"] for t in s.get("Tags", [])}.get(TAG_INCIDENT) == self.incident_id}
        self.check("a completed snapshot of every volume, tagged with the incident",
                   set(of) == set(now["volumes"]),
                   f"volumes {sorted(now['volumes'])}, snapshots "
                   f"{[(s['SnapshotId'], s['VolumeId'], s['State']) for s in found]}")
        account = options.get("forensic_account_id")
        for snapshot in of.values() if account else ():
            shared = self.client("ec2").describe_snapshot_attribute(
                SnapshotId=snapshot["SnapshotId"], Attribute="createVolumePermission")[
                "CreateVolumePermissions"]
            self.check(f"{snapshot['SnapshotId']} shared with {account}",
                       {"UserId": account} in shared, f"{shared}")

    def _evidence(self, incident: dict) -> None:
        from botocore.exceptions import ClientError

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
        except (ClientError, evidence.EvidenceError) as error:
            raise self.answered("evidence verify", error) from None
        self.check("evidence verify", report["verified"],
                   f"{len(report.get('objects', []))} objects and the signature" if report[
                       "verified"] else evidence.render(report).replace("\n", "; "), shown=True)

    def release(self) -> None:
        before = self.api("GET", f"/incidents/{self.incident_id}")
        attempts = release_steps(before)
        self.api("POST", "/release", {"instance_id": self.made["instance"],
                                      "reason": f"fire drill {self.run_id} over"})
        incident = self.wait(lambda found: release_steps(found) > attempts)
        self._errors(incident)
        self.check("incident RELEASED", incident["status"] == "RELEASED", incident["status"])
        now = self.observe()
        for what in ("interfaces", "tracking", "profile", "metadata", "termination_protection",
                     "shutdown", "volumes", "tags", "state"):
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

def leftovers(drill, stage: str) -> list[dict]:
    """Every resource of `stage` carrying the drill tag, or inside a drill's VPC, or named under
    the drill's IAM path: {kind, id, note}."""
    ec2, iam = drill.client("ec2"), drill.client("iam")
    tag = [{"Name": f"tag:{DRILL_TAG}", "Values": [stage]}]
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs(Filters=tag)["Vpcs"]]
    found = []
    for instance in (i for r in ec2.describe_instances(Filters=[*tag, {
            "Name": "instance-state-name", "Values": [
                "pending", "running", "stopping", "stopped", "shutting-down"]}])["Reservations"]
            for i in r["Instances"]):
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        note = ("under incident " + tags[TAG_INCIDENT] + ": `ec2-quarantine release` it first"
                if TAG_INCIDENT in tags else "")
        if instance.get("VpcId") not in vpcs:
            note = "NOT in a drill's VPC: no drill launched it; take its drill tag away"
        found.append({"kind": "instance", "id": instance["InstanceId"], "note": note})
    in_vpcs = [{"Name": "vpc-id", "Values": vpcs}] if vpcs else None
    found += [{"kind": "volume", "id": v["VolumeId"]}
              for v in ec2.describe_volumes(Filters=tag)["Volumes"]]
    found += [{"kind": "snapshot", "id": s["SnapshotId"]}
              for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=tag)["Snapshots"]]
    if in_vpcs:
        found += [{"kind": "network-interface", "id": n["NetworkInterfaceId"]}
                  for n in ec2.describe_network_interfaces(Filters=in_vpcs)["NetworkInterfaces"]]
        found += [{"kind": "security-group", "id": g["GroupId"]}
                  for g in ec2.describe_security_groups(Filters=in_vpcs)["SecurityGroups"]
                  if g["GroupName"] != "default"]
        found += [{"kind": "subnet", "id": s["SubnetId"]}
                  for s in ec2.describe_subnets(Filters=in_vpcs)["Subnets"]]
    found += [{"kind": "vpc", "id": vpc} for vpc in vpcs]
    prefix = f"drill-canary-{stage}-"
    found += [{"kind": "instance-profile", "id": p["InstanceProfileName"]}
              for p in iam.list_instance_profiles(PathPrefix=IAM_PATH)["InstanceProfiles"]
              if p["InstanceProfileName"].startswith(prefix)]
    found += [{"kind": "role", "id": r["RoleName"]}
              for r in iam.list_roles(PathPrefix=IAM_PATH)["Roles"]
              if r["RoleName"].startswith(prefix)]
    return found


REMOVE = {
    "instance": "aws ec2 terminate-instances --instance-ids {id}",
    "volume": "aws ec2 delete-volume --volume-id {id}",
    "snapshot": "aws ec2 delete-snapshot --snapshot-id {id}",
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
        command = "" if note.startswith("NOT") else REMOVE[item["kind"]].format(id=item["id"])
        lines.append(f"  {item['kind']} {item['id']}{': ' + note if note else ''}"
                     f"{'  →  ' + command if command else ''}")
    return lines


class Cleanup:
    """Take away what the drill made, whatever happened before; what cannot be, named."""

    def __init__(self, drill: Drill):
        self.drill, self.left = drill, []

    def _try(self, what: str, call, *, retry=("DependencyViolation",
                                             "InvalidNetworkInterface.InUse"), wait=300.0):
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + wait
        while True:
            try:
                return call()
            except ClientError as error:
                if _code(error).endswith(".NotFound") or _code(error) in (
                        "NoSuchEntity", "InvalidGroup.NotFound"):
                    return None
                if _code(error) in retry and time.monotonic() < deadline:
                    time.sleep(min(10.0, self.drill.poll))
                    continue
                hint = where_denied(str(error), self.drill.stage)
                self.left.append(f"{what}: AWS answered {error}" + (f" ({hint})" if hint else ""))
            except BotoCoreError as error:
                self.left.append(f"{what}: {error}")
            return None

    def run(self) -> None:
        drill, made = self.drill, self.drill.made
        ec2, iam = drill.client("ec2"), drill.client("iam")
        if drill.incident_id:
            self._release_if_active()
        volumes = self._terminate(made["instance"]) if "instance" in made else []
        if volumes:
            for snapshot in self._try("find the canary's snapshots",
                                      lambda: ec2.describe_snapshots(OwnerIds=["self"], Filters=[
                                          {"Name": "volume-id", "Values": volumes}])[
                                          "Snapshots"]) or []:
                self._try(f"delete snapshot {snapshot['SnapshotId']}", lambda s=snapshot:
                          ec2.delete_snapshot(SnapshotId=s["SnapshotId"]))
            for volume in volumes:  # kept on termination when release did not restore that
                self._try(f"delete volume {volume}", lambda v=volume: ec2.delete_volume(
                    VolumeId=v), retry=("VolumeInUse",))
        if "vpc" in made:
            in_vpc = [{"Name": "vpc-id", "Values": [made["vpc"]]}]
            for eni in self._try("find the VPC's interfaces",
                                 lambda: ec2.describe_network_interfaces(Filters=in_vpc)[
                                     "NetworkInterfaces"]) or []:
                self._try(f"delete interface {eni['NetworkInterfaceId']}", lambda e=eni:
                          ec2.delete_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"]))
            for group in self._try("find the VPC's groups", lambda: ec2.describe_security_groups(
                    Filters=in_vpc)["SecurityGroups"]) or []:
                if group["GroupName"] != "default":  # the drill's, and the product's two
                    self._try(f"delete group {group['GroupId']} ({group['GroupName']})",
                              lambda g=group: ec2.delete_security_group(GroupId=g["GroupId"]))
        if "subnet" in made:
            self._try(f"delete subnet {made['subnet']}",
                      lambda: ec2.delete_subnet(SubnetId=made["subnet"]))
        if "vpc" in made:
            self._try(f"delete VPC {made['vpc']}", lambda: ec2.delete_vpc(VpcId=made["vpc"]))
        if "profile" in made:
            self._try(f"empty instance profile {made['profile']}",
                      lambda: iam.remove_role_from_instance_profile(
                          InstanceProfileName=made["profile"], RoleName=made["role"]))
            self._try(f"delete instance profile {made['profile']}",
                      lambda: iam.delete_instance_profile(InstanceProfileName=made["profile"]))
        if "role" in made:
            for policy in self._try("list the role's policies", lambda: iam.list_role_policies(
                    RoleName=made["role"])["PolicyNames"]) or []:  # a revocation left behind
                self._try(f"delete policy {policy}", lambda p=policy: iam.delete_role_policy(
                    RoleName=made["role"], PolicyName=p))
            self._try(f"delete role {made['role']}", lambda: iam.delete_role(
                RoleName=made["role"]), retry=("DeleteConflict",))

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

    def _terminate(self, instance_id: str) -> list[str]:
        """The canary, and only it: the id RunInstances gave this run, its run tag checked.
        Returns its volumes (kept on termination where release did not restore that)."""
        ec2 = self.drill.client("ec2")
        described = self._try(f"describe canary {instance_id}", lambda: ec2.describe_instances(
            InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])
        if not described:
            return list(self.drill.before.get("volumes", {}))
        volumes = [m["Ebs"]["VolumeId"] for m in described.get("BlockDeviceMappings", [])
                   if "Ebs" in m] or list(self.drill.before.get("volumes", {}))
        if described["State"]["Name"] == "terminated":
            return volumes
        tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        if tags.get(RUN_TAG) != self.drill.run_id:
            self.left.append(f"instance {instance_id}: its run tag is not this drill's; not "
                             "terminated")
            return []
        self._try("lift the canary's termination protection", lambda: ec2.modify_instance_attribute(
            InstanceId=instance_id, DisableApiTermination={"Value": False}))
        self._try(f"terminate canary {instance_id}",
                  lambda: ec2.terminate_instances(InstanceIds=[instance_id]))
        self._try(f"wait for canary {instance_id} to terminate",
                  lambda: ec2.get_waiter("instance_terminated").wait(
                      InstanceIds=[instance_id], WaiterConfig={"Delay": 5, "MaxAttempts": 120}))
        return volumes


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
    api_url = api_url or os.environ.get(API_URL_VARIABLE) or api_url_of(stage)
    if not api_url:
        say(f"FAILED: no API for stage {stage}: `make deploy STAGE={stage}` first, or set "
            f"{API_URL_VARIABLE}")
        return 1
    drill = Drill(stage, api_url.rstrip("/"), poll=poll)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        drill.run()
    except Abort:
        pass
    except KeyboardInterrupt:
        drill.check("not interrupted", False, "Ctrl-C: cleaning up")
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


def _clean(drill: Drill) -> bool:
    """The cleanup, deaf to a second Ctrl-C; True when nothing of this drill remains."""
    if not drill.made:
        return True
    previous = signal.signal(signal.SIGINT, lambda *_: say("cleaning up first: a moment"))
    try:
        say("cleaning up")
        cleanup = Cleanup(drill)
        cleanup.run()
        try:
            left = leftovers(drill, drill.stage)  # none before it started (preflight)
        except Exception as error:  # noqa: BLE001 - said, and counted as left behind
            left = [{"kind": "listing", "id": str(error)}]
        for problem in cleanup.left:
            say(f"  left behind: {problem}")
        drill.check("nothing left behind", not left and not cleanup.left,
                    "; ".join(describe_leftovers(left)).strip() or "see above")
        return not left and not cleanup.left
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
