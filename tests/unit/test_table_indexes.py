"""The table's indexes reach the app's one per update (CloudFormation, like DynamoDB, creates or
deletes one global secondary index per table update), and its definition names exactly the keys
its indexes use (DynamoDB refuses any other attribute definition)."""

from chalicelib import incidents
from deploy import indexes

INSTANCE, TIME, STATUS, GROUP = incidents.GLOBAL_INDEXES


def _steps(current):
    steps = []
    while (current := indexes.next_step(current)) is not None:
        steps.append([index["IndexName"] for index in current])
    return steps


ALL = [incidents.INSTANCE_INDEX, incidents.TIME_INDEX, incidents.STATUS_INDEX,
       incidents.GROUP_INDEX]


def test_the_table_before_the_status_index_takes_a_step_for_it_and_one_for_the_group_index():
    assert _steps([INSTANCE, TIME]) == [ALL[:3], ALL]
    assert _steps([INSTANCE, TIME, STATUS]) == [ALL]


def test_each_missing_index_is_its_own_step_and_a_changed_one_goes_before_it_comes_back():
    assert _steps([]) == [ALL[:1], ALL[:2], ALL[:3], ALL]
    everything = {**STATUS, "Projection": {"ProjectionType": "ALL"}}
    assert [sorted(step) for step in _steps([INSTANCE, TIME, everything, GROUP])] == [
        sorted([incidents.INSTANCE_INDEX, incidents.TIME_INDEX, incidents.GROUP_INDEX]),
        sorted(ALL)]
    assert _steps(list(incidents.GLOBAL_INDEXES)) == []


def test_the_definition_names_the_keys_its_indexes_use_and_no_other():
    names = lambda definition: sorted(a["AttributeName"]  # noqa: E731
                                      for a in definition["AttributeDefinitions"])
    assert names(incidents.TABLE_DEFINITION) == [
        "group_id", "instance_key", "opened_at", "pk", "record_type", "status"]
    assert names(incidents.table_definition([INSTANCE])) == ["instance_key", "opened_at", "pk"]
    assert names(incidents.table_definition([])) == ["pk"]
