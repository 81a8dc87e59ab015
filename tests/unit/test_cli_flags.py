"""The daemons' flags come from their settings models: one flag per field, the field's help,
and the flag names that deploy files, tests and the local cluster use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import pytest
import typer
from pydantic_settings import BaseSettings
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from diststorage.cli.flags import flag_name, has_flag, settings_command
from diststorage.cli.main import app
from diststorage.core.settings import GatewaySettings, NodeSettings

S = TypeVar("S", bound=BaseSettings)

DAEMONS: list[tuple[str, type[BaseSettings]]] = [
    ("gateway", GatewaySettings),
    ("node", NodeSettings),
]

# Every flag a deploy file, the local cluster, a test or the README passes to a daemon.
GATEWAY_ARGS = [
    *("--listen", "0.0.0.0:7001", "--grpc-listen", "0.0.0.0:7002", "--data", "/data"),
    *("--metadata", "postgresql://u@h/db", "--redundancy", "ec:2+1", "--stripe-size", "65536"),
    *("--node-timeout", "3", "--node-suspect", "1", "--repair-grace", "2", "--gc-grace", "4"),
    *("--repair-rate", "1000", "--lease-ttl", "6", "--no-repair"),
]
NODE_ARGS = [
    *("--listen", "0.0.0.0:7101", "--advertise", "n0.nodes:7101", "--data", "/data"),
    *("--gateway", "g1:7002", "--gateway", "g2:7002", "--gateway-dns", "gws:7002"),
    *("--capacity", "1000", "--scrub-rate", "0", "--scrub-interval", "5"),
]


def options(name: str) -> dict[str, TyperOption]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.commands[name]
    return {
        str(param.name): param
        for param in command.params
        if isinstance(param, TyperOption) and param.name != "help"
    }


@pytest.mark.parametrize(("command", "model"), DAEMONS)
def test_every_setting_is_a_flag_and_every_flag_a_setting(
    command: str, model: type[BaseSettings]
) -> None:
    flags = options(command)
    flagged = {name: field for name, field in model.model_fields.items() if has_flag(field)}
    assert set(flags) == set(flagged)
    for name, field in flagged.items():
        assert f"--{flag_name(name, field)}" in flags[name].opts


@pytest.mark.parametrize(("command", "model"), DAEMONS)
def test_help_shows_every_field_description(command: str, model: type[BaseSettings]) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    # Rich wraps the help column inside a box: keep the words only.
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    for field in model.model_fields.values():
        if has_flag(field):
            assert " ".join(str(field.description).split()) in words


def captured_settings(model: type[S], args: list[str]) -> S:
    seen: list[S] = []
    command = typer.Typer()
    command.command()(settings_command(model, seen.append, "test"))
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    (settings,) = seen
    return settings


def test_the_gateway_flags_in_use_keep_their_names() -> None:
    settings = captured_settings(GatewaySettings, GATEWAY_ARGS)
    assert settings.listen == "0.0.0.0:7001" and settings.grpc_listen == "0.0.0.0:7002"
    assert settings.data_dir == Path("/data")
    assert settings.metadata_url == "postgresql://u@h/db"
    assert settings.redundancy == "ec:2+1" and settings.stripe_size_bytes == 65536
    assert (settings.node_timeout_s, settings.node_suspect_s) == (3.0, 1.0)
    assert (settings.repair_grace_s, settings.gc_grace_s, settings.lease_ttl_s) == (2.0, 4.0, 6.0)
    assert settings.repair_bytes_per_s == 1000 and settings.repair_enabled is False


def test_the_node_flags_in_use_keep_their_names() -> None:
    settings = captured_settings(NodeSettings, NODE_ARGS)
    assert settings.listen == "0.0.0.0:7101" and settings.advertise == "n0.nodes:7101"
    assert settings.data_dir == Path("/data") and settings.capacity_bytes == 1000
    assert settings.gateways == ("g1:7002", "g2:7002") and settings.gateway_dns == ("gws:7002",)
    assert (settings.scrub_bytes_per_s, settings.scrub_interval_s) == (0, 5.0)


def test_flags_left_out_come_from_the_environment_then_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The process environment is what pydantic-settings reads; nothing of ours is patched.
    monkeypatch.setenv("DISTSTORAGE_NODE_GATEWAYS", '["e1:7002","e2:7002"]')
    monkeypatch.setenv("DISTSTORAGE_NODE_SCRUB_BYTES_PER_S", "7")
    settings = captured_settings(NodeSettings, ["--scrub-rate", "9"])
    assert settings.gateways == ("e1:7002", "e2:7002")
    assert settings.scrub_bytes_per_s == 9, "a flag beats the environment"
    default = NodeSettings.model_fields["heartbeat_interval_s"].default
    assert settings.heartbeat_interval_s == default


def test_only_dns_names_given_means_no_default_gateway() -> None:
    settings = captured_settings(NodeSettings, ["--gateway-dns", "gws:7002"])
    assert settings.gateways == ()


def test_secrets_are_never_flags_and_come_from_their_own_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """argv is readable by every user of the machine: the root key's secret has no flag."""
    secret_fields = [n for n, f in GatewaySettings.model_fields.items() if not has_flag(f)]
    assert sorted(secret_fields) == ["root_access_key", "root_secret_key"]
    assert not any(
        "secret-key" in opt or "access-key" in opt
        for o in options("gateway").values()
        for opt in o.opts
    )
    monkeypatch.setenv("DISTSTORAGE_ROOT_ACCESS_KEY", "DSROOTKEYFROMENV0001")
    monkeypatch.setenv("DISTSTORAGE_ROOT_SECRET_KEY", "a-secret-from-the-environment")
    settings = captured_settings(GatewaySettings, ["--listen", "127.0.0.1:1"])
    assert settings.root_access_key == "DSROOTKEYFROMENV0001"
    assert settings.root_secret_key is not None
    assert settings.root_secret_key.get_secret_value() == "a-secret-from-the-environment"
    assert "a-secret-from-the-environment" not in repr(settings)
    result = CliRunner().invoke(app, ["gateway", "--root-secret-key", "x"])
    assert result.exit_code != 0
