"""CaptureMemory: only on an instance with an online SSM agent; the agent's output lands under the
incident's prefix and is kept on release."""

import pytest
from botocore.exceptions import ClientError

from chalicelib import actions
from chalicelib.actions.memory import CaptureMemory, NotManaged

COVERS = (CaptureMemory,)


@pytest.fixture
def managed(world, victim, manage_with_ssm, settings):
    world.client("s3").create_bucket(Bucket=settings.evidence_bucket)
    manage_with_ssm(victim["instance_id"])
    return victim["instance_id"]


def _commands(world):
    return world.client("ssm").list_commands()["Commands"]


def _memory_objects(world, target):
    listed = world.client("s3").list_objects_v2(
        Bucket=target.settings.evidence_bucket, Prefix=f"{target.incident['incident_id']}/memory/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_plan_names_the_document_and_sends_nothing(world, managed, settings):
    target = world.target(managed, settings)

    assert CaptureMemory().plan(target) == [actions.change(
        "capture-memory", managed, "memory", None, "AWSSupport-ExampleMemoryCapture")]
    assert _commands(world) == []


def test_an_instance_without_an_agent_is_refused_before_anything_is_sent(world, victim, settings):
    target = world.target(victim["instance_id"], settings)

    with pytest.raises(NotManaged):
        CaptureMemory().plan(target)
    changes, errors = actions.run([CaptureMemory()], target)

    assert changes == [] and [e["code"] for e in errors] == ["NotManaged"]
    assert _commands(world) == []


def test_apply_runs_the_document_into_the_incidents_prefix_and_undo_keeps_it(world, managed,
                                                                             settings):
    target = world.target(managed, settings)
    prefix = f"{target.incident['incident_id']}/memory"

    made = CaptureMemory().apply(target)

    [command] = _commands(world)
    assert (command["DocumentName"], command["InstanceIds"], command["OutputS3BucketName"],
            command["OutputS3KeyPrefix"]) == ("AWSSupport-ExampleMemoryCapture", [managed],
                                              settings.evidence_bucket, prefix)
    assert made == [actions.change("capture-memory", managed, "memory", None, {
        "command_id": command["CommandId"],
        "output": f"s3://{settings.evidence_bucket}/{prefix}/"})]
    assert [key.split("/")[2:4] for key in _memory_objects(world, target)] == [
        [command["CommandId"], managed]]
    CaptureMemory().undo(target, made[0])
    assert len(_memory_objects(world, target)) == 1


def test_a_refused_command_captures_nothing(world, managed, settings):
    target = world.target(managed, settings)
    world.fail("ssm", "SendCommand", code="AccessDeniedException")

    with pytest.raises(ClientError):
        CaptureMemory().apply(target)

    assert _commands(world) == [] and _memory_objects(world, target) == []


def test_losing_track_of_the_command_fails_and_leaves_the_agents_output(world, managed, settings):
    target = world.target(managed, settings)
    world.fail("ssm", "GetCommandInvocation", code="AccessDeniedException")

    changes, errors = actions.run([CaptureMemory()], target)

    assert changes == [] and [e["code"] for e in errors] == ["AccessDeniedException"]
    assert len(_commands(world)) == 1 and len(_memory_objects(world, target)) == 1
