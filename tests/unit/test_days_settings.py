"""The day-close settings: read from the environment, bad values refused naming their variable."""

from __future__ import annotations

import pytest

from tally.config import ConfigError, Settings


def test_day_close_settings_come_from_the_environment() -> None:
    settings = Settings.from_env({"TALLY_DAY_CLOSE_AUTO": "true", "TALLY_DAY_CLOSE_GRACE_S": "0",
                                  "TALLY_DAY_CLOSE_INTERVAL_S": "5"})
    assert (settings.day_close_auto, settings.day_close_grace_s, settings.day_close_interval_s) == (True, 0, 5)
    defaults = Settings()
    assert (defaults.day_close_auto, defaults.day_close_grace_s, defaults.day_close_interval_s) == (False, 300, 60)


@pytest.mark.parametrize(("name", "value"), [
    ("TALLY_DAY_CLOSE_AUTO", "sometimes"), ("TALLY_DAY_CLOSE_GRACE_S", "-1"), ("TALLY_DAY_CLOSE_GRACE_S", "86401"),
    ("TALLY_DAY_CLOSE_INTERVAL_S", "0"),
])
def test_a_bad_day_close_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
