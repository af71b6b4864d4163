"""EventBridge fidelity: the envelope's `account`, scheduled rules left out of event matching,
and Lambda targets invoked."""

import copy
import json
from datetime import datetime, timezone

from local.patches import wiring

ENVELOPE = ("version", "id", "detail-type", "source", "account", "time", "region", "resources",
            "detail")


def patch_event_envelope():
    """moto's default target input drops the envelope's `account`, which Chalice's event parsing
    (and every consumer of the EventBridge envelope) requires."""
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"version": "0",', '"version": "0", "account": "<account>",'
        )


def patch_scheduled_rules():
    """moto matches every event put on a bus against a scheduled rule too, whose missing pattern
    matches anything, so its targets received every event; AWS triggers a scheduled rule by its
    schedule alone (`local.schedule` fires them). And moto delivers to a disabled rule's
    targets: AWS delivers nothing to them."""
    from moto.events.models import Rule

    original = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        if matches(self, original_event):
            original(self, original_event, transform_input)

    Rule.send_to_targets = send_to_targets


def matches(rule, event) -> bool:
    """Whether `rule` takes `event`: by its pattern; never for a rule with a schedule only, nor
    for a disabled rule (moto delivers to disabled rules too; AWS does not)."""
    if rule.state != "ENABLED":
        return False
    if rule.scheduled_expression and not rule.event_pattern.get_pattern():
        return False
    return rule.event_pattern.matches_event(event)


def patch_lambda_targets():
    """moto's EventBridge delivers to SQS, logs and buses, not Lambda; AWS invokes a Lambda
    target asynchronously with the event. Deliver Lambda targets to the in-process bridge."""
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser
    from moto.utilities.arns import parse_arn

    original = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        bridge = wiring.bridge
        lambda_targets = [t for t in self.targets if parse_arn(t["Arn"]).service == "lambda"]
        if lambda_targets and bridge is not None and matches(self, original_event):
            for target in lambda_targets:
                transformer = target.get("InputTransformer")
                if transformer:
                    event = EventTemplateParser.parse(
                        input_template=transformer.get("InputTemplate"),
                        input_paths_map=transformer.get("InputPathsMap", {}),
                        event=original_event,
                    )
                else:  # the envelope itself: what moto's default template makes, without
                    #      building a JSONPath parser for each of its eight fields (13 ms)
                    event = json.loads(json.dumps({k: original_event[k] for k in ENVELOPE}))
                if isinstance(event.get("time"), (int, float)):
                    event["time"] = datetime.fromtimestamp(event["time"], timezone.utc).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    )
                bridge.invoke_async(target["Arn"], event, source="eventbridge")
        others = [t for t in self.targets if t not in lambda_targets]
        if others:
            rule = copy.copy(self)
            rule.targets = others
            original(rule, original_event, transform_input)

    Rule.send_to_targets = send_to_targets
