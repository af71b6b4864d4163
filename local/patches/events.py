"""EventBridge fidelity: the envelope's `account`, and Lambda targets invoked."""

import copy
from datetime import datetime, timezone

from local.patches import wiring


def patch_event_envelope():
    """moto's default target input drops the envelope's `account`, which Chalice's event parsing
    (and every consumer of the EventBridge envelope) requires."""
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"version": "0",', '"version": "0", "account": "<account>",'
        )


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
        if lambda_targets and bridge is not None and self.event_pattern.matches_event(original_event):
            for target in lambda_targets:
                transformer = target.get("InputTransformer", {})
                event = EventTemplateParser.parse(
                    input_template=transformer.get("InputTemplate"),
                    input_paths_map=transformer.get("InputPathsMap", {}),
                    event=original_event,
                )
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
