"""Cloud Custodian beside ec2-quarantine, as a GuardDuty responder deploys it: a `mode:
guard-duty` policy (bench/custodian-policy.yml) whose Lambda handler, `c7n.handler.dispatch_event`,
runs in a long-lived process (bench/c7n_responder.py) and is handed the EventBridge event of a
finding, on the same embedded AWS. Two policies: `remove: all` (documented, leaves every second
group) and `remove: matched` with a `security-group` filter (avoids it).

c7n 0.9.53 pins boto3 1.43 (the dev venv has 1.44), so the responder runs from c7n's own venv
(bench/.venv-c7n, made by `make bench` from bench/requirements-c7n.txt), pointed at the embedded
AWS through AWS_ENDPOINT_URL with dummy credentials; it talks to this process by lines on its
stdin and stdout.
"""

import json
import os
import shutil
import string
import subprocess
import tempfile
import time
from dataclasses import dataclass

import yaml

from local import recording

from bench.burst import envelope
from bench.clock import SWAP, last_of_firsts, swapped_groups

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(BENCH_DIR, ".venv-c7n")
PYTHON = os.path.join(VENV, "bin", "python")
RESPONDER = os.path.join(BENCH_DIR, "c7n_responder.py")
POLICY = os.path.join(BENCH_DIR, "custodian-policy.yml")
VARIANTS = {"remove: all": "quarantine-remove-all",  # variant: the policy's name in POLICY
            "remove: matched": "quarantine-remove-matched"}


@dataclass
class CustodianRun:
    calls: list[str]  # service:action of every request, in order
    until_swap: int  # requests made up to its last swap (its requests are sequential)
    seconds_to_swap: float  # from the event handed to its handler to its last swap answered
    seconds_handler: float  # from the event handed to its handler to the handler's return
    seconds_from_spawn: float | None  # a cold run: from the process's start to its last swap
    isolated: bool  # every interface reads back exactly the isolation group
    groups_left: list[str]  # what the interfaces read back
    snapshots: int
    timeline: list[tuple[str, float, float]]  # (request, arrived, answered) at the embedded
    #   AWS, in seconds after the event was handed over, in order


def environment(endpoint: str, home: str) -> dict:
    """A clean environment for c7n: the embedded AWS, us-east-1, dummy credentials."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
            "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing"}


def isolation_group(stack, vpc_id: str) -> str:
    """A rule-free group made beforehand, as Custodian's `isolation-group` expects."""
    ec2 = stack.client("ec2")
    group = ec2.create_security_group(GroupName=f"custodian-isolation-{time.monotonic_ns()}",
                                      Description="isolation", VpcId=vpc_id)["GroupId"]
    egress = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0][
        "IpPermissionsEgress"]
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=egress)
    return group


def policy(variant: str, group: str) -> dict:
    """The variant's policy from POLICY, its isolation group filled in."""
    with open(POLICY) as handle:
        text = string.Template(handle.read()).substitute(ISOLATION_GROUP=group)
    return next(p for p in yaml.safe_load(text)["policies"] if p["name"] == VARIANTS[variant])


class Responder:
    """One responder process for one policy: started, then handed events one at a time."""

    def __init__(self, stack, variant: str, group: str):
        self.group = group
        self.workdir = tempfile.mkdtemp(prefix="bench-c7n-")
        with open(os.path.join(self.workdir, "config.json"), "w") as handle:
            # what `custodian` packs into the Lambda archive for default options
            json.dump({"execution-options": {}, "policies": [policy(variant, group)]}, handle)
        self._log = open(os.path.join(self.workdir, "responder.log"), "w")
        self.spawned = time.monotonic()
        self.process = subprocess.Popen(
            [PYTHON, RESPONDER, self.workdir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, text=True, env=environment(stack.endpoint, self.workdir))
        self.ready = self._answer()["ready"]

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the responder ended: {self._log_tail()}")
        return json.loads(line)

    def _log_tail(self) -> str:
        with open(self._log.name) as handle:
            return handle.read()[-2000:]

    def handle(self, event: dict) -> dict:
        """Hand `event` to the handler; its answer (received, done, error)."""
        self.process.stdin.write(json.dumps({"event": event}) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        if answer["error"]:
            raise RuntimeError(f"custodian's handler failed: {answer['error'][-2000:]}")
        return answer

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def swapped(request) -> bool:
    return swapped_groups(request) is not None


def run(stack, clock, responder: Responder, victim: dict, cold: bool = False) -> CustodianRun:
    """The finding for `victim` handed to `responder`, recorded and timed; checked on the
    embedded AWS after."""
    event = envelope(victim["instance_id"], f"c7n-{time.monotonic_ns()}")
    recording.start(stack)
    clock.reset()
    handed = time.monotonic()
    answer = responder.handle(event)
    # Custodian's swaps reach the tamper watch as CloudTrail events: its requests (the app's,
    # not Custodian's) are let finish, so both counters see each, then left out
    stack.bridge.wait_idle()
    recording.stop(stack)

    recorded = recording.calls(stack)
    if len(recorded) != len(clock.stamps()):
        raise RuntimeError(f"the clock saw {len(clock.stamps())} requests, the recorder "
                           f"{len(recorded)}")
    calls = [call.name for call in recorded if call.caller is None]
    stamps = sorted((s for s in clock.stamps() if s.arrived <= answer["done"]),
                    key=lambda s: s.arrived)  # while its handler ran (the watch may answer later)
    last_swap = last_of_firsts(stamps, victim["interfaces"], swapped)
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
        seconds_to_swap=last_swap.answered - handed,
        seconds_handler=answer["done"] - handed,
        seconds_from_spawn=last_swap.answered - responder.spawned if cold else None,
        isolated=left == [responder.group],
        groups_left=left,
        snapshots=len(snapshots),
        timeline=[(s.name, s.arrived - handed, s.answered - handed) for s in stamps],
    )


def cold_run(stack, clock, variant: str, victim: dict) -> CustodianRun:
    """`variant` by a responder started for this one event: a Lambda's cold start."""
    responder = Responder(stack, variant, isolation_group(stack, victim["vpc_id"]))
    try:
        return run(stack, clock, responder, victim, cold=True)
    finally:
        responder.close()
