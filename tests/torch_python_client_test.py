#!/usr/bin/python3
"""The Python example client (client/python) against the stock server serving
TorchScript models: tinylm's text, seeds, stop strings, usage, a cancel that
frees the sequence (the server's --vlog=1 line), and bad parameters."""

import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                                "tests", "python"))
import sluice_testing  # noqa: E402


class TorchPythonClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.module = sluice_testing.import_client()
        models = ",".join([
            "tinylm=" + sluice_testing.runfile("models/tinylm/tinylm.pt"),
            "fixed=" + sluice_testing.runfile("models/torch/testdata/fixed_text.pt"),
        ])
        cls.server = sluice_testing.SluiceServer(
            "server", ["--torch_models=" + models, "--torch_threads=1", "--builtin_models=echo"])
        cls.client = cls.module.SluiceClient(cls.server.target)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.close()

    def test_tinylm_streams_text_with_usage(self):
        prompt = "The ferryman"
        result = self.client.stream("tinylm", prompt, {"max_tokens": 80, "seed": 3})
        self.assertTrue(result.ok, result)
        self.assertEqual(result.finish_reason, "FINISH_REASON_LENGTH")
        self.assertEqual(result.usage.input_tokens, len(prompt))
        self.assertEqual(result.usage.output_tokens, 80)
        self.assertEqual(len(result.output), 80)  # ASCII: a byte per token
        self.assertEqual(result.usage.output_chunks, result.chunks)
        letters = sum(chr(c).isalpha() or c in b" .," for c in result.output)
        self.assertGreaterEqual(letters, 70, result.output)
        again = self.client.stream("tinylm", prompt, {"max_tokens": 80, "seed": 3})
        self.assertEqual(again.output, result.output)

    def test_stop_strings_and_end_of_text(self):
        # fixed continues "Once upon a time, a café → a naïve fox ran off. The end."
        full = self.client.stream("fixed", "Once", {"temperature": 0.0})
        self.assertEqual(full.output.decode("utf-8"),
                         " upon a time, a caf\u00e9 \u2192 a na\u00efve fox ran off. The end.")
        self.assertEqual(full.finish_reason, "FINISH_REASON_STOP")  # its end-of-text token
        stopped = self.client.stream("fixed", "Once",
                                     {"temperature": 0.0, "stop": "nowhere", "stop2": "fox"})
        self.assertEqual(stopped.output.decode("utf-8"), " upon a time, a caf\u00e9 \u2192 a na\u00efve ")
        self.assertEqual(stopped.finish_reason, "FINISH_REASON_STOP")
        self.assertEqual(stopped.usage.output_tokens, len(stopped.output) + len(b"fox"))

    def test_cancel_mid_stream_stops_the_sequence(self):
        request_id = f"torch-{uuid.uuid4().hex}"
        result = self.client.stream("tinylm", "The mill", {"max_tokens": 240, "seed": 5},
                                    request_id=request_id, cancel_after_chunks=3,
                                    deadline_s=sluice_testing.WAIT_S)
        self.assertEqual(result.code.name, "CANCELLED", result)
        self.assertEqual(result.chunks, 3)
        fields = self.server.wait_ended(request_id)
        self.assertIsNotNone(fields, self.server.stderr_text())
        self.assertEqual((fields["ended"], fields["code"]), ("client_cancelled", "CANCELLED"))
        # The model may run ahead of the reader by its stream buffer (64
        # chunks), not to the 240 it was asked for.
        self.assertLessEqual(int(fields["chunks"]), 3 + 64 + 1)

    def test_bad_parameters_are_invalid_argument(self):
        result = self.client.stream("tinylm", "x", {"top_p": 0.0})
        self.assertEqual(result.code.name, "INVALID_ARGUMENT")
        self.assertEqual(result.details, "parameter top_p of model tinylm must be above 0 and "
                         "at most 1 (1 keeps every token), got 0")
        long_input = self.client.stream("tinylm", "a" * 300)
        self.assertEqual(long_input.code.name, "INVALID_ARGUMENT")
        self.assertIn("longer than its context of 256 tokens", long_input.details)


if __name__ == "__main__":
    unittest.main(verbosity=2)
