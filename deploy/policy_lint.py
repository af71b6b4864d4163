"""Two IAM linters on every policy the product deploys (build time only: not packaged):
parliament with its community auditors (privilege escalation, permissions management,
credentials exposure...), and cloudsplaining flagging statements scoped to resource ARNs too
(its default mode trusts any ARN, `role/*` included). Each finding is fixed or suppressed, with
its reason, in `deploy/policy-lint-suppressions.json`; a suppression that no longer matches is
stale and fails like a finding, so the file lists exactly what is accepted and why.

Both run in-process on the installed packages and their bundled IAM data (no network).
`python -m deploy.policy_lint` prints the findings, unsuppressed first, and the stale
suppressions; it exits 1 if there is any of either. tests/deploy/test_policy_lint.py runs the
same in `make test`.
"""

import fnmatch
import functools
import json
import os
import re
import sys
from dataclasses import dataclass

from deploy import guardrails, permissions, resources

SUPPRESSIONS_FILE = os.path.join(os.path.dirname(__file__), "policy-lint-suppressions.json")
LINTERS = ("parliament", "cloudsplaining")
# The state machine role's template names its resources with these; the linters read ARNs.
PSEUDO_PARAMETERS = {"AWS::Region": "us-east-1", "AWS::AccountId": "111122223333",
                     "AWS::Partition": "aws"}


def _named(name: str, profile: str) -> str:
    """A policy's name under a settings profile (the stage's own: no suffix)."""
    return name if profile == "settings" else f"{name}/{profile}"


def member_role_policies():
    """Each function's member role per stage, under each settings profile."""
    for stage in permissions.STAGES:
        for profile, current in permissions.profiles(stage).items():
            for role in permissions.member_roles(stage, current):
                yield _named(f"member-role/{stage}-{role.function}", profile), role.policy


def state_machine_policy(stage: str) -> dict:
    """The state machine role's policy as the resources stack deploys it."""
    role = resources.template(stage)["Resources"]["StateMachineRole"]["Properties"]
    return _resolved(role["Policies"][0]["PolicyDocument"])


def policies() -> dict[str, dict]:
    """Every generated policy by name: `<stage>/<function>`, `<stage>/state-machine`, the member
    role's, the guardrails SCP's."""
    found = {_named(f"{stage}/{function}", profile): permissions.policy(stage, function, current)
             for stage in permissions.STAGES
             for profile, current in permissions.profiles(stage).items()
             for function in permissions.needs(current)}
    found.update({f"{stage}/state-machine": state_machine_policy(stage)
                  for stage in permissions.STAGES})
    found.update(member_role_policies())
    found["guardrails-scp"] = guardrails.policy()
    return found


def _resolved(value):
    """A template value with `Fn::Sub` on pseudo parameters substituted; any other intrinsic
    stops the lint rather than reach the linters unread."""
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    if not isinstance(value, dict):
        return value
    if list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for name, example in PSEUDO_PARAMETERS.items():
            text = text.replace("${%s}" % name, example)
        if "${" in text:
            raise ValueError(f"cannot lint {value}: only pseudo parameters are substituted")
        return text
    if any(key == "Ref" or key.startswith("Fn::") for key in value):
        raise ValueError(f"cannot lint {value}: an intrinsic function")
    return {key: _resolved(item) for key, item in value.items()}


@dataclass(frozen=True)
class Finding:
    """One linter's finding on one policy: one action, or the combination a privilege
    escalation needs; `resources` are where the policy allows those actions."""

    linter: str
    policy: str
    finding: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    detail: str = ""

    def __str__(self) -> str:
        where = f" on {', '.join(self.resources)}" if self.resources else ""
        detail = f" ({self.detail})" if self.detail else ""
        return (f"{self.linter} {self.policy} {self.finding}: "
                f"{', '.join(self.actions) or '-'}{where}{detail}")


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _finding(linter, name, document, issue, actions, detail="") -> Finding:
    """The record, its actions spelled as the policy spells them (linters lowercase some)."""
    allows = [s for s in document["Statement"] if s.get("Effect") == "Allow"]
    spelled = {a.lower(): a for s in allows for a in _listed(s.get("Action", []))}
    actions = tuple(spelled.get(a.lower(), a) for a in actions)
    where = sorted({r for s in allows for r in _listed(s.get("Resource", []))
                    if isinstance(r, str) and any(
                        fnmatch.fnmatchcase(a.lower(), granted.lower())
                        for a in actions for granted in _listed(s.get("Action", [])))})
    return Finding(linter, name, issue, actions, tuple(where), str(detail))


@functools.cache
def _parliament():
    """parliament with the community auditors' settings, as its CLI's flag loads them."""
    import parliament

    parliament.override_config(os.path.join(os.path.dirname(parliament.__file__),
                                            "community_auditors", "config_override.yaml"))
    return parliament


# Actions AWS has that parliament's action list (1.6.4) lacks. It reads each as UNKNOWN_ACTION,
# naming no action (never suppressible), and then skips its community auditors on the whole
# policy; so they are left out of what parliament reads, once botocore's service model shows
# each is a real operation (tests/deploy/test_policy_lint.py). cloudsplaining reads them.
NEWER_THAN_PARLIAMENT = ("guardduty:GetMalwareScan", "guardduty:ListMalwareScans")


def for_parliament(document: dict) -> dict:
    """`document` without NEWER_THAN_PARLIAMENT (a statement left with no action dropped)."""
    statements = []
    for statement in document["Statement"]:
        listed = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]
        kept = [a for a in listed if a not in NEWER_THAN_PARLIAMENT]
        if kept:
            statements.append({**statement, "Action": kept})
    return {**document, "Statement": statements}


def parliament_findings(name: str, document: dict) -> list[Finding]:
    """`parliament --include-community-auditors`, at its CLI's default minimum severity (LOW)."""
    from parliament.cli import is_finding_filtered

    parliament = _parliament()
    analyzed = parliament.analyze_policy_string(json.dumps(for_parliament(document)),
                                                include_community_auditors=True,
                                                config=parliament.config)
    found = []
    for finding in analyzed.findings:
        finding = parliament.enhance_finding(finding)
        if is_finding_filtered(finding):
            continue
        location, detail = finding.location, finding.detail
        if "type" in location:  # an escalation: a combination of actions
            found.append(_finding("parliament", name, document, finding.issue,
                                  location["actions"], location["type"]))
            continue
        if "actions" in location:
            per_action = {action: "" for action in location["actions"]}
        elif isinstance(detail, list):  # actions, or {action, required_format} (a mismatch)
            per_action = {}
            for item in detail:
                if isinstance(item, dict):
                    wanted = per_action.get(item["action"], "requires")
                    per_action[item["action"]] = f"{wanted} {item['required_format']}"
                else:
                    per_action[item] = ""
        elif match := re.fullmatch(r"Unknown condition (\S+) for action (\S+)", str(detail)):
            per_action = {match.group(2): match.group(1)}
        else:
            per_action = {}
        if not per_action:  # names no action (a malformed policy...): to fix, never suppressed
            found.append(_finding("parliament", name, document, finding.issue, (),
                                  f"{detail} {location}".strip()))
        found.extend(_finding("parliament", name, document, finding.issue, (action,), extra)
                     for action, extra in per_action.items())
    return found


# cloudsplaining's two switches (its CLI's -aR sets both). ARN-scoped statements are flagged:
# `role/*` is an ARN. Conditioned statements are not: a condition is how IAM scopes what ARNs
# cannot, and parliament still reads every granted action whatever its condition.
CLOUDSPLAINING_MODE = {"flag_resource_arn_statements": True, "flag_conditional_statements": False}


def cloudsplaining_findings(name: str, document: dict) -> list[Finding]:
    """`cloudsplaining scan-policy-file` with its default exclusions, in CLOUDSPLAINING_MODE."""
    from cloudsplaining.command.scan_policy_file import scan_policy
    from cloudsplaining.shared.constants import DEFAULT_EXCLUSIONS_CONFIG

    results = scan_policy(document, DEFAULT_EXCLUSIONS_CONFIG, **CLOUDSPLAINING_MODE)
    found = []
    for risk, result in results.items():
        if risk == "ServicesAffected":  # a summary of the others, not a finding
            continue
        for item in result["findings"]:
            if isinstance(item, dict):  # an escalation: a combination of actions
                found.append(_finding("cloudsplaining", name, document, risk,
                                      item["actions"], item["type"]))
            elif risk == "ServiceWildcard":  # names a service
                found.append(_finding("cloudsplaining", name, document, risk, (f"{item}:*",)))
            else:
                found.append(_finding("cloudsplaining", name, document, risk, (item,)))
    return found


def lint(documents: dict[str, dict] | None = None) -> list[Finding]:
    """Both linters' findings on `documents` (by default every generated policy)."""
    documents = policies() if documents is None else documents
    found = [finding for name, document in documents.items()
             for finding in (*parliament_findings(name, document),
                             *cloudsplaining_findings(name, document))]
    return list(dict.fromkeys(found))  # cloudsplaining repeats an action found in two statements


@dataclass(frozen=True)
class Suppression:
    """Accepts a linter's finding on the policies matching a pattern, for the listed actions
    granted on resources matching the listed patterns: a finding is covered when all its actions
    are listed and all its resources match, so the same action granted wider is a new finding
    (the linters name actions, not where they are granted)."""

    linter: str
    finding: str
    policies: tuple[str, ...]
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    reason: str

    def covers(self, finding: Finding) -> bool:
        return (finding.linter == self.linter and finding.finding == self.finding
                and bool(finding.actions)
                and any(fnmatch.fnmatchcase(finding.policy, p) for p in self.policies)
                and {a.lower() for a in finding.actions} <= {a.lower() for a in self.actions}
                and all(any(fnmatch.fnmatchcase(r, p) for p in self.resources)
                        for r in finding.resources))

    def __str__(self) -> str:
        return (f"{self.linter} {self.finding} on {', '.join(self.policies)}: "
                f"{', '.join(self.actions)}")


def load_suppressions(path: str = SUPPRESSIONS_FILE) -> list[Suppression]:
    """The suppressions file, every entry complete and with a reason, or ValueError."""
    with open(path) as handle:
        content = json.load(handle)
    if set(content) != {"about", "suppressions"}:
        raise ValueError(f"{path}: keys must be 'about' and 'suppressions'")
    fields = {"linter", "finding", "policies", "actions", "resources", "reason"}
    loaded = []
    for number, entry in enumerate(content["suppressions"], 1):
        if set(entry) != fields:
            raise ValueError(f"{path}: suppression {number} must have exactly {sorted(fields)}")
        if entry["linter"] not in LINTERS:
            raise ValueError(f"{path}: suppression {number}: linter is one of {LINTERS}")
        for key in ("finding", "reason"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise ValueError(f"{path}: suppression {number}: {key} is empty")
        for key in ("policies", "actions", "resources"):
            if (not isinstance(entry[key], list) or not entry[key]
                    or not all(isinstance(v, str) and v for v in entry[key])):
                raise ValueError(f"{path}: suppression {number}: {key} is a non-empty list")
        loaded.append(Suppression(entry["linter"], entry["finding"], tuple(entry["policies"]),
                                  tuple(entry["actions"]), tuple(entry["resources"]),
                                  entry["reason"]))
    return loaded


@dataclass
class Verdict:
    unsuppressed: list[Finding]
    suppressed: list[tuple[Finding, Suppression]]
    stale: list[str]  # a suppression, or one of its actions or patterns, that matches nothing

    @property
    def clean(self) -> bool:
        return not self.unsuppressed and not self.stale


def judge(findings: list[Finding], suppressions: list[Suppression]) -> Verdict:
    """Each finding covered by the first suppression that covers it, or left unsuppressed; a
    suppression, action or pattern credited by no finding is stale."""
    verdict = Verdict([], [], [])
    credited = {s: [] for s in suppressions}
    for finding in findings:
        suppression = next((s for s in suppressions if s.covers(finding)), None)
        if suppression is None:
            verdict.unsuppressed.append(finding)
        else:
            verdict.suppressed.append((finding, suppression))
            credited[suppression].append(finding)
    for suppression, covered in credited.items():
        if not covered:
            verdict.stale.append(f"{suppression}: matches no finding")
            continue
        used = {a.lower() for f in covered for a in f.actions}
        verdict.stale.extend(f"{suppression}: {action} is in no finding"
                             for action in suppression.actions if action.lower() not in used)
        verdict.stale.extend(
            f"{suppression}: {pattern} names no policy with this finding"
            for pattern in suppression.policies
            if not any(fnmatch.fnmatchcase(f.policy, pattern) for f in covered))
        verdict.stale.extend(
            f"{suppression}: {pattern} matches no resource of this finding"
            for pattern in suppression.resources
            if not any(fnmatch.fnmatchcase(r, pattern) for f in covered for r in f.resources))
    return verdict


def main() -> int:
    verdict = judge(lint(), load_suppressions())
    for finding in verdict.unsuppressed:
        print(f"UNSUPPRESSED {finding}")
    for stale in verdict.stale:
        print(f"STALE SUPPRESSION {stale}")
    for finding, suppression in verdict.suppressed:
        print(f"suppressed {finding}: {suppression.reason}")
    print(f"{len(verdict.unsuppressed)} unsuppressed, {len(verdict.stale)} stale, "
          f"{len(verdict.suppressed)} suppressed ({SUPPRESSIONS_FILE})")
    return 0 if verdict.clean else 1


if __name__ == "__main__":
    sys.exit(main())
