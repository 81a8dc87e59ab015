"""Observability against a real cluster whose daemons log JSON: request ids from the client
through the gateway to the nodes' log lines, the access line, error bodies, the gateway's
``/_/metrics`` (its series, and ``promtool check metrics`` on a real scrape), and the shipped
Grafana dashboard and alert rules: every metric they read is in that scrape, and promtool
checks the rules and runs their unit tests (``deploy/prometheus/alerts_test.yml``)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ClusterOptions, gateway_client, node_ids, object_chunks, random_bytes
from prometheus_checks import ROOT, metric_names, promtool, sample_names, scrape, series

from diststorage.client import Client
from diststorage.local import LocalCluster
from diststorage.testing import Faults

JSON_LOGS = ("--log-format", "json")
DASHBOARD = ROOT / "deploy" / "grafana" / "diststorage.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD_ROWS = [
    "Health",
    "Durability",
    "Repair",
    "Nodes and capacity",
    "Throughput and latency",
    "Scrub and garbage collection",
]
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
ACCESS_FIELDS = {
    "ts",
    "level",
    "logger",
    "msg",
    "request_id",
    "method",
    "route",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_s",
}
GENERATED_ID = re.compile(r"[0-9A-F]{16}")
LOG_WAIT_S = 10.0
# Above the small-object and inline limits: stored ec:4+2, one chunk on each of six nodes.
OBJECT_BYTES = 300_000


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    return ClusterOptions(gateway_args=JSON_LOGS, node_args=JSON_LOGS)


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of a daemon's log (a child's log may also hold lines it printed before
    logging was set up, which are not JSON)."""
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def node_logs(cluster: LocalCluster) -> list[Path]:
    return [cluster.data_dir / "logs" / f"node{index}.log" for index in range(cluster.nodes)]


def wait_for_lines(
    paths: list[Path], wanted: Callable[[dict[str, Any]], bool], count: int = 1
) -> list[dict[str, Any]]:
    """The lines of ``paths`` that ``wanted`` picks, once there are ``count`` of them (the
    daemons write them as the calls end, not before the client's answer)."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        found = [line for path in paths for line in log_lines(path) if wanted(line)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def with_id(request_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda line: line.get("request_id") == request_id


def test_a_request_id_reaches_the_gateway_and_node_log_lines(
    cluster: LocalCluster, http: Client
) -> None:
    key, data = "obs/traced-object-name", random_bytes(OBJECT_BYTES)
    put = http.request("PUT", f"/{key}", data, headers={"X-Request-Id": "trace-put.1"})
    assert put.status == 201 and put.json()["redundancy"] == "ec:4+2"
    assert put.header("X-Request-Id") == "trace-put.1"
    get = http.request("GET", f"/{key}", headers={"X-Request-Id": "trace_get-2"})
    assert get.status == 200 and get.body == data
    assert get.header("X-Request-Id") == "trace_get-2"

    # Every node stored one chunk of the object, and logged that call under the PUT's id.
    stored = wait_for_lines(node_logs(cluster), with_id("trace-put.1"), count=cluster.nodes)
    assert len(stored) == cluster.nodes
    assert {line["rpc"] for line in stored} <= {"PutChunk", "PutChunkOnce"}
    assert all(line["code"] == "OK" and line["bytes"] > 0 for line in stored)
    assert all(line["logger"] == "diststorage.node.calls" for line in stored)
    read = wait_for_lines(node_logs(cluster), with_id("trace_get-2"), count=4)
    assert len(read) >= 4  # the four data shards
    assert {line["rpc"] for line in read} <= {"GetChunk", "GetChunkOnce"}

    access = wait_for_lines([cluster.gateway_log_path()], with_id("trace-put.1"))
    assert len(access) == 1
    line = access[0]
    assert line.keys() >= ACCESS_FIELDS
    assert (line["logger"], line["level"], line["msg"]) == ("diststorage.access", "INFO", "request")
    assert (line["method"], line["route"], line["status"]) == ("PUT", "object", 201)
    assert line["bytes_in"] == OBJECT_BYTES and line["api"] == "native"
    assert 0 < line["duration_s"] < 60
    (got,) = wait_for_lines([cluster.gateway_log_path()], with_id("trace_get-2"))
    assert (got["method"], got["status"], got["bytes_out"]) == ("GET", 200, OBJECT_BYTES)
    # The object's key is in no line of the gateway's log: only its path's hash is.
    assert key not in cluster.gateway_log_path().read_text()
    assert line["target"] == got["target"] and re.fullmatch(r"[0-9a-f]{16}", line["target"])


@pytest.mark.parametrize("given", ["has space", "x" * 65, "semi;colon"])
def test_an_unacceptable_request_id_is_replaced(http: Client, given: str) -> None:
    response = http.request("GET", "/obs/never-written", headers={"X-Request-Id": given})
    assert response.status == 404
    made = response.header("X-Request-Id")
    assert made is not None and GENERATED_ID.fullmatch(made)
    assert response.json()["request_id"] == made


def test_a_request_without_an_id_gets_one_and_every_answer_names_it(http: Client) -> None:
    first = http.request("GET", "/obs/never-written")
    second = http.request("GET", "/?prefix=obs/")
    ids = [first.header("X-Request-Id"), second.header("X-Request-Id")]
    assert all(i is not None and GENERATED_ID.fullmatch(i) for i in ids)
    assert ids[0] != ids[1]


def test_error_bodies_carry_the_request_id(cluster: LocalCluster, http: Client) -> None:
    missing = http.request("GET", "/obs/never-written", headers={"X-Request-Id": "err-1"})
    assert missing.status == 404
    assert missing.json() == {
        "error": "object_not_found",
        "message": missing.json()["message"],
        "request_id": "err-1",
    }
    unsigned = gateway_client(cluster.url, None)
    refused = unsigned.request("GET", "/_/nodes", headers={"X-Request-Id": "err-2"})
    assert refused.status == 403 and refused.json()["request_id"] == "err-2"
    (line,) = wait_for_lines([cluster.gateway_log_path()], with_id("err-2"))
    assert (line["route"], line["status"]) == ("system", 403)


def test_s3_answers_carry_the_same_id_as_x_amz_request_id(cluster: LocalCluster) -> None:
    s3 = gateway_client(cluster.s3_url, None)
    refused = s3.request("GET", "/bucket/key", headers={"X-Request-Id": "s3-trace.7"})
    assert refused.status == 403
    assert refused.header("x-amz-request-id") == "s3-trace.7"
    assert refused.header("X-Request-Id") == "s3-trace.7"
    assert b"<RequestId>s3-trace.7</RequestId>" in refused.body
    (line,) = wait_for_lines([cluster.gateway_log_path()], with_id("s3-trace.7"))
    assert (line["api"], line["route"], line["status"]) == ("s3", "other", 403)
    made = s3.request("GET", "/bucket/key", headers={"X-Request-Id": "no good"})
    assert GENERATED_ID.fullmatch(made.header("x-amz-request-id") or "")
    assert made.header("x-amz-request-id") == made.header("X-Request-Id")


def test_the_metrics_cover_nodes_data_path_process_and_both_front_ends(
    cluster: LocalCluster, http: Client
) -> None:
    data = random_bytes(OBJECT_BYTES)
    assert http.request("PUT", "/obs/measured", data).status == 201
    assert http.request("GET", "/obs/measured").body == data
    gateway_client(cluster.s3_url, None).request("GET", "/")  # an S3 request, refused
    scrape(http)  # a first scrape: the second one counts it
    families = series(scrape(http))
    node_ids = [node["id"] for node in http.request("GET", "/_/nodes").json()]
    assert len(node_ids) == cluster.nodes

    def value(name: str, **labels: str) -> float:
        matches = [v for got, v in families.get(name, []) if labels.items() <= got.items()]
        assert matches, f"no {name}{labels}"
        return sum(matches)

    assert value("process_resident_memory_bytes") > 0
    assert value("process_cpu_seconds_total") > 0
    assert value("diststorage_build_info", version="0.1.0") == 1
    for node in node_ids:
        assert value("diststorage_node_up", node=node) == 1
        assert value("diststorage_node_capacity_bytes", node=node) > 0
        assert value("diststorage_node_used_bytes", node=node) >= 0  # as last heard
        assert 0 <= value("diststorage_node_heartbeat_age_seconds", node=node) < 10
        assert value("diststorage_node_info", node=node, lifecycle="active") == 1
        for name in ("verified_bytes_total", "corrupt_chunks_total", "passes_total"):
            value(f"diststorage_scrub_{name}", node=node)
        value("diststorage_scrub_last_pass_timestamp_seconds", node=node)
        assert value("diststorage_block_crc_errors_total", node=node) == 0
        assert value("diststorage_block_deadline_exceeded_total", node=node) == 0
        # Every call kind has its series, at zero when never made.
        for op in ("put_chunk", "put_chunk_once", "get_chunk", "get_chunk_once"):
            value("diststorage_node_rpc_seconds_count", op=op, node=node)
        assert value("diststorage_node_rpc_seconds_count", op="delete_chunk", node=node) >= 0
    stored = value("diststorage_node_rpc_seconds_count", op="put_chunk") + value(
        "diststorage_node_rpc_seconds_count", op="put_chunk_once"
    )
    assert stored >= cluster.nodes
    assert value("diststorage_degraded_reads_total") == 0
    assert value("diststorage_meta_query_seconds_count", op="read") > 0
    assert value("diststorage_meta_query_seconds_count", op="write") > 0

    latency = "diststorage_http_request_seconds_count"
    assert value(latency, api="native", method="GET", route="object") >= 1
    assert value(latency, api="native", method="PUT", route="object") >= 1
    assert value(latency, api="s3", method="GET", route="list") == 0  # there from the start
    assert all(labels["route"] != "system" for labels, _ in families[latency])
    assert value("diststorage_http_requests_total", api="native", route="system") >= 1
    assert value("diststorage_http_requests_total", api="s3", status="403") >= 1
    assert value("diststorage_http_received_bytes_total", api="native") >= OBJECT_BYTES
    assert value("diststorage_http_sent_bytes_total", api="native") >= OBJECT_BYTES


def test_promtool_passes_a_real_scrape(http: Client, tmp_path: Path) -> None:
    exposition = tmp_path / "metrics.txt"
    exposition.write_bytes(scrape(http))
    with exposition.open("rb") as text:
        checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "diststorage_node_rpc_seconds_bucket" in sample_names(exposition.read_bytes())


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, node) (rate(a_seconds_bucket{status=~"5.."}[5m])))'
        " / on (node) group_left max without (x) (b_total offset 1h) > 2 * 86400"
        " and time() - c_timestamp[$__rate_interval] or vector(0) unless d:recorded"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c_timestamp", "d:recorded"}


def test_every_metric_the_dashboard_and_the_alerts_read_is_served(http: Client) -> None:
    served = sample_names(scrape(http))
    exprs = dashboard_exprs() + alert_exprs()
    assert len(exprs) > 40
    read = set().union(*(metric_names(expr) for expr in exprs))
    assert {"diststorage_node_up", "diststorage_stripes", "process_cpu_seconds_total"} <= read
    missing = sorted(read - served)
    assert not missing, f"read by deploy/ but not in /_/metrics: {missing}"


def test_the_dashboard_is_templated_on_its_datasource_with_the_six_rows() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = dashboard["panels"]
    assert [p["title"] for p in panels if p["type"] == "row"] == DASHBOARD_ROWS
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == DATASOURCE, panel["title"]
            assert panel["targets"], panel["title"]
            assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), panel["title"]


def test_the_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(ALERT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    }
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    covered = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert covered == alerts  # every alert is shown firing at least once


def test_a_corrupt_block_is_counted_against_its_node_and_the_read_as_degraded(
    cluster: LocalCluster, http: Client
) -> None:
    """Last in the module: the other tests see a cluster without a fault."""
    key, data = "obs/corrupted", random_bytes(OBJECT_BYTES)
    assert http.request("PUT", f"/{key}", data).status == 201
    first_data_shard = object_chunks(cluster, key)[0]
    Faults.flip_byte(first_data_shard.path)
    assert http.request("GET", f"/{key}").body == data
    node = {index: node_id for node_id, index in node_ids(cluster).items()}[first_data_shard.node]
    families = series(scrape(http))
    crc = dict((labels["node"], v) for labels, v in families["diststorage_block_crc_errors_total"])
    assert crc.pop(node) == 1
    assert set(crc.values()) == {0}
    assert families["diststorage_degraded_reads_total"] == [({}, 1.0)]
