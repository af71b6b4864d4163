"""The EventBridge rules Chalice creates for the app's event handlers and schedules: disabled
while the app is half-deployed (no finding, tampering event or sweep reaches it), enabled once
it is whole."""

from deploy import names
from deploy.session import client


def _rules(stage: str) -> list[str]:
    import app as chalice_app

    return [names.rule(stage, source.name) for source in chalice_app.app.event_sources
            if hasattr(source, "event_pattern") or hasattr(source, "schedule_expression")]


def set_enabled(stage: str, enabled: bool) -> list[str]:
    """Enable or disable the stage's rules that exist; returns their names."""
    events, changed = client("events"), []
    existing = {rule["Name"] for rule in events.list_rules(
        NamePrefix=names.function(stage, ""))["Rules"]}
    for rule in _rules(stage):
        if rule in existing:
            (events.enable_rule if enabled else events.disable_rule)(Name=rule)
            changed.append(rule)
    return changed
