#!/usr/bin/python3
"""The Python example client against the real stock server: a full stream, a
mid-stream cancel and a deadline, each checked from the server's side too
(its --vlog=1 line for the call says how and when generation stopped)."""

import os
import subprocess
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                                "tests", "python"))
import sluice_testing  # noqa: E402

LONG_STREAM = sluice_testing.LONG_STREAM
INTERVAL_S = sluice_testing.INTERVAL_S
SLACK_CHUNKS = sluice_testing.SLACK_CHUNKS


class PythonClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.module = sluice_testing.import_client()
        cls.server = sluice_testing.SluiceServer("server")
        cls.client = cls.module.SluiceClient(cls.server.target)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.close()

    def ended(self, request_id):
        fields = self.server.wait_ended(request_id)
        self.assertIsNotNone(fields, f"the server never ended {request_id}:\n"
                             f"{self.server.stderr_text()}")
        return fields

    def test_full_stream_ends_ok_with_every_chunk(self):
        result = self.client.stream("synthetic", b"", {"tokens": 5, "chunk_bytes": 3})
        self.assertTrue(result.ok, result)
        self.assertEqual(result.chunks, 5)
        self.assertEqual(result.output, b"t0 t1 t2 t3 t4 ")
        self.assertEqual(result.finish_reason, "FINISH_REASON_LENGTH")
        self.assertEqual(result.usage.output_chunks, 5)
        fields = self.ended(result.request_id)
        self.assertEqual((fields["ended"], fields["code"], fields["chunks"]),
                         ("completed", "OK", "5"))

    def test_cancel_mid_stream_stops_generation(self):
        # The deadline only bounds the test should the cancel not work.
        result = self.client.stream("synthetic", b"", LONG_STREAM, cancel_after_chunks=3,
                                    deadline_s=sluice_testing.WAIT_S)
        self.assertEqual(result.code.name, "CANCELLED", result)
        self.assertTrue(result.cancelled_by_client)
        self.assertEqual(result.chunks, 3)
        fields = self.ended(result.request_id)
        self.assertEqual(fields["ended"], "client_cancelled")
        self.assertEqual(fields["code"], "CANCELLED")
        self.assertGreaterEqual(int(fields["chunks"]), 3)
        self.assertLessEqual(int(fields["chunks"]), 3 + SLACK_CHUNKS)

    def test_deadline_stops_generation(self):
        result = self.client.stream("synthetic", b"", LONG_STREAM, deadline_s=0.3)
        self.assertEqual(result.code.name, "DEADLINE_EXCEEDED", result)
        self.assertGreater(result.chunks, 0)
        fields = self.ended(result.request_id)
        # The server's deadline comes from the call's grpc-timeout header and
        # the client resets the stream at its own deadline: the server ends the
        # call on whichever reaches it first. Usually its own timer; on a loaded
        # machine the client's reset may come first, which it counts as a cancel.
        self.assertIn((fields["ended"], fields["code"]),
                      [("deadline", "DEADLINE_EXCEEDED"), ("client_cancelled", "CANCELLED")])
        self.assertLessEqual(int(fields["chunks"]), 0.3 / INTERVAL_S + SLACK_CHUNKS)

    def test_parameters_are_typed_like_sluice_cli(self):
        parse = self.module.parse_parameter
        self.assertEqual(parse("tokens=5")[1].int64_param, 5)
        self.assertEqual(parse("temperature=0.5")[1].double_param, 0.5)
        self.assertEqual(parse("flag=true")[1].bool_param, True)
        self.assertEqual(parse("name=abc")[1].string_param, "abc")
        self.assertEqual(parse("temperature:double=1")[1].double_param, 1.0)
        self.assertEqual(parse("seed:string=7")[1].string_param, "7")
        self.assertEqual(parse("name=a=b"), ("name", self.module.make_parameter("a=b")))
        for bad in ("novalue", "=5", "tokens:int=x", "flag:bool=yes", "x:complex=1"):
            with self.assertRaises(ValueError, msg=bad):
                parse(bad)
        self.assertEqual(self.module.make_parameter(True).WhichOneof("parameter_choice"),
                         "bool_param")

    def test_cli_streams_cancels_and_exits_with_the_status(self):
        request_id = f"cli-{uuid.uuid4().hex}"
        cli = subprocess.run(
            [sys.executable, sluice_testing.runfile("client/python/sluice_client.py"),
             f"--target={self.server.target}", "--model=synthetic", "--param=tokens=100000",
             "--param", "token_interval_us=10000", "--cancel_after_chunks=2",
             "--deadline_ms=30000",
             f"--request_id={request_id}"],
            capture_output=True, text=True, timeout=sluice_testing.WAIT_S,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        self.assertEqual(cli.returncode, 1, cli.stderr)
        self.assertEqual(cli.stdout, "t0 t1 \n")
        self.assertIn("status=CANCELLED", cli.stderr)
        self.assertIn(f"cancelled_by=client chunks=2 request_id={request_id}", cli.stderr)
        # The CLI exits right after cancelling, so the server may see the
        # closed connection before the cancel: either way it stops.
        fields = self.ended(request_id)
        self.assertIn(fields["ended"], ("client_cancelled", "disconnected"))
        self.assertLessEqual(int(fields["chunks"]), 2 + SLACK_CHUNKS)

    def test_cli_lists_models_and_rejects_a_bad_parameter(self):
        def run(*args):
            return subprocess.run(
                [sys.executable, sluice_testing.runfile("client/python/sluice_client.py"),
                 f"--target={self.server.target}", *args],
                capture_output=True, text=True, timeout=sluice_testing.WAIT_S,
                env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        listed = run("--list_models")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("--param token_interval_us=<int64>", listed.stdout)
        bad = run("--model=charlm", "--param=temperature=hot")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("status=INVALID_ARGUMENT", bad.stderr)
        self.assertIn("must be set as double_param, got string_param", bad.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
