#!/usr/bin/python3
"""Call a sluice server from Python: stream, cancel mid-stream, set a deadline.

The stubs are generated from the repository's wire contract and are not kept
in the tree. From the repository root:

    /usr/bin/python3 -m grpc_tools.protoc -Iprotos --python_out=GEN \
        --grpc_python_out=GEN protos/sluice/v1/inference.proto

and put GEN on PYTHONPATH. Then, as a command:

    PYTHONPATH=GEN client/python/sluice_client.py --model=synthetic \
        --param tokens=1000 --param token_interval_us=10000 --cancel_after_chunks=5

or as a module:

    with sluice_client.SluiceClient("127.0.0.1:50051") as client:
        result = client.stream("charlm", "The river", {"max_tokens": 40},
                               deadline_s=2.0, on_chunk=print)
        print(result.code, result.finish_reason, result.chunks)

Chunks go to stdout as they arrive; the final status goes to stderr. The
exit code is 0 only if the call ended OK.
"""

import argparse
import dataclasses
import os
import sys
import time
import uuid
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

import grpc

try:
    from sluice.v1 import inference_pb2
    from sluice.v1 import inference_pb2_grpc
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError(
        "sluice_client needs Python stubs generated from protos/sluice/v1/inference.proto; "
        "from the repository root run: /usr/bin/python3 -m grpc_tools.protoc -Iprotos "
        "--python_out=GEN --grpc_python_out=GEN protos/sluice/v1/inference.proto "
        "and add GEN to PYTHONPATH") from error

ParamValue = Any  # bool, int, float, str or an inference_pb2.Parameter


def make_parameter(value: ParamValue) -> "inference_pb2.Parameter":
    """Returns the Parameter for a Python value: bool, int, float or str.

    A model declares each parameter's type (see ListModels) and rejects a
    value of another type, except that an int is accepted for a double.
    """
    if isinstance(value, inference_pb2.Parameter):
        return value
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return inference_pb2.Parameter(bool_param=value)
    if isinstance(value, int):
        return inference_pb2.Parameter(int64_param=value)
    if isinstance(value, float):
        return inference_pb2.Parameter(double_param=value)
    if isinstance(value, str):
        return inference_pb2.Parameter(string_param=value)
    raise TypeError(f"parameter value {value!r} must be a bool, int, float or str")


def parse_parameter(text: str) -> Tuple[str, "inference_pb2.Parameter"]:
    """Parses "name=value" or "name:type=value" as sluice_cli does.

    Without a type, the value is a bool (true/false), else an integer, else a
    number, else a string. Types: int, double, bool, string.
    """
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise ValueError(f'parameter "{text}" must look like name=value or name:type=value')
    name, _, kind = name.partition(":")
    if not kind:
        if value in ("true", "false"):
            return name, make_parameter(value == "true")
        for convert in (int, float):
            try:
                return name, make_parameter(convert(value))
            except ValueError:
                pass
        return name, make_parameter(value)
    try:
        if kind in ("int", "int64"):
            return name, make_parameter(int(value))
        if kind in ("double", "float"):
            return name, make_parameter(float(value))
    except ValueError:
        raise ValueError(f'parameter {name}: "{value}" is not a {kind}') from None
    if kind == "bool":
        if value not in ("true", "false"):
            raise ValueError(f'parameter {name}: "{value}" is not true or false')
        return name, make_parameter(value == "true")
    if kind in ("string", "str"):
        return name, make_parameter(value)
    raise ValueError(f"parameter {name}: unknown type {kind}; use int, double, bool or string")


@dataclasses.dataclass
class StreamResult:
    """How one PredictStream call ended, as the client saw it."""

    code: grpc.StatusCode
    details: str
    request_id: str
    # Output chunks received (the final message, which carries finish_reason
    # and usage but no output, is not counted).
    chunks: int = 0
    output: bytes = b""
    # Name of the FinishReason, set only if the model finished normally.
    finish_reason: str = ""
    usage: Optional["inference_pb2.Usage"] = None
    # True if this client cancelled the call (cancel_after_chunks).
    cancelled_by_client: bool = False
    first_chunk_s: Optional[float] = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK


class SluiceClient:
    """A connection to one sluice server (or a proxy in front of several).

    Thread-safe: calls may be made from several threads at once. Close it (or
    use it as a context manager) to release the channel.
    """

    def __init__(self, target: str, channel: Optional[grpc.Channel] = None):
        self._channel = channel if channel is not None else grpc.insecure_channel(target)
        self._stub = inference_pb2_grpc.InferenceStub(self._channel)

    def __enter__(self) -> "SluiceClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def list_models(self, timeout_s: float = 10.0) -> "inference_pb2.ListModelsResponse":
        return self._stub.ListModels(inference_pb2.ListModelsRequest(), timeout=timeout_s)

    def stream(self,
               model: str,
               input: Union[bytes, str] = b"",
               params: Optional[Mapping[str, ParamValue]] = None,
               *,
               request_id: Optional[str] = None,
               deadline_s: Optional[float] = None,
               cancel_after_chunks: Optional[int] = None,
               on_chunk: Optional[Callable[[bytes], None]] = None) -> StreamResult:
        """Calls PredictStream and reads the stream to its end.

        deadline_s: the call's deadline, sent to the server (grpc-timeout),
            which stops generating when it passes; None for no deadline.
        cancel_after_chunks: cancel the call after receiving this many output
            chunks; the server stops generating as soon as it learns of it.
        on_chunk: called with each chunk's output as it arrives.
        Errors end up in the result's code and details, never as exceptions.
        """
        request = inference_pb2.PredictRequest(
            model=model,
            input=input.encode() if isinstance(input, str) else input,
            request_id=request_id if request_id is not None else uuid.uuid4().hex,
        )
        for name, value in (params or {}).items():
            request.parameters[name].CopyFrom(make_parameter(value))

        start = time.monotonic()
        call = self._stub.PredictStream(request, timeout=deadline_s)
        result = StreamResult(code=grpc.StatusCode.OK, details="", request_id=request.request_id)
        pieces = []
        try:
            for chunk in call:
                if chunk.finish_reason != inference_pb2.FINISH_REASON_UNSPECIFIED:
                    result.finish_reason = inference_pb2.FinishReason.Name(chunk.finish_reason)
                    result.usage = chunk.usage
                    continue
                if result.first_chunk_s is None:
                    result.first_chunk_s = time.monotonic() - start
                result.chunks += 1
                pieces.append(chunk.output)
                if on_chunk is not None:
                    on_chunk(chunk.output)
                if cancel_after_chunks is not None and result.chunks >= cancel_after_chunks:
                    # Sends RST_STREAM(CANCEL); the iterator then ends with CANCELLED.
                    result.cancelled_by_client = True
                    call.cancel()
        except grpc.RpcError:
            pass  # the call's code and details say what happened
        except BaseException:
            # on_chunk raised, or the caller was interrupted: nobody wants the rest.
            call.cancel()
            raise
        result.code = call.code()
        result.details = call.details() or ""
        result.output = b"".join(pieces)
        result.elapsed_s = time.monotonic() - start
        return result


def _status_line(result: StreamResult) -> str:
    fields = [f"status={result.code.name}"]
    if not result.ok:
        fields.append(f'message="{result.details}"')
    if result.cancelled_by_client:
        fields.append("cancelled_by=client")
    if result.finish_reason:
        fields.append(f"finish_reason={result.finish_reason}")
    fields.append(f"chunks={result.chunks}")
    fields.append(f"request_id={result.request_id}")
    if result.first_chunk_s is not None:
        fields.append(f"first_chunk_ms={result.first_chunk_s * 1000:.1f}")
    fields.append(f"total_ms={result.elapsed_s * 1000:.1f}")
    return " ".join(fields)


def _print_models(models: "inference_pb2.ListModelsResponse") -> None:
    for model in models.models:
        print(f"{model.name}: {model.description}")
        for param in model.parameters:
            print(f"  --param {param.name}=<{param.type}>  {param.description}")


def main(argv: Optional[Iterable[str]] = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        # Whoever read our output has gone (e.g. `| head`); the call was
        # cancelled on the way out. Silence the final flush of stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(argv: Optional[Iterable[str]]) -> int:
    parser = argparse.ArgumentParser(
        description="Stream from a sluice server. Chunks go to stdout, the final status to "
        "stderr; the exit code is 0 only if the call ended OK.")
    parser.add_argument("--target", default="127.0.0.1:50051", help="server or proxy, host:port")
    parser.add_argument("--model", help="model to call (see --list_models)")
    parser.add_argument("--input", default="", help="the model's input, e.g. a prompt")
    parser.add_argument("--param", action="append", default=[], metavar="NAME[:TYPE]=VALUE",
                        help="a model parameter; repeat for more (types: int, double, bool, "
                        "string; inferred when omitted)")
    parser.add_argument("--request_id", help="id echoed in the server's logs (default: random)")
    parser.add_argument("--deadline_ms", type=int, default=0,
                        help="deadline for the call in milliseconds; 0 for none")
    parser.add_argument("--cancel_after_chunks", type=int,
                        help="cancel the call after receiving this many chunks")
    parser.add_argument("--list_models", action="store_true",
                        help="list the served models and their parameters, then exit")
    parser.add_argument("--quiet", action="store_true", help="print only the final status")
    args = parser.parse_args(argv)

    with SluiceClient(args.target) as client:
        if args.list_models:
            try:
                _print_models(client.list_models())
            except grpc.RpcError as error:
                print(f"ListModels failed: {error.code().name}: {error.details()}",
                      file=sys.stderr)
                return 1
            return 0
        if not args.model:
            parser.error("--model is required (see --list_models)")
        try:
            params: Dict[str, Any] = dict(parse_parameter(text) for text in args.param)
        except ValueError as error:
            parser.error(str(error))

        def write(output: bytes) -> None:
            if not args.quiet:
                sys.stdout.buffer.write(output)
                sys.stdout.buffer.flush()

        result = client.stream(args.model, args.input, params,
                               request_id=args.request_id,
                               deadline_s=args.deadline_ms / 1000 if args.deadline_ms > 0 else None,
                               cancel_after_chunks=args.cancel_after_chunks,
                               on_chunk=write)
    if result.chunks and not args.quiet:
        sys.stdout.write("\n")
    print(_status_line(result), file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
