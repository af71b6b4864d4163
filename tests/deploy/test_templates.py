"""The templates in deploy/ (member role, cross-region forwarder) lint clean with cfn-lint (moved
from tests/unit: cfn-lint takes seconds to start)."""

import os
import subprocess
import sys

from deploy import member_role, permissions, project


def test_the_deploy_templates_lint():
    deploy_dir = os.path.join(project.PROJECT_DIR, "deploy")
    templates = [os.path.join(deploy_dir, name) for name in sorted(os.listdir(deploy_dir))
                 if name.endswith(".yaml")]
    for stage in permissions.STAGES:
        assert any(t.endswith(member_role.file(stage)) for t in templates)
    cfn_lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    result = subprocess.run([cfn_lint, *templates], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
