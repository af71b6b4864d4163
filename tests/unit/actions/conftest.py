"""Fixtures of the action tests: moto in process (`mock_aws`, no server) with the embedded AWS's
fidelity patches the actions meet, victims like real instances, and the settings."""

import pytest

from tests.unit.actions.world import World

SETTINGS = {  # what a deployed stage sets, with the optional actions' inputs given
    "EVIDENCE_BUCKET": "evidence-bucket",
    "FORENSIC_ACCOUNT_ID": "210987654321",
    "MEMORY_CAPTURE_DOCUMENT": "AWSSupport-ExampleMemoryCapture",
    "DENY_ALL_PROFILE_ARN": "arn:aws:iam::999999999999:instance-profile/ec2-quarantine-deny-all",
}


@pytest.fixture(scope="session")
def fidelity():
    """The embedded AWS's fidelity patches that need no running stack
    (`local.patches.apply_backend_fidelity`): they patch moto's backend and response classes,
    so they hold in process as on the server, and applying them again is a no-op. This is the
    one place the action tests import local/."""
    from local import patches, scenario

    patches.apply_backend_fidelity()
    return scenario


@pytest.fixture
def world(fidelity, monkeypatch):
    """A fresh moto account, in process. The embedded AWS (started by other suites in this
    process) leaves its endpoint in the environment: clients must not go there."""
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # thousands of objects per reset
    world = World()
    with mock_aws():
        yield world
    world.close()
    fidelity.reset()


@pytest.fixture
def manage_with_ssm(fidelity):
    """Give an instance an (imaginary) online SSM agent."""
    return fidelity.manage_with_ssm


@pytest.fixture
def configure():
    """Settings as a stage's environment gives them (`configure(CREDENTIALS_MODE="deny-all")`)."""
    from chalicelib import settings

    return lambda **environ: settings.load({**SETTINGS, **environ})


@pytest.fixture
def settings(configure):
    return configure()


@pytest.fixture
def victim(world):
    """An instance like a real one (local/victims.py): launched with two SecurityGroupIds, a
    second interface with a group of its own, three volumes, an instance profile."""
    from local.victims import make_victim

    return make_victim(world, interfaces=2, volumes=3)


@pytest.fixture
def fleet(world):
    """A member of an Auto Scaling group, registered in two target groups and a classic load
    balancer, with an Elastic IP (local/victims.py)."""
    from local.victims import make_fleet_member

    return make_fleet_member(world)


@pytest.fixture
def deployment(monkeypatch):
    """`deployment(NAME=value)`: the environment a deployed function reads its own settings
    from (`settings.get()`: the revoking function's, not a step's frozen options)."""
    from chalicelib import settings

    def configure_deployment(**environ):
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        settings.get.cache_clear()

    yield configure_deployment
    settings.get.cache_clear()


@pytest.fixture
def ledger(world, deployment):
    """The incidents table and records key of a deployment (revocation on), in this moto
    account; `ledger(incident)` records an incident sealed, as the entry function opens it, and
    every target the world makes meanwhile is recorded so."""
    from chalicelib import aws, bindings, incidents

    world.client("dynamodb").create_table(TableName="incidents", **incidents.TABLE_DEFINITION)
    key = world.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")[
        "KeyMetadata"]["Arn"]
    deployment(INCIDENTS_TABLE="incidents", RECORDS_KEY_ARN=key, REVOKE_ROLE_SESSIONS="true",
               AWS_DEFAULT_REGION="us-east-1")
    aws.reset()

    def record(incident: dict) -> dict:
        incident["seal"] = bindings.seal_incident(incident)
        incidents.put({**incident, "status": "OPEN"})
        return incident

    world.ledger = record
    yield record
    world.ledger = None
    aws.reset()


@pytest.fixture
def revoker(world, ledger, deployment):
    """The revoking function, in process: a step's Invoke (as `contain` of stage dev) reaches
    its handler as Lambda delivers it, JSON in and out, acting on this moto account; an Invoke
    of any other function is answered as Lambda answers an unknown name. Answered first, before
    any other hook (the embedded AWS's bridge, when this process started one)."""
    import io
    import json

    from botocore.awsrequest import AWSResponse
    from botocore.exceptions import ClientError
    from botocore.response import StreamingBody

    from chalicelib import accounts, aws, revocation
    from deploy import names
    from tests.unit.actions.world import ACCOUNT

    asked = []

    def answer(params, **_):
        function = params["url_path"].split("/")[3]
        if function != names.function("dev", revocation.FUNCTION):
            raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": f"Function not found: {function}"}}, "Invoke")
        asked.append(json.loads(params["body"]))
        data = json.dumps(revocation.handle(asked[-1], ACCOUNT)).encode()
        return AWSResponse("http://lambda.local", 200, {}, None), {
            "StatusCode": 200, "Payload": StreamingBody(io.BytesIO(data), len(data))}

    aws.reset()  # the ledger set the functions' region, as in Lambda
    accounts.forget()
    deployment(STATE_MACHINE_ARN=names.state_machine_arn("us-east-1", ACCOUNT, "dev"))
    with aws.acting_as(names.function("dev", "contain")):
        aws.client("lambda").meta.events.register_first("before-call.lambda.Invoke", answer)
        yield asked
    aws.reset()
