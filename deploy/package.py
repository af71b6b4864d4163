"""`make package`: one deployable template (Chalice's SAM merged with the resources stack) and
the deployment zip, for CloudFormation pipelines and StackSets."""

import json
import os
import subprocess
import sys

from deploy import names, permissions, resources
from deploy.project import PROJECT_DIR, without_bytecode
from deploy.session import say

API_LOGICAL_ID = "APIHandler"


def merge_template(stage: str) -> dict:
    """The resources stack plus what wires Chalice's functions to it: their deterministic
    names (the state machine invokes them by name), their roles' names (the key and queue
    policies grant the roles by name, as `chalice deploy` names them) and their settings (from
    the resources)."""
    from chalice.utils import to_cfn_resource_name

    template = resources.template(stage)
    settings = {setting: template["Outputs"][output]["Value"]
                for output, setting in resources.SETTINGS_FROM_OUTPUTS.items()}
    for function in permissions.needs():
        if function == "api_handler":
            logical_id, name = API_LOGICAL_ID, names.api_function(stage)
        else:
            logical_id, name = to_cfn_resource_name(function), names.function(stage, function)
        template["Resources"][logical_id] = {"Properties": {
            "FunctionName": name, "Environment": {"Variables": dict(settings)}}}
        template["Resources"][to_cfn_resource_name(f"{function}_role")] = {
            "Properties": {"RoleName": names.function_role(stage, function)}}
    return template


def build(stage: str, out_dir: str | None = None) -> str:
    """build/<stage>/ (or out_dir): sam.json (one deployable template) and deployment.zip."""
    out_dir = out_dir or os.path.join(PROJECT_DIR, "build", stage)
    os.makedirs(out_dir, exist_ok=True)
    merge_path = os.path.join(out_dir, "merge-template.json")
    with open(merge_path, "w") as handle:
        json.dump(merge_template(stage), handle, indent=1, sort_keys=True)
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    environ = {"AWS_DEFAULT_REGION": "us-east-1", **os.environ,  # the template is region-free
               "PYTHONDONTWRITEBYTECODE": "1"}
    without_bytecode(PROJECT_DIR)
    subprocess.run([chalice, "package", "--stage", stage, "--merge-template", merge_path,
                    out_dir], cwd=PROJECT_DIR, env=environ, check=True)
    say(f"wrote {out_dir}/sam.json and {out_dir}/deployment.zip")
    return out_dir
