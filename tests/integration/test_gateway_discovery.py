"""A node that finds its gateways by name (`--gateway-dns`), as nodes do in Kubernetes behind a
headless Service: a real node process, a real lookup through the system resolver
(``localhost``), a real gateway that then stores on it."""

from __future__ import annotations

from pathlib import Path

from conftest import (
    ClusterOptions,
    chunk_files,
    cluster_in,
    gateway_client,
    random_bytes,
    wait_live_nodes,
)

from diststorage.local import free_port


def test_a_node_given_only_a_gateway_name_joins_and_takes_writes(tmp_path: Path) -> None:
    with cluster_in(
        tmp_path,
        ClusterOptions(
            nodes=3,
            redundancy="replicate:2",
            # replicate:4 below stores 4 bytes per byte: more than clients may ask by default.
            gateway_args=("--max-policy-overhead", "4"),
        ),
    ) as cluster:
        http = gateway_client(cluster.url)
        wait_live_nodes(http, 3)
        _, grpc_port = cluster.gateway_ports[0]
        index = cluster.add_node(free_port(), gateway_dns=f"localhost:{grpc_port}")
        wait_live_nodes(http, 4)
        body = random_bytes(100_000)
        # Four replicas on four nodes: one of them must be the node that came by name.
        response = http.put("found-by-name", body, {"X-Redundancy": "replicate:4"})
        assert response.status == 201, response.body
        assert chunk_files(cluster, [index]), "the new node holds no replica"
        assert http.get("found-by-name").body == body
        log = (cluster.data_dir / "logs" / f"node{index}.log").read_text()
        assert f"127.0.0.1:{grpc_port} appeared" in log
