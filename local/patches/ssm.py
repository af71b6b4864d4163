"""SSM fidelity: only instances with an online agent are listed and run commands."""

from local import scenario


def patch_ssm():
    """moto has no DescribeInstanceInformation (500) and its SendCommand succeeds for any
    instance; in AWS only instances with an online agent are listed and can run commands.
    Which instances have one is the scenario's (`local.scenario.manage_with_ssm`)."""
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult
    from moto.ssm.responses import SimpleSystemManagerResponse

    def describe_instance_information(self):
        wanted = None
        for item in self._get_param("Filters", []) or []:
            if item.get("Key") == "InstanceIds":
                wanted = set(item.get("Values", []))
        listed = sorted(i for i in scenario.ssm_managed if wanted is None or i in wanted)
        return ActionResult({"InstanceInformationList": [
            {"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux",
             "ResourceType": "EC2Instance"} for i in listed]})

    original_send = SimpleSystemManagerResponse.send_command

    def send_command(self):
        unmanaged = [i for i in self._get_param("InstanceIds", []) if i not in scenario.ssm_managed]
        if unmanaged:
            raise JsonRESTError("InvalidInstanceId",
                                f"Instances {unmanaged} not in a valid state for account")
        result = original_send(self)
        _write_agent_output(self, result.result["Command"]["CommandId"])
        return result

    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
    SimpleSystemManagerResponse.send_command = send_command


def _write_agent_output(response, command_id):
    """The agent writes each instance's output under OutputS3KeyPrefix, as in AWS."""
    from moto.s3.models import s3_backends

    bucket = response._get_param("OutputS3BucketName")
    if not bucket:
        return
    prefix = response._get_param("OutputS3KeyPrefix", "").rstrip("/")
    backend = s3_backends[response.current_account]["aws"]
    for instance in response._get_param("InstanceIds", []):
        key = f"{prefix}/{command_id}/{instance}/awsrunShellScript/0.awsrunShellScript/stdout"
        backend.put_object(bucket, key.lstrip("/"), b"memory image")
