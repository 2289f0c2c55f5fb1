"""docker-compose.yml and its proxy config agree with the service's settings (Docker need not run here)."""

import re
from pathlib import Path

import yaml

from service.config import SETTINGS, load_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
APP_SERVICES = ["migrate", "api-1", "api-2", "worker"]
VARIABLES = {variable for variable, _default, _parse in SETTINGS.values()}


def test_the_stack_has_postgres_redis_two_apis_behind_a_proxy_and_two_workers():
    assert {"postgres", "redis", "migrate", "api-1", "api-2", "proxy", "worker"} <= set(SERVICES)
    assert SERVICES["worker"]["deploy"]["replicas"] == 2
    for api in ("api-1", "api-2"):
        assert "gunicorn" in SERVICES[api]["command"]
        assert SERVICES[api]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["restart"] == "no"
    assert set(SERVICES["proxy"]["depends_on"]) == {"api-1", "api-2"}


def test_every_variable_is_a_setting_and_every_setting_parses():
    for name in APP_SERVICES:
        environment = SERVICES[name]["environment"]
        assert set(environment) <= VARIABLES, f"{name}: not settings: {set(environment) - VARIABLES}"
        config = load_config({key: str(value) for key, value in environment.items()})
        assert config["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in config["DATABASE_URL"]
        assert config["RATELIMIT_STORAGE_URI"].startswith("redis://redis:")
        assert config["LOG_FORMAT"] == "json"
    assert SERVICES["worker"]["environment"]["EXPORTCTL_WORKER_METRICS_PORT"]


def test_the_proxy_sends_to_both_apis_on_the_port_they_serve():
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    port = load_config({})["PORT"]
    assert set(re.findall(r"server (api-\d):(\d+)", conf)) == {("api-1", str(port)), ("api-2", str(port))}
    [volume] = SERVICES["proxy"]["volumes"]
    assert volume.startswith("./deploy/nginx.conf:")
    listen = re.search(r"listen (\d+);", conf).group(1)
    assert SERVICES["proxy"]["ports"][0].endswith(f":{listen}")
    assert "HOST=0.0.0.0" in (ROOT / "Dockerfile").read_text(encoding="utf-8")
