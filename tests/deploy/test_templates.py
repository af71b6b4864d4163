"""The templates in deploy/ (member role, cross-region forwarder), and the resources stack with
member accounts (its event bus policies), lint clean with cfn-lint (moved from tests/unit:
cfn-lint takes seconds to start)."""

import json
import os
import subprocess
import sys

from deploy import member_role, permissions, project, resources


def _lint(templates: list[str]) -> None:
    cfn_lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    result = subprocess.run([cfn_lint, *templates], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_templates_lint():
    deploy_dir = os.path.join(project.PROJECT_DIR, "deploy")
    templates = [os.path.join(deploy_dir, name) for name in sorted(os.listdir(deploy_dir))
                 if name.endswith(".yaml")]
    for stage in permissions.STAGES:
        assert any(t.endswith(member_role.file(stage)) for t in templates)
    _lint(templates)


def test_the_resources_stack_with_members_lints(tmp_path):
    """Every option on: listed members and `*`, so both bus policies and the organization."""
    templates = []
    for stage in permissions.STAGES:
        template = resources.template(stage, permissions.profiles(stage)["every-option"])
        assert {"TamperFromMembers", "TamperFromOrganization"} <= set(template["Resources"])
        templates.append(str(tmp_path / f"resources-{stage}.json"))
        with open(templates[-1], "w") as handle:
            json.dump(template, handle)
    _lint(templates)
