"""`make deploy`, `make destroy`, `make package` and `make drill`: one stage into one account and
region.

deploy: (1) the resources stack (deploy/resources.py) is created or updated and waited for;
(2) its outputs are written into the stage's environment in `.chalice/config.json`; (3) Chalice
deploys the functions, the API and the EventBridge rule; (4) what Chalice cannot set is set on
what it made (deploy/attach.py: the API's access logs, the GuardDuty function's failure
destination and its rule's dead-letter queue). Nothing of the app is deployed before
its resources exist, and an app left half-deployed has its rule disabled, so no finding reaches
it until a rerun finishes the job. Every run converges: a second one changes nothing.

With AWS_ENDPOINT_URL set (a rehearsal on the embedded AWS) the commands work on a copy of the
project under build/rehearsal/, so the real stage's files never see the rehearsal's ARNs; the
stage `make local` serves itself is refused there (it was provisioned, not deployed).
"""

import argparse
import os

from chalicelib import settings
from deploy import (application, attach, package, permissions, project, resources, retained,
                    stack)
from deploy.session import DeployError, say


def check_settings(project_dir: str, stage: str) -> None:
    """The stage's settings as its functions will read them: each one valid (RESPONSE_RULES
    among them), and all of them within Lambda's environment limit."""
    config = project.read_config(project_dir)
    environment = {**config.get("environment_variables", {}),
                   **config["stages"][stage].get("environment_variables", {})}
    try:
        settings.load({**settings.DEFAULTS, **environment, "DENY_ALL_PROFILE_ARN": environment.get(
            "DENY_ALL_PROFILE_ARN") or "arn:aws:iam::000000000000:instance-profile/checked"})
    except settings.SettingsError as error:
        raise DeployError(f"stage {stage}'s settings: {error} (.chalice/config.json). Nothing "
                          "was deployed") from None
    overflow = settings.environment_overflow(environment)
    if overflow:
        raise DeployError(f"stage {stage}'s settings: {overflow} (.chalice/config.json). "
                          "Nothing was deployed")


def deploy(stage: str, parameters: dict[str, str]) -> dict:
    retained.refuse_the_local_stage(stage)
    project_dir = project.working_copy(stage)
    check_settings(project_dir, stage)
    stale = permissions.stale()
    if stale:
        raise DeployError(f"policy files are stale ({', '.join(stale)}): run `make policies`")
    outputs = stack.converge(stage, parameters, os.path.join(project_dir, "build", stage))
    project.wire_settings(project_dir, stage, outputs)
    check_settings(project_dir, stage)  # with the stack's outputs in it
    deployed = application.deploy(project_dir, stage)
    api_stage = project.read_config(project_dir)["stages"][stage].get("api_gateway_stage", "api")
    attach.attach(stage, api_stage, deployed, outputs)
    say(f"done: stage {stage} is deployed")
    return {"outputs": outputs, "deployed": deployed}


def destroy(stage: str, purge: bool, force: bool = False) -> None:
    """Delete the app and the stack; the table and the evidence bucket stay unless `purge`.
    Refused while incidents are active (their instances could not be released), unless
    `force`."""
    retained.refuse_the_local_stage(stage)
    project_dir = project.working_copy(stage)
    active = retained.active_incidents(stage)
    if active and not force:
        raise DeployError(f"{active} incident(s) of stage {stage} are still active: release "
                          f"them first (or `make destroy STAGE={stage} FORCE=1`). Nothing was "
                          "deleted")
    application.delete(project_dir, stage)
    stack.delete(stage)
    retained.keep_or_purge(stage, purge)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("deploy", "destroy", "package", "drill"))
    parser.add_argument("--stage", required=True, choices=permissions.STAGES)
    parser.add_argument("--alert-email", default=None)
    parser.add_argument("--evidence-retention-days", default=None)
    parser.add_argument("--evidence-lock-mode", default=None, type=str.upper,
                        choices=resources.LOCK_MODES)
    parser.add_argument("--purge", action="store_true",
                        help="destroy: delete the incidents table and evidence bucket too")
    parser.add_argument("--force", action="store_true",
                        help="destroy: even while incidents are active")
    parser.add_argument("--api-url", default=None,
                        help="drill: the stage's API (default: $EC2_QUARANTINE_API_URL, or what "
                             "Chalice recorded deploying the stage)")
    args = parser.parse_args(argv)
    if args.command == "drill":  # its own report: a table of checks, and its own cleanup
        from deploy import drill

        return drill.main(args.stage, args.api_url)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if args.command == "deploy":
            deploy(args.stage, {"AlertEmail": args.alert_email,
                                "EvidenceRetentionDays": args.evidence_retention_days,
                                "EvidenceLockMode": args.evidence_lock_mode})
        elif args.command == "destroy":
            destroy(args.stage, args.purge, args.force)
        else:
            package.build(args.stage)
    except DeployError as error:
        say(f"FAILED: {error}")
        return 1
    except (BotoCoreError, ClientError) as error:
        say(f"FAILED: AWS answered {error}. Rerun the same command once the cause is fixed: "
            "every step converges")
        return 1
    return 0
