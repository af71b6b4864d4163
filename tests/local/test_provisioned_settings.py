"""The embedded AWS's provisioning exports exactly the settings a deployment fills."""

from chalicelib import settings


def test_provisioning_exports_exactly_the_settings_declared_as_deployed(stack):
    assert set(stack.names) == set(settings.DEPLOYED)
    assert all(getattr(settings.get(), name.lower()) == value
               for name, value in stack.names.items())
