"""Hostile input: generated findings and HTTP bodies (wrong types, unknown and recased keys, huge
and unicode strings, deep nesting, injection strings) get a 4xx or a logged drop — never a 500,
never an unhandled exception, never a mutating AWS request."""

import copy
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from chalicelib import findings, http, workflow
from chalicelib.outcomes import Refusal
from local import recording
from tests.helpers import api, sample

HOME, REGION = "123456789012", "us-east-1"
INJECTIONS = ["'; DROP TABLE incidents; --", "$(reboot)", "{{7*7}}", "<script>x</script>",
              "../../etc/passwd", "\x00\x1b[31m", "i-0123456789abcdef0\n", "🦠" * 50,
              "A" * 5000, "${jndi:ldap://x}"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=50), st.sampled_from(INJECTIONS))
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=30)
FIELDS = list(http.QUARANTINE_FIELDS) + ["InstanceId", "extra", ""]
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


def _mutated_detail(draw_path, value):
    detail = copy.deepcopy(sample("backdoor-cc-activity-high.json")["detail"])
    node = detail
    for key in draw_path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node
    if isinstance(node, dict):
        node[draw_path[-1]] = value
    return detail


PATHS = [["severity"], ["type"], ["id"], ["accountId"], ["region"], ["title"],
         ["resource", "resourceType"], ["resource", "instanceDetails", "instanceId"],
         ["resource", "instanceDetails"], ["resource"], ["Severity"], ["Resource"]]


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.builds(_mutated_detail, st.sampled_from(PATHS), json_values)))
def test_any_finding_is_parsed_or_refused_with_a_reason(detail):
    try:
        request = findings.parse(detail)
    except findings.MalformedFinding as error:
        assert str(error)
        return
    assert findings.INSTANCE_ID.match(request.instance_id)
    assert findings.ACCOUNT_ID.match(request.account_id)


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_any_body_is_a_request_or_a_4xx(body):
    try:
        request = http.quarantine_request(body, HOME, REGION, "")
    except Refusal as refusal:
        assert 400 <= http.status_of(refusal) < 500 and refusal.message
        return
    assert findings.INSTANCE_ID.match(request.instance_id)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | st.just(b"[" * 5000 + b"]" * 5000) | st.just(b"{" + b'"a":1,' * 12000 + b'"b":2}'))
def test_any_raw_body_is_json_or_a_4xx(raw):
    try:
        http.parse_json_object(raw)
    except Refusal as refusal:
        assert http.status_of(refusal) in (400, 413)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(bodies, st.builds(lambda d: {"instance_id": "i-0123456789abcdef0",
                                                         "finding": d}, json_values)),
                min_size=5, max_size=5))
def test_hostile_requests_over_http_never_500_and_never_mutate(stack, batch):
    recording.start(stack)
    for body in batch:
        status, answer = api(stack, "POST", "/quarantine", body)
        assert status < 500 or answer["error"] in ("ServiceUnavailable", "NotConfigured"), answer
        assert set(answer) >= {"error", "message"} or status in (200, 202)
    recording.stop(stack)
    assert _mutations(stack) == []


def _mutations(stack):
    return [c.name for c in recording.calls(stack)
            if c.service in {"ec2", "autoscaling", "elasticloadbalancing", "iam", "ssm"}
            and not (c.action or "").startswith(("Describe", "Get", "List"))]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values, st.builds(_mutated_detail, st.sampled_from(PATHS), json_values)))
def test_the_handler_never_raises_on_a_generated_finding(stack, detail):
    recording.start(stack)
    decided = workflow.handle_finding(detail, HOME)
    recording.stop(stack)
    assert decided["decision"] in ("dropped", "refused")  # no such instance on this AWS
    json.dumps(decided)
    assert _mutations(stack) == []


def _recased(name):
    """Spellings of a field that are not the field (an unknown key)."""
    spellings = {name.upper(), name.title().replace("_", ""), name.replace("_", "-"),
                 name.replace("_", ""), name[0].upper() + name[1:], f" {name}"} - {name}
    return st.sampled_from(sorted(spellings))


def _nested(depth):
    value = "x"
    for _ in range(depth):
        value = {"a": [value]}
    return value


# One field of the body is always wrong; the rest look legitimate and target a real instance.
WRONG = st.one_of(
    st.builds(lambda v: {"reason": v}, st.one_of(st.integers(), st.lists(st.text()),
                                                 st.text(min_size=1025, max_size=1100),
                                                 st.just("🦠" * 1025))),
    st.builds(lambda v: {"dry_run": v}, st.one_of(st.text(), st.integers(), st.none())),
    st.builds(lambda v: {"force": v}, st.one_of(st.text(), st.integers(), st.just([True]))),
    st.builds(lambda v: {"region": v}, st.sampled_from(INJECTIONS + ["US-EAST-1", "mars-1"])),
    st.builds(lambda v: {"account_id": v}, st.sampled_from(INJECTIONS + ["12345678901", 1])),
    st.builds(lambda k, v: {k: v}, st.sampled_from(list(http.QUARANTINE_FIELDS)).flatmap(
        _recased), json_values),
    st.builds(lambda d: {"finding": _nested(d)}, st.integers(50, 400)),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(WRONG, st.sampled_from(INJECTIONS)), min_size=3, max_size=3))
def test_a_real_instance_is_never_touched_by_a_request_with_one_wrong_field(stack, batch):
    from tests.helpers import make_victim

    victim = make_victim(stack, interfaces=1, volumes=1)
    recording.start(stack)
    for wrong, reason in batch:
        body = {"instance_id": victim["instance_id"], "reason": reason, **wrong}
        status, answer = api(stack, "POST", "/quarantine", body)
        assert 400 <= status < 500, (body, status, answer)
        assert set(answer) == {"error", "message"} and answer["message"], answer
    recording.stop(stack)
    assert _mutations(stack) == []
