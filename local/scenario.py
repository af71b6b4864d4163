"""Scenario switches: facts about the imaginary fleet that tests set and the patches read.

In AWS an instance is SSM-managed when its agent is online, a snapshot stays `pending` for a
while, an agent may hang and a guest may power its instance off; the embedded AWS has none of
these, so a test says so here (through `Stack` or directly, in process under `mock_aws`).
`reset()` forgets them.
"""

ssm_managed: set = set()  # instance ids with an (imaginary) online SSM agent
snapshot_hold = {"polls": 0}  # how many DescribeSnapshots a new snapshot reads `pending` for
ssm_hold = {"hang": False}  # agents upload, then never finish their command
scan_hold = {"polls": 0}  # how many GetMalwareScan a new malware scan reads RUNNING for
infected: dict = {}  # instance id -> the threats a malware scan of it finds ({name, path})
MEMORY_IMAGE = b"LiME memory image " * 64  # what an agent uploads for a memory capture


def manage_with_ssm(instance_id: str) -> None:
    """Make `instance_id` look SSM-managed (an online agent) to DescribeInstanceInformation."""
    ssm_managed.add(instance_id)


def hold_snapshots(polls: int) -> None:
    """Snapshots created from now on read `pending` for their first `polls` DescribeSnapshots."""
    snapshot_hold["polls"] = max(0, int(polls))


def infect(instance_id: str, threats: list[dict]) -> None:
    """A malware scan of `instance_id` finds `threats` ({"name", "path"}, as GuardDuty names
    them) and GuardDuty reports them as an Execution:EC2/MaliciousFile finding."""
    infected[instance_id] = list(threats)


def hold_scans(polls: int) -> None:
    """Malware scans started from now on read RUNNING for their first `polls` GetMalwareScan."""
    scan_hold["polls"] = max(0, int(polls))


def hang_ssm_commands(hang: bool = True) -> None:
    """Commands sent from now on never finish (the agent uploads, then hangs)."""
    ssm_hold["hang"] = hang


def power_off(instance_id: str, account: str, region: str) -> str:
    """The instance's guest powers it off (`poweroff`), and EC2 applies its
    instanceInitiatedShutdownBehavior as AWS does: `stop` stops it; `terminate` terminates it,
    deleting each volume whose mapping has DeleteOnTermination (the others are detached and
    stay), whatever its termination and stop protection (they guard API calls only). An
    instance that is not running has no guest to do it. Returns the instance's state after."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import StateReason

    instance = ec2_backends[account][region].get_instance(instance_id)
    if instance.state != "running":
        return instance.state
    if instance.instance_initiated_shutdown_behavior == "terminate":
        instance.terminate()
    else:
        instance.stop()
    instance.state_reason = StateReason(
        "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
        "Client.InstanceInitiatedShutdown")
    return instance.state


def reset() -> None:
    """No instance is SSM-managed, commands finish and snapshots complete at once."""
    ssm_managed.clear()
    hang_ssm_commands(False)
    hold_snapshots(0)
    infected.clear()
    hold_scans(0)
