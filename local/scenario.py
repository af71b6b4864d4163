"""Scenario switches: facts about the imaginary fleet that tests set and the patches read.

In AWS an instance is SSM-managed when its agent is online, a snapshot stays `pending` for a
while, and an agent may hang; the embedded AWS has none of these, so a test says so here (through
`Stack` or directly, in process under `mock_aws`). `reset()` forgets them.
"""

ssm_managed: set = set()  # instance ids with an (imaginary) online SSM agent
snapshot_hold = {"polls": 0}  # how many DescribeSnapshots a new snapshot reads `pending` for
ssm_hold = {"hang": False}  # agents upload, then never finish their command
MEMORY_IMAGE = b"LiME memory image " * 64  # what an agent uploads for a memory capture


def manage_with_ssm(instance_id: str) -> None:
    """Make `instance_id` look SSM-managed (an online agent) to DescribeInstanceInformation."""
    ssm_managed.add(instance_id)


def hold_snapshots(polls: int) -> None:
    """Snapshots created from now on read `pending` for their first `polls` DescribeSnapshots."""
    snapshot_hold["polls"] = max(0, int(polls))


def hang_ssm_commands(hang: bool = True) -> None:
    """Commands sent from now on never finish (the agent uploads, then hangs)."""
    ssm_hold["hang"] = hang


def reset() -> None:
    """No instance is SSM-managed, commands finish and snapshots complete at once."""
    ssm_managed.clear()
    hang_ssm_commands(False)
    hold_snapshots(0)
