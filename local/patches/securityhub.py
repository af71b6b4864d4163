"""Security Hub fidelity: custom actions, and findings updated as a customer updates them.

moto has BatchImportFindings and GetFindings only: CreateActionTarget, DescribeActionTargets,
DeleteActionTarget, BatchUpdateFindings and GetFindingHistory answer 404, and its CloudFormation cannot make an
`AWS::SecurityHub::ActionTarget`. AWS refuses each of them (InvalidAccessException) while Security
Hub is off in the account and region. BatchUpdateFindings sets what a customer may set (here the
workflow status and the note: the fields the product writes, each checked as AWS checks it) on
findings the hub holds, and reports the others as unprocessed; GetFindingHistory lists each
update, oldest first (what was changed, from what, to what); its requests carry the fields they
write as IAM's `securityhub:ASFFSyntaxPath/<field>` keys (local/patches/iam.py).
"""

import json
import re

WORKFLOW_STATUSES = ("NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED")
ACTION_ID = re.compile(r"\A[A-Za-z0-9]{1,20}\Z")
NOTE_TEXT, NOTE_BY = 512, 512  # Note.Text and Note.UpdatedBy bounds
MAX_IDENTIFIERS = 100
NOT_SUBSCRIBED = "Account {} is not subscribed to AWS Security Hub"
PATHS = {
    "{0}/actionTargets$": "create",
    "{0}/actionTargets/get$": "describe",
    "{0}/actionTargets/(?P<arn>.+)$": "delete",
    "{0}/findings/batchupdate$": "update",
    "{0}/findingHistory/get$": "history",
}


def _error(code: str, message: str):
    from moto.securityhub.exceptions import SecurityHubClientError

    return SecurityHubClientError(code, message)


def _subscribed(backend, operation: str) -> None:
    if not backend.enabled:
        raise _error("InvalidAccessException", NOT_SUBSCRIBED.format(backend.account_id)
                     + f" (in {backend.region_name}; {operation})")


def patch_security_hub():
    """Answer the four operations, and make the action targets a stack declares."""
    from moto.securityhub import urls
    from moto.securityhub.models import SecurityHubBackend
    from moto.securityhub.responses import SecurityHubResponse

    for path in PATHS:
        urls.url_paths.setdefault(path, SecurityHubResponse.dispatch)

    def action_targets(self) -> dict:
        return self.__dict__.setdefault("_action_targets", {})

    def create_action_target(self, name, description, action_id) -> str:
        _subscribed(self, "CreateActionTarget")
        if not isinstance(action_id, str) or not ACTION_ID.match(action_id):
            raise _error("InvalidInputException", "Id must be 1 to 20 letters and digits")
        if not isinstance(name, str) or not 1 <= len(name) <= 20:
            raise _error("InvalidInputException", "Name must be 1 to 20 characters")
        arn = f"arn:aws:securityhub:{self.region_name}:{self.account_id}:action/custom/{action_id}"
        if arn in action_targets(self):
            raise _error("ResourceConflictException", f"Action target {arn} already exists")
        action_targets(self)[arn] = {"ActionTargetArn": arn, "Name": name,
                                     "Description": description or ""}
        return arn

    def delete_action_target(self, arn) -> str:
        _subscribed(self, "DeleteActionTarget")
        if action_targets(self).pop(arn, None) is None:
            raise _error("ResourceNotFoundException", f"Action target {arn} not found")
        return arn

    def batch_update_findings(self, identifiers, workflow, note) -> dict:
        _subscribed(self, "BatchUpdateFindings")
        if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= MAX_IDENTIFIERS:
            raise _error("InvalidInputException",
                         f"FindingIdentifiers must hold 1 to {MAX_IDENTIFIERS} findings")
        status = (workflow or {}).get("Status")
        if workflow is not None and status not in WORKFLOW_STATUSES:
            raise _error("InvalidInputException", f"Workflow.Status {status!r} is not one of "
                         f"{', '.join(WORKFLOW_STATUSES)}")
        if note is not None and not (
                isinstance(note.get("Text"), str) and 1 <= len(note["Text"]) <= NOTE_TEXT
                and isinstance(note.get("UpdatedBy"), str)
                and 1 <= len(note["UpdatedBy"]) <= NOTE_BY):
            raise _error("InvalidInputException", "Note needs Text (1 to 512 characters) and "
                         "UpdatedBy (1 to 512)")
        held = {(f.data.get("Id"), f.data.get("ProductArn")): f for f in self.findings}
        processed, unprocessed = [], []
        for identifier in identifiers:
            key = (identifier.get("Id"), identifier.get("ProductArn"))
            finding = held.get(key)
            if finding is None:
                unprocessed.append({"FindingIdentifier": identifier,
                                    "ErrorCode": "FindingNotFound",
                                    "ErrorMessage": "Finding Not Found"})
                continue
            updates = []
            if workflow is not None:
                updates.append(("Workflow.Status", (finding.data.get("Workflow") or {}).get(
                    "Status", "NEW"), status))
                finding.data["Workflow"] = {"Status": status}
                finding.data["WorkflowState"] = status
            if note is not None:
                updates.append(("Note.Text", (finding.data.get("Note") or {}).get("Text", ""),
                                note["Text"]))
                finding.data["Note"] = {**note, "UpdatedAt": _now()}
            finding.__dict__.setdefault("history", []).append({
                "FindingIdentifier": identifier, "UpdateTime": _now(), "FindingCreated": False,
                "UpdateSource": {"Type": "BATCH_UPDATE_FINDINGS", "Identity": self.account_id},
                "Updates": [{"UpdatedField": field, "OldValue": old, "NewValue": new}
                            for field, old, new in updates]})
            processed.append(identifier)
        return {"ProcessedFindings": processed, "UnprocessedFindings": unprocessed}

    SecurityHubBackend.create_action_target = create_action_target
    SecurityHubBackend.delete_action_target = delete_action_target
    SecurityHubBackend.action_targets = property(action_targets)
    SecurityHubBackend.batch_update_findings = batch_update_findings

    def finding_history(self, identifier) -> list:
        _subscribed(self, "GetFindingHistory")
        key = ((identifier or {}).get("Id"), (identifier or {}).get("ProductArn"))
        for finding in self.findings:
            if (finding.data.get("Id"), finding.data.get("ProductArn")) == key:
                return list(finding.__dict__.get("history", []))
        raise _error("InvalidInputException", "Finding not found")

    SecurityHubBackend.finding_history = finding_history

    def _body(self) -> dict:
        raw = self.body.decode() if isinstance(self.body, bytes) else (self.body or "{}")
        return json.loads(raw or "{}")

    def create_action_target_response(self):
        body = _body(self)
        return json.dumps({"ActionTargetArn": self.securityhub_backend.create_action_target(
            body.get("Name"), body.get("Description"), body.get("Id"))})

    def describe_action_targets_response(self):
        wanted = _body(self).get("ActionTargetArns")
        held = self.securityhub_backend.action_targets
        return json.dumps({"ActionTargets": [t for arn, t in held.items()
                                             if not wanted or arn in wanted]})

    def delete_action_target_response(self):
        from urllib.parse import unquote

        arn = unquote(self.path.split("/actionTargets/", 1)[1])
        return json.dumps({"ActionTargetArn": self.securityhub_backend.delete_action_target(
            arn)})

    def batch_update_findings_response(self):
        body = _body(self)
        return json.dumps(self.securityhub_backend.batch_update_findings(
            body.get("FindingIdentifiers"), body.get("Workflow"), body.get("Note")))

    SecurityHubResponse.create_action_target = create_action_target_response
    SecurityHubResponse.describe_action_targets = describe_action_targets_response
    SecurityHubResponse.delete_action_target = delete_action_target_response
    SecurityHubResponse.batch_update_findings = batch_update_findings_response

    def get_finding_history_response(self):
        return json.dumps({"Records": self.securityhub_backend.finding_history(
            _body(self).get("FindingIdentifier"))})

    SecurityHubResponse.get_finding_history = get_finding_history_response
    _action_target_resource()


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _action_target_resource() -> None:
    """`AWS::SecurityHub::ActionTarget` in a stack: CreateActionTarget (Ref: its ARN), deleted
    with the stack."""
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel
    from moto.securityhub.models import securityhub_backends

    if "AWS::SecurityHub::ActionTarget" in parsing.get_model_map():
        return

    class ActionTarget(CloudFormationModel):
        def __init__(self, arn: str):
            self.arn = arn

        @property
        def physical_resource_id(self) -> str:
            return self.arn

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SecurityHub::ActionTarget"

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                            region_name, **kwargs):
            properties = cloudformation_json["Properties"]
            return cls(securityhub_backends[account_id][region_name].create_action_target(
                properties.get("Name"), properties.get("Description"), properties.get("Id")))

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json,
                                            account_id, region_name):
            backend = securityhub_backends[account_id][region_name]
            backend.action_targets.pop(resource_name, None)

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    assert parsing.get_model_map()["AWS::SecurityHub::ActionTarget"] is ActionTarget
