"""CaptureMemory: only on an instance with an online SSM agent; the agent uploads the image to
presigned part URLs of one object in the evidence bucket (no right of its own there), the step
completes the upload (or aborts it: no part left behind), and the image is kept on release."""

import pytest
from botocore.exceptions import ClientError

from chalicelib import actions
from chalicelib.actions import memory
from chalicelib.actions.memory import CaptureMemory, NotManaged

COVERS = (CaptureMemory,)


@pytest.fixture
def managed(world, victim, manage_with_ssm, settings):
    s3 = world.client("s3")
    s3.create_bucket(Bucket=settings.evidence_bucket)
    s3.put_bucket_versioning(Bucket=settings.evidence_bucket,
                             VersioningConfiguration={"Status": "Enabled"})  # as deployed
    manage_with_ssm(victim["instance_id"])
    return victim["instance_id"]


def _commands(world):
    return world.client("ssm").list_commands()["Commands"]


def _memory_objects(world, target):
    listed = world.client("s3").list_objects_v2(
        Bucket=target.settings.evidence_bucket, Prefix=f"{target.incident['incident_id']}/memory/")
    return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}


def _open_uploads(world, settings):
    return world.client("s3").list_multipart_uploads(Bucket=settings.evidence_bucket).get(
        "Uploads", [])


def test_plan_names_the_document_and_sends_nothing(world, managed, settings):
    target = world.target(managed, settings)

    assert CaptureMemory().plan(target) == [actions.change(
        "capture-memory", managed, "memory", None, "AWSSupport-ExampleMemoryCapture")]
    assert _commands(world) == [] and _open_uploads(world, settings) == []


def test_an_instance_without_an_agent_is_refused_before_anything_is_sent(world, victim, settings):
    target = world.target(victim["instance_id"], settings)

    with pytest.raises(NotManaged):
        CaptureMemory().plan(target)
    changes, errors = actions.run([CaptureMemory()], target)

    assert changes == [] and [e["code"] for e in errors] == ["NotManaged"]
    assert _commands(world) == []


def test_the_agent_uploads_to_presigned_parts_and_the_step_completes_the_image(world, managed,
                                                                            settings, fidelity):
    target = world.target(managed, settings)
    key = f"{target.incident['incident_id']}/memory/{managed}.mem"

    made = CaptureMemory().apply(target)

    [command] = _commands(world)
    assert (command["DocumentName"], command["InstanceIds"], command["OutputS3BucketName"]) == (
        "AWSSupport-ExampleMemoryCapture", [managed], "")  # the agent writes nowhere itself
    urls = command["Parameters"]["UploadUrls"]
    assert command["Parameters"]["PartSize"] == [str(memory.PART_BYTES)]
    assert len(urls) == memory.PARTS and memory.PARTS * memory.PART_BYTES >= 64 * memory.GIB
    assert all(f"/{key}?" in url and f"partNumber={n}&" in url + "&"
               for n, url in enumerate(urls, 1))
    size = len(fidelity.MEMORY_IMAGE)
    assert _memory_objects(world, target) == {key: size}
    version = world.client("s3").head_object(Bucket=settings.evidence_bucket, Key=key)["VersionId"]
    assert made == [actions.change("capture-memory", managed, "memory", None, {
        "command_id": command["CommandId"], "object": f"s3://{settings.evidence_bucket}/{key}",
        "size": size, "version_id": version})]
    assert _open_uploads(world, settings) == []
    CaptureMemory().undo(target, made[0])
    assert _memory_objects(world, target) == {key: size}


def test_a_refused_command_captures_nothing_and_leaves_no_upload(world, managed, settings):
    target = world.target(managed, settings)
    world.fail("ssm", "SendCommand", code="AccessDeniedException")

    with pytest.raises(ClientError):
        CaptureMemory().apply(target)

    assert _commands(world) == [] and _memory_objects(world, target) == {}
    assert _open_uploads(world, settings) == []


def test_losing_track_of_the_command_aborts_the_upload_with_its_parts(world, managed, settings):
    target = world.target(managed, settings)
    world.fail("ssm", "GetCommandInvocation", code="AccessDeniedException")

    changes, errors = actions.run([CaptureMemory()], target)

    assert changes == [] and [e["code"] for e in errors] == ["AccessDeniedException"]
    assert len(_commands(world)) == 1  # the agent uploaded its part: the abort dropped it
    assert _memory_objects(world, target) == {} and _open_uploads(world, settings) == []


def test_a_capture_outliving_its_timeout_is_cancelled_and_its_upload_aborted(
        world, managed, configure, fidelity, monkeypatch):
    settings = configure(MEMORY_CAPTURE_TIMEOUT_SECONDS="10")
    target = world.target(managed, settings)
    monkeypatch.setattr(memory, "POLL_SECONDS", 0.5)
    fidelity.hang_ssm_commands()

    with pytest.raises(RuntimeError, match="TimedOut"):
        CaptureMemory().apply(target)

    [command] = _commands(world)
    invocation = world.client("ssm").get_command_invocation(CommandId=command["CommandId"],
                                                            InstanceId=managed)
    assert invocation["Status"] == "Cancelled"
    assert _memory_objects(world, target) == {} and _open_uploads(world, settings) == []
