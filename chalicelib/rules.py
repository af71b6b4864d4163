"""Response rules: what the automatic path does with a finding — contain, ask for approval,
notify or ignore — by severity, type, account, region, the instance's role in the finding and
its tags. `RESPONSE_RULES` (chalicelib/settings.py) is an ordered list; the first rule that
matches decides. Without rules, today's policy decides (contain at `SEVERITY_THRESHOLD`).

A tag is written by whoever may tag the instance, the host it describes among them: a rule that
matches on tags can only make the response stronger, never weaker, than the first rule without
tag conditions would make it (`decide`). Everything else a rule reads comes from GuardDuty.
"""

import json
from dataclasses import dataclass

# Weakest first: a mode's strength is its place here.
MODES = ("ignore", "notify", "approve", "contain")
ON_TIMEOUT = ("contain", "close")
ROLES = ("ACTOR", "TARGET")
MAX_RULES = 50
MAX_NAME = 64
MAX_LIST = 50
MAX_TEXT = 128
FIELDS = {"name", "mode", "on_timeout", "severity_at_least", "severity_below", "type_prefixes",
          "accounts", "regions", "resource_roles", "tags"}


class RuleError(ValueError):
    """`RESPONSE_RULES` says something the product cannot act on."""


@dataclass(frozen=True)
class Rule:
    name: str
    mode: str
    on_timeout: str = ""  # approve only: what happens when nobody decides in time
    severity_at_least: float = 0.0
    severity_below: float = 11.0  # above any severity: no upper bound
    type_prefixes: tuple[str, ...] = ()  # empty: every type
    accounts: tuple[str, ...] = ()  # empty: every account
    regions: tuple[str, ...] = ()  # empty: every region
    resource_roles: tuple[str, ...] = ("ACTOR",)  # a TARGET is acted on only when named
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()  # every key present with a listed value


@dataclass(frozen=True)
class Decision:
    """What the rules decided for one finding, and why, in words for the log and the notice."""

    mode: str
    rule: str  # the deciding rule's name ("" when none matched)
    reason: str
    on_timeout: str = ""
    needs_tags: bool = False  # decided without the instance's tags, which may change it

    def shown(self) -> dict:
        return {"mode": self.mode, "rule": self.rule, "reason": self.reason,
                **({"on_timeout": self.on_timeout} if self.on_timeout else {})}


CONTAIN = Decision("contain", "", "no response rules: contained at SEVERITY_THRESHOLD")


# -- the language -----------------------------------------------------------------------------

def parse(raw: str, account_id, region) -> tuple[Rule, ...]:
    """The rules `raw` (JSON) says, every field checked; `account_id` and `region` are the
    patterns of an account id and a region name. Empty: no rules."""
    if not raw.strip():
        return ()
    try:
        listed = json.loads(raw, parse_constant=_no_constant)
    except ValueError as error:
        raise RuleError(f"is not JSON: {error}") from None
    if not isinstance(listed, list) or not listed:
        raise RuleError("must be a non-empty JSON list of rules (or empty: no rules)")
    if len(listed) > MAX_RULES:
        raise RuleError(f"has {len(listed)} rules, more than {MAX_RULES}")
    rules = tuple(_rule(n, given, account_id, region) for n, given in enumerate(listed, 1))
    names = [rule.name for rule in rules]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RuleError(f"names {repeated} more than once: each rule's name is its own")
    return rules


def _no_constant(name):
    raise ValueError(f"{name} is not a number")


def _rule(number: int, given, account_id, region) -> Rule:
    where = f"rule {number}"
    if not isinstance(given, dict):
        raise RuleError(f"{where} is not an object")
    unknown = sorted(set(given) - FIELDS)
    if unknown:
        raise RuleError(f"{where} has unknown fields {unknown} (known: {sorted(FIELDS)})")
    name = given.get("name", f"rule-{number}")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not name.isprintable():
        raise RuleError(f"{where}: name must be 1..{MAX_NAME} printable characters")
    where = f"rule {number} ({name})"
    mode = given.get("mode")
    if mode not in MODES:
        raise RuleError(f"{where}: mode must be one of {', '.join(MODES)}, not {mode!r}")
    on_timeout = given.get("on_timeout", "")
    if mode == "approve" and on_timeout not in ON_TIMEOUT:
        raise RuleError(f"{where}: an approve rule needs on_timeout, one of "
                        f"{', '.join(ON_TIMEOUT)} (what happens when nobody decides in time)")
    if mode != "approve" and on_timeout:
        raise RuleError(f"{where}: on_timeout is for approve rules only")
    low = _severity(given, "severity_at_least", 0.0, where)
    high = _severity(given, "severity_below", 11.0, where)
    if low >= high:
        raise RuleError(f"{where}: severity_at_least {low:g} is not below severity_below "
                        f"{high:g}: the rule would match nothing")
    roles = _texts(given, "resource_roles", where) or ("ACTOR",)
    if set(roles) - set(ROLES):
        raise RuleError(f"{where}: resource_roles must be among {', '.join(ROLES)}")
    accounts = _texts(given, "accounts", where)
    if not all(account_id.match(a) for a in accounts):
        raise RuleError(f"{where}: accounts must be 12-digit account ids")
    regions = _texts(given, "regions", where)
    if not all(region.match(r) for r in regions):
        raise RuleError(f"{where}: regions must be region names (us-east-1)")
    return Rule(name, mode, on_timeout, low, high, _texts(given, "type_prefixes", where),
                accounts, regions, roles, _tags(given, where))


def _severity(given: dict, key: str, default: float, where: str) -> float:
    value = given.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 11:
        raise RuleError(f"{where}: {key} must be a number from 0 to 10")
    return float(value)


def _texts(given: dict, key: str, where: str) -> tuple[str, ...]:
    value = given.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_LIST or not all(
            isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in value):
        raise RuleError(f"{where}: {key} must be a list of at most {MAX_LIST} non-empty strings "
                        f"of at most {MAX_TEXT} characters")
    return tuple(value)


def _tags(given: dict, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    value = given.get("tags", {})
    if not isinstance(value, dict) or len(value) > MAX_LIST:
        raise RuleError(f"{where}: tags must be an object of at most {MAX_LIST} tag keys")
    found = []
    for key, wanted in value.items():
        listed = [wanted] if isinstance(wanted, str) else wanted
        if not 0 < len(key) <= MAX_TEXT or not isinstance(listed, list) or not listed or not all(
                isinstance(v, str) and len(v) <= MAX_TEXT for v in listed):
            raise RuleError(f"{where}: tag {key[:MAX_TEXT]!r} must name a value or a list of "
                            "values")
        found.append((key, tuple(listed)))
    return tuple(found)


def needs_approvers(rules: tuple[Rule, ...]) -> list[str]:
    """The rules that ask for approval (they need someone in `APPROVER_ARNS`)."""
    return [rule.name for rule in rules if rule.mode == "approve"]


# -- deciding ---------------------------------------------------------------------------------

def _role(finding) -> str:
    """The instance's role in the finding: TARGET only when the finding is about the instance
    and says so (a credential exfiltration is about the access key, and says it was taken)."""
    return "TARGET" if finding.resource_type == "Instance" and \
        finding.resource_role == "TARGET" else "ACTOR"


def _matches_finding(rule: Rule, request) -> bool:
    finding = request.finding
    return (rule.severity_at_least <= finding.severity < rule.severity_below
            and (not rule.type_prefixes or finding.type.startswith(rule.type_prefixes))
            and (not rule.accounts or request.account_id in rule.accounts)
            and (not rule.regions or request.region in rule.regions)
            and _role(finding) in rule.resource_roles)


def _matches_tags(rule: Rule, tags: dict) -> bool:
    return all(tags.get(key) in wanted for key, wanted in rule.tags)


def _first(rules, request, tags: dict | None) -> tuple[Rule | None, bool]:
    """The first rule matching `request` (None: none), and whether it took tags the caller
    does not have yet (`tags` None): the answer may then change once they are read."""
    for rule in rules:
        if not _matches_finding(rule, request):
            continue
        if not rule.tags:
            return rule, False
        if tags is None:
            return rule, True
        if _matches_tags(rule, tags):
            return rule, False
    return None, False


def _strength(rule: Rule) -> tuple[int, int]:
    """How strong a rule's response is: its mode, then (approve) what its timeout does."""
    return MODES.index(rule.mode), ON_TIMEOUT[::-1].index(rule.on_timeout) if rule.on_timeout \
        else 0


def decide(rules: tuple[Rule, ...], request, tags: dict | None = None) -> Decision:
    """What `rules` say for the finding of `request`, its instance tagged `tags` (None: not
    read yet; the decision then says whether they are needed). A rule that matches on tags
    decides only when it is stronger than the first tagless rule that matches: the host may
    write its own tags, and no tag may weaken the response."""
    floor, _ = _first([r for r in rules if not r.tags], request, None)
    chosen, needs_tags = _first(rules, request, tags)
    if needs_tags:
        return Decision(chosen.mode, chosen.name, "to be decided with the instance's tags",
                        chosen.on_timeout, needs_tags=True)
    if chosen is not None and chosen.tags and floor is not None and \
            _strength(chosen) < _strength(floor):
        return Decision(floor.mode, floor.name,
                        f"rule {floor.name!r} ({floor.mode}); rule {chosen.name!r} matched the "
                        f"instance's tags and would say {chosen.mode}, but tags can only make "
                        "the response stronger (the host may write its own)", floor.on_timeout)
    if chosen is None:
        return Decision("ignore", "", "no response rule matches "
                        f"(severity {request.finding.severity:g}, type {request.finding.type}, "
                        f"account {request.account_id}, region {request.region}, "
                        f"{_role(request.finding)})")
    return Decision(chosen.mode, chosen.name, f"rule {chosen.name!r} ({chosen.mode})",
                    chosen.on_timeout)


def tags_of(instance: dict) -> dict:
    """The instance's tags (DescribeInstances' answer) as a mapping."""
    return {t.get("Key"): t.get("Value", "") for t in instance.get("Tags", [])}


# What each mode would have done, for a sample finding's notice.
WOULD = {"contain": "the instance would have been contained",
         "approve": "containment would have waited for an approver",
         "notify": "it would have been announced with the plan, nothing changed",
         "ignore": "it would have been ignored"}


METRIC_NAMESPACE = "ec2-quarantine"


def count_ignored(decision: Decision, request) -> None:
    """Count an ignored finding: one line in CloudWatch's embedded metric format, so the
    `FindingsIgnored` metric (by rule) comes from the log, with no call and no right."""
    import time

    print(json.dumps({
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": METRIC_NAMESPACE, "Dimensions": [["Rule"]],
            "Metrics": [{"Name": "FindingsIgnored", "Unit": "Count"}]}]},
        "Rule": decision.rule or "(none matched)", "FindingsIgnored": 1,
        "finding_id": request.finding.id, "instance_id": request.instance_id,
        "reason": decision.reason}), flush=True)
