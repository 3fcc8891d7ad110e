"""docker-compose.yml (no Docker engine on these machines): every service command names a real
module and every PB_* variable it sets is a real setting of that service."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path

import pytest
import yaml

from libs.common.settings import BaseServiceSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
APP_SERVICES = {name: svc for name, svc in COMPOSE["services"].items() if name != "redis"}


def settings_class(module: str) -> type[BaseServiceSettings]:
    """The BaseServiceSettings subclass defined in ``<module>.config``."""
    config = importlib.import_module(f"{module}.config")
    classes = [c for _, c in inspect.getmembers(config, inspect.isclass)
               if issubclass(c, BaseServiceSettings) and c is not BaseServiceSettings and c.__module__ == config.__name__]
    assert len(classes) == 1, f"{module}.config should define exactly one settings class: {classes}"
    return classes[0]


def module_of(svc: dict) -> str:
    cmd = svc["command"]
    assert cmd[:2] == ["python", "-m"], cmd
    return cmd[2]


def test_the_five_services_and_the_venue_are_there() -> None:
    assert set(APP_SERVICES) == {"venue_sim", "md_gateway", "user_feed", "scheduler", "signal_ingest", "maker_worker"}
    assert APP_SERVICES["venue_sim"]["profiles"] == ["paper"]
    worker = APP_SERVICES["maker_worker"]
    assert "container_name" not in worker and "ports" not in worker, "maker_worker must scale with --scale"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_command_names_a_real_module(name: str) -> None:
    module = module_of(APP_SERVICES[name])
    assert module == f"services.{name}"
    assert importlib.util.find_spec(f"{module}.__main__") is not None


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_variable_is_a_real_setting(name: str) -> None:
    fields = set(settings_class(module_of(APP_SERVICES[name])).model_fields)
    env = APP_SERVICES[name]["environment"]
    unknown = [k for k in env if not k.startswith("PB_") or k[3:].lower() not in fields]
    assert unknown == [], f"{name}: variables that are no setting of the service: {unknown}"
    settings_class(module_of(APP_SERVICES[name]))(**{k[3:].lower(): v for k, v in env.items()})
