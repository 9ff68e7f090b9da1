#!/usr/bin/python3
"""deploy/nginx.conf as nginx runs it: two stock sluice replicas behind an
nginx of this test's own (unprivileged foreground process, its prefix, pid
and logs in TEST_TMPDIR, on a free loopback port). Calls go through nginx
with the Python example client; each ending is checked on the replica that
served the call, from its --vlog=1 line for the call."""

import importlib
import os
import re
import struct
import subprocess
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                                "tests", "python"))
import sluice_testing  # noqa: E402

NGINX = "/usr/sbin/nginx"
NGHTTP = "/usr/bin/nghttp"  # Debian's nghttp2-client
LONG_STREAM = sluice_testing.LONG_STREAM
INTERVAL_S = sluice_testing.INTERVAL_S
SLACK_CHUNKS = sluice_testing.SLACK_CHUNKS

# The process-level part a deployment takes from its own nginx.conf (Debian's
# includes conf.d/*.conf in http {}); here everything lives in the test's dir.
MAIN_CONF = """\
daemon off;
master_process on;
worker_processes 2;
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/sluice.conf;
}}
"""


def runnable_sluice_conf(replica_ports, listen_port, access_log):
    """deploy/nginx.conf with the replicas', the listener's and the access
    log's places substituted. Each place must appear exactly once, so a
    change to the committed file that this test does not follow fails here."""
    with open(sluice_testing.runfile("deploy/nginx.conf"), encoding="utf-8") as f:
        text = f.read()
    substitutions = [
        (r"\bserver 127\.0\.0\.1:50051\b", f"server 127.0.0.1:{replica_ports[0]}"),
        (r"\bserver 127\.0\.0\.1:50052\b", f"server 127.0.0.1:{replica_ports[1]}"),
        (r"\blisten 8080 http2;", f"listen 127.0.0.1:{listen_port} http2;"),
        (r"/var/log/nginx/sluice-access\.log", access_log),
    ]
    for pattern, replacement in substitutions:
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise AssertionError(f"deploy/nginx.conf: {pattern!r} found {count} times, not once")
    return text


class NginxProcess(sluice_testing.Process):
    """nginx in the foreground with deploy/nginx.conf in front of replicas."""

    def __init__(self, directory, replica_ports, listen_port):
        self.dir = directory
        self.port = listen_port
        self.access_log = os.path.join(directory, "access.log")
        with open(os.path.join(directory, "sluice.conf"), "w", encoding="utf-8") as f:
            f.write(runnable_sluice_conf(replica_ports, listen_port, self.access_log))
        with open(os.path.join(directory, "nginx.conf"), "w", encoding="utf-8") as f:
            f.write(MAIN_CONF.format(dir=directory))
        # -e: the error log before the configuration is read, so nginx never
        # touches the system's log directory.
        super().__init__([NGINX, "-p", directory, "-c", os.path.join(directory, "nginx.conf"),
                          "-e", "stderr"], os.path.join(directory, "nginx.log"))

    @classmethod
    def start(cls, name, replica_ports, attempts=3):
        """Starts nginx on a free loopback port; returns once it listens (its
        pid file is written after its sockets are bound). Another free port
        is tried if the one picked was taken meanwhile."""
        for attempt in range(attempts):
            directory = sluice_testing.temp_dir(f"{name}_{attempt}")
            nginx = cls(directory, replica_ports, sluice_testing.free_loopback_port())
            if sluice_testing.wait_for_file(os.path.join(directory, "nginx.pid"), nginx):
                return nginx
            nginx.close()
            if "Address already in use" not in nginx.stderr_text():
                break
        raise RuntimeError(f"nginx did not start:\n{nginx.stderr_text()}")


def grpc_frame(message) -> bytes:
    """A gRPC length-prefixed message, uncompressed."""
    body = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(body)) + body


class NginxTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        sluice_client = sluice_testing.import_client()
        cls.pb = importlib.import_module("sluice.v1.inference_pb2")
        cls.replicas = [sluice_testing.SluiceServer("replica_a"),
                        sluice_testing.SluiceServer("replica_b")]
        cls.nginx = NginxProcess.start("nginx", [r.port for r in cls.replicas])
        cls.client = sluice_client.SluiceClient(f"127.0.0.1:{cls.nginx.port}")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.nginx.close()
        for replica in cls.replicas:
            replica.close()

    def serving_replica(self, request_id):
        """(replica, its ended-call fields) for the one replica that served
        request_id; fails if none did or both did."""
        found = sluice_testing.wait_ended_on_any(self.replicas, request_id)
        self.assertIsNotNone(found, f"no replica ended {request_id}; nginx said:\n"
                             f"{self.nginx.stderr_text()}")
        served = [r for r in self.replicas if r.ended_calls(request_id)]
        self.assertEqual(len(served), 1, f"{request_id} ended on {len(served)} replicas")
        return found

    def test_streams_pass_through_and_calls_spread_across_both_replicas(self):
        served_by = []
        for _ in range(6):
            result = self.client.stream("synthetic", b"", {"tokens": 3, "chunk_bytes": 3})
            self.assertTrue(result.ok, result)
            self.assertEqual(result.output, b"t0 t1 t2 ")
            self.assertEqual(result.finish_reason, "FINISH_REASON_LENGTH")
            replica, fields = self.serving_replica(result.request_id)
            self.assertEqual((fields["ended"], fields["code"]), ("completed", "OK"))
            served_by.append(self.replicas.index(replica))
        self.assertEqual(set(served_by), {0, 1}, f"calls went to replicas {served_by}")

    def test_cancel_mid_stream_stops_the_replica_that_served_it(self):
        # The deadline only bounds the test should the cancel not get through.
        result = self.client.stream("synthetic", b"", LONG_STREAM, cancel_after_chunks=3,
                                    deadline_s=sluice_testing.WAIT_S)
        self.assertEqual(result.code.name, "CANCELLED", result)
        self.assertEqual(result.chunks, 3)
        _, fields = self.serving_replica(result.request_id)
        # nginx ends a cancelled call by closing its upstream connection, so
        # the replica may see a disconnect rather than a cancel.
        self.assertIn(fields["ended"], ("client_cancelled", "disconnected"))
        self.assertEqual(fields["code"], "CANCELLED")
        self.assertGreaterEqual(int(fields["chunks"]), 3)
        self.assertLessEqual(int(fields["chunks"]), 3 + SLACK_CHUNKS)

    def test_the_callers_deadline_reaches_the_replica(self):
        # nghttp sends grpc-timeout but, unlike a gRPC client, does not reset
        # the stream when it passes: only the replica's own deadline, taken
        # from the header nginx passed on, can end this call.
        request_id = f"raw-{uuid.uuid4().hex}"
        request = self.pb.PredictRequest(model="synthetic", request_id=request_id)
        for name, value in LONG_STREAM.items():
            request.parameters[name].int64_param = value
        body = os.path.join(self.nginx.dir, f"{request_id}.bin")
        with open(body, "wb") as f:
            f.write(grpc_frame(request))
        try:
            subprocess.run(
                [NGHTTP, "--null-out", "-H", "content-type: application/grpc",
                 "-H", "te: trailers", "-H", "grpc-timeout: 300m", "-d", body,
                 f"http://127.0.0.1:{self.nginx.port}/sluice.v1.Inference/PredictStream"],
                check=False, timeout=sluice_testing.WAIT_S, capture_output=True)
        except subprocess.TimeoutExpired:
            self.fail("the call did not end at its deadline: grpc-timeout did not get through")
        _, fields = self.serving_replica(request_id)
        self.assertEqual((fields["ended"], fields["code"]), ("deadline", "DEADLINE_EXCEEDED"))
        self.assertLessEqual(int(fields["chunks"]), 0.3 / INTERVAL_S + SLACK_CHUNKS)


if __name__ == "__main__":
    unittest.main(verbosity=2)
