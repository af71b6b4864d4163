"""The app (its functions, REST API and rule) deployed and deleted through Chalice.

A deployment that fails, Ctrl-C included, leaves the rule disabled, so no finding reaches a
half-deployed app until a rerun finishes the job.
"""

import os

from deploy import names, rules
from deploy.project import without_bytecode
from deploy.session import DeployError, client, say


def _chalice(project_dir: str, stage: str):
    from chalice.cli.factory import CLIFactory
    from chalice.utils import UI

    factory = CLIFactory(project_dir)
    config = factory.create_config_obj(chalice_stage_name=stage)
    return factory, config, factory.create_botocore_session(), UI()


def _functions(stage: str) -> list[str]:
    """The stage's deployed functions, by name."""
    prefix = names.api_function(stage)
    return sorted(f["FunctionName"] for page in client("lambda").get_paginator(
        "list_functions").paginate() for f in page["Functions"]
        if f["FunctionName"].startswith(prefix))


def deploy(project_dir: str, stage: str) -> dict:
    """`chalice deploy --stage`; a failure disables the rule, so nothing runs half-deployed."""
    factory, config, session, ui = _chalice(project_dir, stage)
    without_bytecode(project_dir)
    deployer = factory.create_default_deployer(session=session, config=config, ui=ui)
    say(f"deploying the app (Chalice) to stage {stage}")
    try:
        deployed = deployer.deploy(config, chalice_stage_name=stage)
    except BaseException as error:  # Ctrl-C too: never leave a half-deployed app listening
        held = rules.set_enabled(stage, enabled=False)
        created = _functions(stage)
        guard = (f"rule {', '.join(held)} is disabled, so no finding reaches a half-deployed app"
                 if held else "no rule exists yet, so no finding reaches it")
        raise DeployError(
            f"the app's deployment failed ({' '.join(str(error).split())}). In place: the "
            f"resources stack and {len(created)} function(s) ({', '.join(created) or '-'}); "
            f"{guard}. "
            f"Rerun `make deploy STAGE={stage}` to finish: Chalice updates what exists") from None
    say(f"rules enabled: {', '.join(rules.set_enabled(stage, enabled=True)) or 'none'}")
    factory.create_deployment_reporter(ui=ui).display_report(deployed)
    return deployed


def delete(project_dir: str, stage: str) -> None:
    """`chalice delete --stage`, from the clone that deployed the app: another clone has no
    record of what it created, so it only disables the rule and refuses."""
    if os.path.exists(os.path.join(project_dir, ".chalice", "deployed", f"{stage}.json")):
        factory, config, session, ui = _chalice(project_dir, stage)
        say(f"deleting the app (Chalice) of stage {stage}")
        factory.create_deletion_deployer(session=session, ui=ui).deploy(
            config, chalice_stage_name=stage)
    elif _functions(stage):
        held = rules.set_enabled(stage, enabled=False)
        raise DeployError(
            f"functions of stage {stage} exist ({', '.join(_functions(stage))}) but this "
            f"project has no record of deploying them (.chalice/deployed/{stage}.json); "
            f"rule(s) disabled: {', '.join(held) or 'none'}. Run the destroy from the clone "
            "that deployed them. Nothing else was deleted")
    else:
        say(f"no app deployed for stage {stage}: nothing to delete")
