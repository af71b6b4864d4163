"""Cloud Custodian beside ec2-quarantine: the same kind of instance isolated (a pre-made group,
`remove: all`), snapshotted and tagged by a pinned c7n, on the same embedded AWS.

c7n 0.9.53 pins boto3 1.43 (the dev venv has 1.44), so Custodian runs from its own venv
(bench/.venv-c7n, made by `make bench` from bench/requirements-c7n.txt) as a subprocess pointed
at the embedded AWS through AWS_ENDPOINT_URL, with dummy credentials.
"""

import os
import string
import subprocess
import tempfile
import time
from dataclasses import dataclass

from local import recording

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(BENCH_DIR, ".venv-c7n")
PYTHON = os.path.join(VENV, "bin", "python")
POLICY = os.path.join(BENCH_DIR, "custodian-policy.yml")
SWAP = "ec2:ModifyNetworkInterfaceAttribute"  # Custodian's only one per interface: to its group


@dataclass
class CustodianRun:
    calls: list[str]  # service:action of every request, in order
    until_swap: int  # requests made up to its last swap
    seconds_to_isolation: float  # from the process's start to the swap answered
    seconds_first_request_to_isolation: float  # without the interpreter's start and imports
    seconds_total: float  # from the process's start to its exit
    isolated: bool  # every interface reads back exactly the isolation group
    groups_left: list[str]  # what the interfaces read back
    snapshots: int


def environment(endpoint: str, home: str) -> dict:
    """A clean environment for c7n: the embedded AWS, us-east-1, dummy credentials."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
            "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def isolation_group(stack, vpc_id: str) -> str:
    """A rule-free group made beforehand, as Custodian's `isolation-group` expects."""
    ec2 = stack.client("ec2")
    group = ec2.create_security_group(GroupName=f"custodian-isolation-{time.monotonic_ns()}",
                                      Description="isolation", VpcId=vpc_id)["GroupId"]
    egress = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0][
        "IpPermissionsEgress"]
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=egress)
    return group


def run(stack, clock, victim: dict) -> CustodianRun:
    """Custodian's policy on `victim`, recorded and timed; checked on the embedded AWS after."""
    group = isolation_group(stack, victim["vpc_id"])
    workdir = tempfile.mkdtemp(prefix="bench-c7n-")
    with open(POLICY) as handle:
        policy = string.Template(handle.read()).substitute(
            INSTANCE_ID=victim["instance_id"], ISOLATION_GROUP=group)
    policy_path = os.path.join(workdir, "policy.yml")
    with open(policy_path, "w") as handle:
        handle.write(policy)
    command = [os.path.join(VENV, "bin", "custodian"), "run", "--region", "us-east-1",
               "--cache-period", "0", "-s", os.path.join(workdir, "output"), policy_path]

    recording.start(stack)
    clock.reset()
    started = time.monotonic()
    finished = subprocess.run(command, env=environment(stack.endpoint, workdir),
                              capture_output=True, text=True, timeout=120)
    ended = time.monotonic()
    recording.stop(stack)
    if finished.returncode != 0:
        raise RuntimeError(f"custodian failed ({finished.returncode}): {finished.stderr[-2000:]}")

    stamps = clock.stamps()
    swap = [s for s in stamps if s.name == SWAP][-1]
    calls = [call.name for call in recording.calls(stack)]
    ec2 = stack.client("ec2")
    left = sorted({g["GroupId"] for eni in ec2.describe_network_interfaces(
        NetworkInterfaceIds=list(victim["interfaces"]))["NetworkInterfaces"]
        for g in eni["Groups"]})
    volumes = [m["Ebs"]["VolumeId"] for m in ec2.describe_instances(
        InstanceIds=[victim["instance_id"]])["Reservations"][0]["Instances"][0][
        "BlockDeviceMappings"]]
    snapshots = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": volumes}])[
        "Snapshots"]
    return CustodianRun(
        calls=calls,
        until_swap=max(n for n, call in enumerate(calls, 1) if call == SWAP),
        seconds_to_isolation=swap.answered - started,
        seconds_first_request_to_isolation=swap.answered - stamps[0].arrived,
        seconds_total=ended - started,
        isolated=left == [group],
        groups_left=left,
        snapshots=len(snapshots),
    )
