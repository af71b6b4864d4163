"""The in-process AWS an action test acts on: moto's `mock_aws` (no server), clients one per
service, the target an action is given, a failure injected the way AWS would answer, and reads
of the state an action leaves."""

import functools

import boto3
from botocore.exceptions import ClientError

from chalicelib.actions import Target
from chalicelib.incidents import new_id
from chalicelib.instances import pre_state

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
EXFILTRATION = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"


class World:
    """One account and region of moto, in process. `client(service)` is what a `Target` and
    `local.victims` (which calls it `stack.client`) are given: one client per service, so a
    failure injected on it (`fail`) is met by the action under test."""

    account = ACCOUNT

    def __init__(self):
        self._hooks = []
        self.ledger = None  # records each new incident, sealed (the `ledger` fixture)

    def client(self, service, region=None, account=None):
        assert region in (None, REGION) and account in (None, ACCOUNT), "one account and region"
        return _client(service)

    def fail(self, service: str, operation: str, calls=(1,),
             code: str = "UnauthorizedOperation") -> list:
        """Make the `calls`-th requests (1: the first) of `operation` fail as AWS answers a
        refusal, through botocore's before-call event (no product code is touched). Returns the
        numbers of the calls that failed, filled as they happen."""
        seen, failed = [0], []

        def before_call(model, **_):
            if model.name != operation:
                return None
            seen[0] += 1
            if seen[0] in calls:
                failed.append(seen[0])
                raise ClientError({"Error": {"Code": code, "Message": f"injected: {operation} "
                                             f"call {seen[0]}"}}, operation)
            return None

        self._hook(service, "before-call", before_call)
        return failed

    def refuse(self, service: str, operation: str, when, count: int | None = None,
               code: str = "UnauthorizedOperation") -> list:
        """Refuse the requests of `operation` whose parameters satisfy `when(params)` (the
        first `count` of them), as AWS answers a refusal (the order of concurrent requests does
        not matter). Returns the parameters of the refused ones, filled as they happen."""
        refused = []

        def provide(params, **_):
            if when(params) and (count is None or len(refused) < count):
                refused.append(dict(params))
                raise ClientError({"Error": {"Code": code, "Message": f"injected: {operation}"}},
                                  operation)

        self._hook(service, f"provide-client-params.{service}.{operation}", provide)
        return refused

    def _hook(self, service, event, hook):
        events = self.client(service).meta.events
        events.register(event, hook)
        self._hooks.append((events, event, hook))

    def close(self):
        """Take the injected failures away (the clients serve the next test)."""
        for events, event, hook in self._hooks:
            events.unregister(event, hook)
        self._hooks.clear()

    def instance(self, instance_id: str) -> dict:
        return self.client("ec2").describe_instances(InstanceIds=[instance_id])[
            "Reservations"][0]["Instances"][0]

    def target(self, instance_id: str, settings,
               finding_type: str = "UnauthorizedAccess:EC2/SSHBruteForce") -> Target:
        """The target a step would build for a new incident on `instance_id` (the pre-incident
        state read now, as `workflow.new_incident` does), recorded when a ledger is kept."""
        incident = {
            "incident_id": new_id(), "instance_id": instance_id, "account_id": ACCOUNT,
            "home_account": ACCOUNT, "region": REGION, "finding": {"type": finding_type},
            "pre_state": pre_state(self.instance(instance_id))}
        if self.ledger:
            self.ledger(incident)
        return Target(client=self.client, home_client=self.client, settings=settings,
                      incident=incident)


@functools.cache
def _client(service: str):
    """One client per service for every test: a client costs tens of milliseconds to build
    (EC2's has some 700 methods); moto's state is reset for each test all the same."""
    return _session().client(service)


@functools.cache
def _session():
    return boto3.session.Session(region_name=REGION)


# -- reads of the state an action leaves --------------------------------------------------------
def interface_groups(ec2, eni: str) -> list[str]:
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    return sorted(g["GroupId"] for g in described["Groups"])


def quarantine_groups(ec2, vpc_id: str) -> dict:
    """The product's groups in `vpc_id` by role, as described (rules included)."""
    from chalicelib.actions.isolation import find_groups

    return find_groups(ec2, {vpc_id}).get(vpc_id, {})


def associated_profiles(ec2, instance_id: str) -> list[str]:
    return [a["IamInstanceProfile"]["Arn"] for a in ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]},
                 {"Name": "state", "Values": ["associated"]}])["IamInstanceProfileAssociations"]]


def attribute(ec2, instance_id: str, name: str):
    key = name[0].upper() + name[1:]
    return ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=name)[key]["Value"]


def tags(described: dict) -> dict:
    return {t["Key"]: t["Value"] for t in described.get("Tags", [])}


def snapshots_of(ec2, instance_id: str) -> list[dict]:
    """Snapshots tagged with `instance_id` by the product (moto's AMIs own many others)."""
    return ec2.describe_snapshots(Filters=[
        {"Name": "tag:QuarantineInstance", "Values": [instance_id]}])["Snapshots"]
