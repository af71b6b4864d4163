"""Every action class has its tests here: a new action without them fails this test."""

import importlib
import inspect
import pkgutil

import chalicelib.actions as package
from chalicelib.actions import Action
from tests.unit.actions import (test_cut, test_evidence, test_instance, test_isolation,
                                test_memory, test_traffic)

TESTED = (test_cut, test_evidence, test_instance, test_isolation, test_memory, test_traffic)


def _action_classes():
    """Every action class of chalicelib/actions/ that can act (the abstract ones have no name)."""
    found = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found |= {cls for _, cls in inspect.getmembers(module, inspect.isclass)
                  if issubclass(cls, Action) and cls.__module__ == module.__name__
                  and cls.name != Action.name}
    return found


def test_every_action_class_is_tested():
    covered = {cls for module in TESTED for cls in module.COVERS}
    missing = sorted(cls.__name__ for cls in _action_classes() - covered)
    assert not missing, f"action classes without tests in tests/unit/actions: {missing}"
    assert covered == _action_classes()  # 21 today, across the six modules
