"""SSM fidelity: only instances with an online agent are listed and run commands."""

from local import scenario


def patch_ssm():
    """moto has no DescribeInstanceInformation (500) nor CancelCommand, and its SendCommand
    succeeds for any instance; in AWS only instances with an online agent are listed and can
    run commands, and their agents run the document (`_run_agents`).
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
        _run_agents(self, result.result["Command"]["CommandId"])
        return result

    def cancel_command(self):
        """moto has no CancelCommand; AWS cancels the named instances' invocations."""
        from moto.ssm.models import ssm_backends

        command = ssm_backends[self.current_account][self.region].get_command_by_id(
            self._get_param("CommandId"))
        wanted = set(self._get_param("InstanceIds", []) or command.instance_ids)
        for invocation in command.invocations:
            if invocation["InstanceId"] in wanted:
                invocation.update(Status="Cancelled", StatusDetails="Cancelled")
        return ActionResult({})

    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
    SimpleSystemManagerResponse.send_command = send_command
    SimpleSystemManagerResponse.cancel_command = cancel_command


def _run_agents(response, command_id):
    """Each instance's agent runs the document: given `UploadUrls` (the memory capture's
    contract, README), it PUTs a memory image, `PartSize` bytes a part, to those URLs over
    HTTP with no credentials of its own (the URLs are its only authorization); a refused PUT
    fails its invocation. With `scenario.ssm_hold` set the agent uploads, then never finishes."""
    import requests
    from moto.ssm.models import ssm_backends

    parameters = response._get_param("Parameters", {}) or {}
    urls = parameters.get("UploadUrls")
    if not urls:
        return
    part_size, image = int(parameters["PartSize"][0]), scenario.MEMORY_IMAGE
    pieces = [image[i:i + part_size] for i in range(0, len(image), part_size)]
    command = ssm_backends[response.current_account][response.region].get_command_by_id(
        command_id)
    for invocation in command.invocations:
        refused = [r.status_code for url, piece in zip(urls, pieces)
                   if not (r := requests.put(url, data=piece, timeout=30)).ok]
        if scenario.ssm_hold["hang"]:
            invocation.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
        elif refused or len(pieces) > len(urls):
            invocation.update(Status="Failed", StatusDetails="Failed", ResponseCode=1,
                              StandardErrorContent=f"upload refused: {refused}")
