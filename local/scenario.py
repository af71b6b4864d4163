"""Scenario switches: facts about the imaginary fleet that tests set and the patches read.

In AWS an instance is SSM-managed when its agent is online, and a snapshot stays `pending` for a
while; the embedded AWS has neither, so a test says so here (through `Stack` or directly, in
process under `mock_aws`). `reset()` forgets both.
"""

ssm_managed: set = set()  # instance ids with an (imaginary) online SSM agent
snapshot_hold = {"polls": 0}  # how many DescribeSnapshots a new snapshot reads `pending` for


def manage_with_ssm(instance_id: str) -> None:
    """Make `instance_id` look SSM-managed (an online agent) to DescribeInstanceInformation."""
    ssm_managed.add(instance_id)


def hold_snapshots(polls: int) -> None:
    """Snapshots created from now on read `pending` for their first `polls` DescribeSnapshots."""
    snapshot_hold["polls"] = max(0, int(polls))


def reset() -> None:
    """No instance is SSM-managed and snapshots complete at once, as on plain moto."""
    ssm_managed.clear()
    hold_snapshots(0)
