#!/usr/bin/python3
"""deploy/envoy.yaml, checked without Envoy (not packaged for Debian 12): it
parses, the settings deploy/README.md describes are there with the values it
gives, its references hold together, and the health check it configures is
one the real server answers (SERVING while it serves, NOT_SERVING while it
drains)."""

import importlib
import os
import re
import signal
import sys
import threading
import unittest

import grpc
import yaml

sys.path.insert(0, os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                                "tests", "python"))
import sluice_testing  # noqa: E402

HCM_TYPE = ("type.googleapis.com/"
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager")
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
UPSTREAM_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# Envoy reads durations in the protobuf JSON form: seconds with an "s".
DURATION = re.compile(r"^\d+(\.\d{1,9})?s$")
HEALTH_PROTO = "/usr/share/grpc-proto/grpc/health/v1/health.proto"  # Debian's grpc-proto


def load_yaml(workspace_relative):
    with open(sluice_testing.runfile(workspace_relative), encoding="utf-8") as f:
        return yaml.safe_load(f)


def seconds(duration):
    return float(duration[:-1])


def walk(node, path=""):
    """Yields (path, key, value) for every mapping entry in a YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def inference_service_name():
    """The Inference service's full name, from the wire contract."""
    with open(sluice_testing.runfile("protos/sluice/v1/inference.proto"), encoding="utf-8") as f:
        proto = f.read()
    package = re.search(r"^package\s+([\w.]+);", proto, re.M).group(1)
    service = re.search(r"^service\s+(Inference)\s*\{", proto, re.M).group(1)
    return f"{package}.{service}"


class EnvoyConfigTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.config = load_yaml("deploy/envoy.yaml")
        resources = cls.config["static_resources"]
        [listener] = resources["listeners"]
        [chain] = listener["filter_chains"]
        hcms = [f["typed_config"] for f in chain["filters"]
                if f["name"] == "envoy.filters.network.http_connection_manager"]
        assert len(hcms) == 1, "one HTTP connection manager"
        cls.hcm = hcms[0]
        cls.routes = [route for host in cls.hcm["route_config"]["virtual_hosts"]
                      for route in host["routes"]]
        cls.clusters = {c["name"]: c for c in resources["clusters"]}

    def test_typed_configs_name_their_types(self):
        self.assertEqual(self.hcm["@type"], HCM_TYPE)
        self.assertEqual(self.hcm["http_filters"][-1]["typed_config"]["@type"], ROUTER_TYPE,
                         "the router must be the last HTTP filter")
        for path, key, value in walk(self.config):
            if key == "@type":
                self.assertRegex(value, r"^type\.googleapis\.com/envoy\.[\w.]+\.v3\.\w+$", path)

    def test_durations_are_in_envoys_form(self):
        keys = re.compile(r"(timeout|interval|duration|_max)$")
        found = 0
        for path, key, value in walk(self.config):
            if keys.search(key) and not isinstance(value, (dict, list)):
                found += 1
                self.assertRegex(str(value), DURATION, f"{path}/{key}")
        self.assertGreaterEqual(found, 10)

    def test_streams_are_not_cut_short(self):
        self.assertGreater(seconds(self.hcm["stream_idle_timeout"]), 60)
        self.assertTrue(self.routes)
        for route in self.routes:
            action = route["route"]
            self.assertEqual(action["timeout"], "0s", "Envoy's default cuts calls at 15 s")
            self.assertEqual(action["max_stream_duration"]["max_stream_duration"], "0s")

    def test_the_callers_grpc_timeout_is_honoured(self):
        for route in self.routes:
            self.assertEqual(route["route"]["max_stream_duration"]["grpc_timeout_header_max"],
                             "0s", "0s: grpc-timeout applies as sent, uncapped")

    def test_routes_lead_to_an_http2_health_checked_cluster(self):
        for route in self.routes:
            cluster = self.clusters.get(route["route"]["cluster"])
            self.assertIsNotNone(cluster, f"route to unknown cluster {route['route']['cluster']}")
            options = cluster["typed_extension_protocol_options"][UPSTREAM_HTTP_OPTIONS]
            self.assertEqual(options["@type"], f"type.googleapis.com/{UPSTREAM_HTTP_OPTIONS}")
            self.assertIn("http2_protocol_options", options["explicit_http_config"])
            [check] = cluster["health_checks"]
            self.assertEqual(check["grpc_health_check"]["service_name"],
                             inference_service_name())
            for key in ("timeout", "interval", "unhealthy_threshold", "healthy_threshold"):
                self.assertIn(key, check)

    def test_replicas_are_the_ones_nginx_conf_names(self):
        [cluster] = self.clusters.values()
        endpoints = sorted(
            f"{e['endpoint']['address']['socket_address']['address']}:"
            f"{e['endpoint']['address']['socket_address']['port_value']}"
            for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"])
        self.assertEqual(cluster["load_assignment"]["cluster_name"], cluster["name"])
        with open(sluice_testing.runfile("deploy/nginx.conf"), encoding="utf-8") as f:
            nginx = sorted(re.findall(r"^\s*server\s+([\d.]+:\d+)", f.read(), re.M))
        self.assertEqual(endpoints, nginx)
        self.assertEqual(len(endpoints), 2)


class HealthCheckTargetTest(unittest.TestCase):
    """The health check envoy.yaml configures, made against the real server."""

    @classmethod
    def setUpClass(cls):
        # Generated as top-level modules (health_pb2): "grpc" is grpcio's package.
        sluice_testing.generate_stubs(sluice_testing.temp_dir("health_stubs"), HEALTH_PROTO,
                                      os.path.dirname(HEALTH_PROTO))
        cls.health_pb2 = importlib.import_module("health_pb2")
        cls.health_pb2_grpc = importlib.import_module("health_pb2_grpc")
        cls.sluice_client = sluice_testing.import_client()
        [cluster] = load_yaml("deploy/envoy.yaml")["static_resources"]["clusters"]
        [check] = cluster["health_checks"]
        cls.service = check["grpc_health_check"]["service_name"]

    def request(self):
        return self.health_pb2.HealthCheckRequest(service=self.service)

    def status_name(self, response):
        return self.health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def test_a_serving_replica_is_healthy_and_a_draining_one_is_not(self):
        with sluice_testing.SluiceServer("replica", ["--shutdown_grace_ms=30000"]) as server, \
                grpc.insecure_channel(server.target) as channel:
            health = self.health_pb2_grpc.HealthStub(channel)
            self.assertEqual(
                self.status_name(health.Check(self.request(), timeout=sluice_testing.WAIT_S)),
                "SERVING")
            # Watch streams the status each time it changes.
            watch = health.Watch(self.request(), timeout=sluice_testing.WAIT_S)
            self.assertEqual(self.status_name(next(watch)), "SERVING")

            # A call in flight keeps the server draining (up to the grace)
            # after SIGTERM, while it still answers health checks.
            client = self.sluice_client.SluiceClient(server.target)
            streaming = threading.Event()
            stream = threading.Thread(target=client.stream, args=(
                "synthetic", b"", sluice_testing.LONG_STREAM),
                kwargs={"deadline_s": sluice_testing.WAIT_S,
                        "on_chunk": lambda _: streaming.set()})
            stream.start()
            self.assertTrue(streaming.wait(sluice_testing.WAIT_S))
            server.proc.send_signal(signal.SIGTERM)
            self.assertEqual(self.status_name(next(watch)), "NOT_SERVING")
            watch.cancel()
            # What Envoy's health checker asks, and what takes the replica
            # out of its rotation:
            self.assertEqual(
                self.status_name(health.Check(self.request(), timeout=sluice_testing.WAIT_S)),
                "NOT_SERVING")

            client.close()  # cancels the stream; the drain then ends
            stream.join(sluice_testing.WAIT_S)
            self.assertEqual(server.wait_exit(), 0, server.stderr_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
