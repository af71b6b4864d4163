"""What `make deploy` sets after Chalice and what `make destroy --purge` does to locked evidence,
on moto. The REST API cannot be rehearsed (moto does not import Chalice's Swagger), so its access
logs and tracing are set here on a REST API made directly, and a bare `chalice deploy` is Chalice's
own client making its redeploy's API Gateway calls on the embedded AWS."""

import json

import pytest

from deploy import attach, project, retained
from deploy.session import DeployError

LOGS = "arn:aws:logs:us-east-1:123456789012:log-group:api-access"
ROLE = "arn:aws:iam::123456789012:role/api-gateway-logs"


def _rest_api(gateway) -> str:
    api = gateway.create_rest_api(name="ec2-quarantine")["id"]
    root = gateway.get_resources(restApiId=api)["items"][0]["id"]
    gateway.put_method(restApiId=api, resourceId=root, httpMethod="GET",
                       authorizationType="AWS_IAM")
    gateway.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    gateway.create_deployment(restApiId=api, stageName="api")
    return api


def test_the_stages_access_logs_and_tracing_are_set(aws):
    gateway = aws.client("apigateway")
    api = _rest_api(gateway)
    before = gateway.get_stage(restApiId=api, stageName="api")
    assert not before.get("accessLogSettings") and not before.get("tracingEnabled")

    attach.rest_api_stage(api, "api", LOGS + ":*", ROLE)
    assert gateway.get_stage(restApiId=api, stageName="api")["tracingEnabled"] is True
    settings = gateway.get_stage(restApiId=api, stageName="api")["accessLogSettings"]
    assert settings["destinationArn"] == LOGS  # API Gateway refuses CloudFormation's ":*"
    assert {"caller", "userArn", "sourceIp", "httpMethod", "resourcePath", "status"} <= set(
        json.loads(settings["format"]))
    assert gateway.get_account()["cloudwatchRoleArn"] == ROLE  # it was unset


def _chalice_redeploys_the_rest_api(rest_api_id: str, function_arn: str):
    """The API Gateway calls of Chalice's plan for a REST API it deployed before
    (`PlanStage._plan_restapi`: PutRestApi overwrite, UpdateRestApi, CreateDeployment to the
    stage; its Lambda AddPermission changes no stage), made by Chalice's own client with the
    project's REST API as Chalice models it (config, Swagger). Returns that model."""
    from chalice.awsclient import TypedAWSClient
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.appgraph import ApplicationGraphBuilder
    from chalice.deploy.models import RestAPI
    from chalice.deploy.swagger import SwaggerGenerator

    factory = CLIFactory(project.PROJECT_DIR)
    config = factory.create_config_obj(chalice_stage_name="prod")
    api, = [r for r in ApplicationGraphBuilder().build(config, "prod").resources
            if isinstance(r, RestAPI)]
    chalice = TypedAWSClient(factory.create_botocore_session())
    swagger = SwaggerGenerator(chalice.region_name, {"api_handler_arn": function_arn})
    chalice.update_api_from_swagger(rest_api_id, swagger.generate_swagger(config.chalice_app, api))
    endpoint_type = chalice.get_rest_api(rest_api_id)["endpointConfiguration"]["types"][0]
    chalice.update_rest_api(rest_api_id, [
        {"op": "replace", "path": "/minimumCompressionSize", "value": api.minimum_compression},
        {"op": "replace", "path": f"/endpointConfiguration/types/{endpoint_type}",
         "value": api.endpoint_type}])
    chalice.deploy_rest_api(rest_api_id, api.api_gateway_stage, api.xray)
    return api


def test_a_bare_chalice_deploy_keeps_the_access_logs_and_turns_tracing_off(stack):
    """On the embedded AWS, whose CreateDeployment keeps an existing stage as AWS documents.
    Chalice sends `tracingEnabled=bool(xray)`, and the project sets no `xray` (it would trace
    every function): tracing is off until `make deploy` sets it again."""
    gateway = stack.client("apigateway")
    api = _rest_api(gateway)
    attach.rest_api_stage(api, "api", LOGS, ROLE)
    settings = gateway.get_stage(restApiId=api, stageName="api")["accessLogSettings"]

    chalices = _chalice_redeploys_the_rest_api(
        api, f"arn:aws:lambda:{stack.region}:{stack.account}:function:ec2-quarantine-prod")
    assert chalices.api_gateway_stage == "api" and not chalices.xray
    assert "/quarantine" in [r["path"] for r in gateway.get_resources(restApiId=api)["items"]]
    after = gateway.get_stage(restApiId=api, stageName="api")
    assert after["accessLogSettings"] == settings
    assert after["tracingEnabled"] is False

    attach.rest_api_stage(api, "api", LOGS, ROLE)  # make deploy's step after Chalice
    assert gateway.get_stage(restApiId=api, stageName="api")["tracingEnabled"] is True


def test_an_accounts_own_api_gateway_logging_role_is_kept(aws):
    gateway = aws.client("apigateway")
    theirs = "arn:aws:iam::123456789012:role/their-logging-role"
    gateway.update_account(patchOperations=[
        {"op": "replace", "path": "/cloudwatchRoleArn", "value": theirs}])
    attach.rest_api_stage(_rest_api(gateway), "api", LOGS, ROLE)
    assert gateway.get_account()["cloudwatchRoleArn"] == theirs


def _locked_bucket(s3, mode: str) -> str:
    bucket = "ec2-quarantine-prod-evidence-123456789012-us-east-1"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode, "Days": 1}}})
    s3.put_object(Bucket=bucket, Key="inc-1/manifest.json", Body=b"{}")
    return bucket


def test_governance_locked_evidence_resists_a_plain_delete_and_is_purged_with_bypass(aws):
    s3 = aws.client("s3")
    bucket = _locked_bucket(s3, "GOVERNANCE")
    version = s3.list_object_versions(Bucket=bucket)["Versions"][0]
    refused = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": version["Key"], "VersionId": version["VersionId"]}]})
    assert refused.get("Errors")  # the lock holds against a delete that does not bypass it

    retained._purge_bucket(bucket)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_compliance_locked_evidence_cannot_be_purged_and_the_refusal_says_so(aws):
    s3 = aws.client("s3")
    bucket = _locked_bucket(s3, "COMPLIANCE")
    with pytest.raises(DeployError, match="COMPLIANCE mode: nobody, the account root included"):
        retained._purge_bucket(bucket)
    assert s3.list_object_versions(Bucket=bucket)["Versions"]  # the evidence is all there


def test_the_rest_api_is_found_in_chalices_deployed_record():
    deployed = {"schema_version": "2.0", "resources": [  # the shape Chalice records
        {"name": "api_handler", "resource_type": "lambda_function",
         "lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:ec2-quarantine-prod"},
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abc123",
         "rest_api_url": "https://abc123.execute-api.us-east-1.amazonaws.com/api/"}]}
    assert attach._rest_api(deployed) == "abc123"
    assert attach._rest_api({"resources": deployed["resources"][:1]}) is None  # no API in the record
