"""What is derived from the settings' declarations is current, and nothing names a setting that
is not declared: the README's tables, config.json, the stack's outputs."""

import json
import os

from chalicelib import settings
from deploy import resources, settings_files

CONFIG = os.path.join(settings_files.PROJECT_DIR, settings_files.CONFIG)


def _config() -> dict:
    with open(CONFIG) as handle:
        return json.load(handle)


def test_readme_table_and_config_defaults_are_what_the_declarations_give():
    assert not settings_files.stale(), "stale settings files: run `make settings`"


def test_the_readme_lists_every_declared_setting():
    table = settings_files.table()
    assert all(f"| `{name}` |" in table for name in settings.DEFAULTS)


def test_every_environment_in_config_names_declared_settings_only_and_loads():
    config = _config()
    app_wide = config["environment_variables"]
    assert set(app_wide) <= set(settings.DEFAULTS)
    for stage, declared in config["stages"].items():
        environment = declared.get("environment_variables", {})
        assert set(environment) <= set(settings.DEFAULTS), stage
        settings.load({**app_wide, **environment})  # raises SettingsError for a bad value


def test_the_stack_fills_exactly_the_settings_declared_as_deployed():
    assert set(resources.SETTINGS_FROM_OUTPUTS.values()) == set(settings.DEPLOYED)


def test_an_edited_table_or_default_is_found_stale_and_rewritten(tmp_path):
    for name in (settings_files.README, settings_files.CONFIG):
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        with open(os.path.join(settings_files.PROJECT_DIR, name)) as source:
            text = source.read()
        (tmp_path / name).write_text(text.replace("| `DRY_RUN` | `false` |", "| `DRY_RUN` | `true` |")
                                     .replace('"DRY_RUN": "false"', '"DRY_RUN": "true"'))
    assert sorted(settings_files.stale(str(tmp_path))) == sorted(
        [settings_files.README, settings_files.CONFIG])
    settings_files.write(str(tmp_path))
    assert settings_files.stale(str(tmp_path)) == []
