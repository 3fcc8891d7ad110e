"""docker-compose.yml (no Docker engine on these machines): every service command names a real
module and every PB_* variable it sets is a real setting of that service."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest
import yaml

from libs.common.settings import BaseServiceSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
APP_SERVICES = {name: svc for name, svc in COMPOSE["services"].items()
                if name != "redis" and "observability" not in svc.get("profiles", [])}  # not prometheus/grafana


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
    assert set(APP_SERVICES) == {"venue_sim", "md_gateway", "user_feed", "scheduler", "signal_ingest", "maker_worker",
                                 "alerter"}
    assert APP_SERVICES["venue_sim"]["profiles"] == ["paper"]
    worker = APP_SERVICES["maker_worker"]
    assert "container_name" not in worker and "ports" not in worker, "maker_worker must scale with --scale"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_command_names_a_real_module(name: str) -> None:
    module = module_of(APP_SERVICES[name])
    assert module == f"services.{name}"
    assert importlib.util.find_spec(f"{module}.__main__") is not None


ALL_FIELDS = {f for n in APP_SERVICES for f in settings_class(module_of(APP_SERVICES[n])).model_fields}


def interpolate(env: dict[str, str], shell: dict[str, str]) -> dict[str, str]:
    """Compose's ``${VAR:-default}`` with ``shell`` as the environment compose runs in."""
    def one(m: re.Match[str]) -> str:
        return shell.get(m.group(1)) or m.group(2)
    return {k: re.sub(r"\$\{(\w+):-([^}]*)\}", one, str(v)) for k, v in env.items()}


def load(name: str, shell: dict[str, str]) -> BaseServiceSettings:
    env = interpolate(APP_SERVICES[name]["environment"], shell)
    kwargs = {k[3:].lower(): v.replace("/app/", f"{REPO}/") for k, v in env.items()
              if v != ""}  # empty = unset (env_ignore_empty); the image's /app is the repository
    return settings_class(module_of(APP_SERVICES[name]))(**kwargs)


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_variable_is_a_real_setting(name: str) -> None:
    """The services share one environment block: each variable is a setting of some service (a typo
    is not), and each service loads from it in paper mode."""
    env = APP_SERVICES[name]["environment"]
    unknown = [k for k in env if not k.startswith("PB_") or k[3:].lower() not in ALL_FIELDS]
    assert unknown == [], f"{name}: variables that are no polyband setting: {unknown}"
    assert load(name, {}).mode == "paper"


LIVE = {"PB_MODE": "live", "PB_LIVE_CONFIRM": "true", "PB_PRIVATE_KEY": "0x" + "11" * 32,
        "PB_CLOB_URL": "https://clob.polymarket.com", "PB_DATA_API_URL": "https://data-api.polymarket.com",
        "PB_LEADERS": '[{"account": "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"}]'}


@pytest.mark.parametrize("name", sorted(set(APP_SERVICES) - {"venue_sim"}))
def test_live_mode_by_environment_alone(name: str) -> None:
    """``docker compose --env-file deploy/live.env up``: the same file, no edits, runs live."""
    s = load(name, LIVE)
    assert s.mode == "live"
    if "clob_url" in type(s).model_fields:
        assert s.clob_url == "https://clob.polymarket.com"


def test_redis_publishes_no_host_port_and_services_wait_for_the_venue_in_paper() -> None:
    assert "ports" not in COMPOSE["services"]["redis"]
    for name, svc in APP_SERVICES.items():
        if name == "venue_sim":
            continue
        dep = svc["depends_on"]["venue_sim"]
        assert dep == {"condition": "service_healthy", "required": False}, name
    assert "healthcheck" in APP_SERVICES["venue_sim"]


def test_live_env_example_names_only_real_settings() -> None:
    lines = [ln.split("=", 1)[0] for ln in (REPO / "deploy" / "live.env.example").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert {"PB_MODE", "PB_LIVE_CONFIRM", "PB_PRIVATE_KEY", "PB_LEADERS", "PB_CLOB_URL"} <= set(lines)
    assert [k for k in lines if k[3:].lower() not in ALL_FIELDS] == []
