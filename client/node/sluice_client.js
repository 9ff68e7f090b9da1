#!/usr/bin/env node
// Call a sluice server from Node.js: stream, cancel mid-stream, set a deadline.
//
// Uses @grpc/grpc-js and loads the wire contract (protos/sluice/v1/inference.proto)
// at run time with @grpc/proto-loader, so nothing is generated. Install the
// dependencies once with `npm ci` in this directory (tools/setup does it).
//
// As a command:
//   node client/node/sluice_client.js --model=synthetic --param tokens=1000 \
//       --param token_interval_us=10000 --cancel_after_chunks=5
// As a module:
//   const { SluiceClient } = require('./client/node/sluice_client');
//   const client = new SluiceClient('127.0.0.1:50051');
//   const result = await client.stream({ model: 'charlm', input: 'The river',
//                                        params: { max_tokens: 40 } }, { deadlineMs: 2000 });
//   client.close();
//
// Chunks go to stdout as they arrive; the final status goes to stderr. The
// exit code is 0 only if the call ended OK.

'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// The repository's copy of the contract, found from this file's real location.
const DEFAULT_PROTO = path.resolve(__dirname, '..', '..', 'protos', 'sluice', 'v1',
                                   'inference.proto');

const CODE_NAMES = Object.fromEntries(
    Object.entries(grpc.status).map(([name, code]) => [code, name]));

// loadInference: the sluice.v1.Inference service constructor from the .proto.
function loadInference(protoPath = process.env.SLUICE_PROTO || DEFAULT_PROTO) {
  const definition = protoLoader.loadSync(protoPath, {
    keepCase: true,  // field names as in the .proto: request_id, finish_reason
    longs: Number,   // uint64 counts fit easily
    enums: String,   // finish_reason as 'FINISH_REASON_STOP'
    defaults: true,  // unset fields read as their defaults
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).sluice.v1.Inference;
}

// makeParameter: the Parameter message for a JS value. Numbers that are whole
// are sent as int64 (a model accepts an int64 for a double parameter, not the
// reverse); pass {double_param: 1} to force a double. BigInts are int64.
function makeParameter(value) {
  switch (typeof value) {
    case 'boolean': return { bool_param: value };
    case 'bigint': return { int64_param: value.toString() };
    case 'number':
      return Number.isInteger(value) ? { int64_param: value } : { double_param: value };
    case 'string': return { string_param: value };
    case 'object':
      if (value !== null && Object.keys(value).length === 1 &&
          ['bool_param', 'int64_param', 'double_param', 'string_param'].includes(
              Object.keys(value)[0])) {
        return value;
      }
  }
  throw new TypeError(`parameter value ${String(value)} must be a boolean, number, bigint, ` +
                      'string or a Parameter such as {double_param: 1}');
}

// parseParameter: "name=value" or "name:type=value", as sluice_cli reads them.
// Without a type the value is a bool (true/false), else an integer, else a
// number, else a string. Types: int, double, bool, string.
function parseParameter(text) {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`parameter "${text}" must look like name=value or name:type=value`);
  let name = text.slice(0, eq);
  const value = text.slice(eq + 1);
  let type = '';
  const colon = name.indexOf(':');
  if (colon >= 0) {
    type = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  const isInt = /^[+-]?\d+$/.test(value);
  const isNumber = value.trim() !== '' && Number.isFinite(Number(value));
  const bad = (what) => new Error(`parameter ${name}: "${value}" is not ${what}`);
  switch (type) {
    case '':
      if (value === 'true' || value === 'false') return [name, { bool_param: value === 'true' }];
      if (isInt) return [name, { int64_param: value }];
      if (isNumber) return [name, { double_param: Number(value) }];
      return [name, { string_param: value }];
    case 'int': case 'int64':
      if (!isInt) throw bad('an integer');
      return [name, { int64_param: value }];
    case 'double': case 'float':
      if (!isNumber) throw bad('a number');
      return [name, { double_param: Number(value) }];
    case 'bool':
      if (value !== 'true' && value !== 'false') throw bad('true or false');
      return [name, { bool_param: value === 'true' }];
    case 'string': case 'str':
      return [name, { string_param: value }];
    default:
      throw new Error(`parameter ${name}: unknown type ${type}; use int, double, bool or string`);
  }
}

// SluiceClient: a connection to one sluice server (or a proxy in front of several).
class SluiceClient {
  constructor(target, { protoPath, credentials } = {}) {
    const Inference = loadInference(protoPath);
    this.stub = new Inference(target, credentials || grpc.credentials.createInsecure());
  }

  close() {
    this.stub.close();
  }

  listModels({ deadlineMs = 10000 } = {}) {
    return new Promise((resolve, reject) => {
      this.stub.ListModels({}, { deadline: Date.now() + deadlineMs }, (error, response) => {
        if (error) reject(error); else resolve(response);
      });
    });
  }

  // stream: calls PredictStream and reads the stream to its end. Resolves
  // (never rejects) with how the call ended:
  //   {code, codeName, details, requestId, chunks, output (Buffer), finishReason,
  //    usage, cancelledByClient, firstChunkMs, elapsedMs}
  // chunks counts output chunks; the final message (finish_reason and usage,
  // no output) is not one.
  //   deadlineMs: the call's deadline, sent to the server (grpc-timeout), which
  //     stops generating when it passes.
  //   cancelAfterChunks: cancel after receiving this many chunks; the server
  //     stops generating as soon as it learns of it.
  //   onChunk(Buffer): called with each chunk's output as it arrives.
  stream({ model, input = '', params = {}, requestId }, options = {}) {
    const { deadlineMs, cancelAfterChunks, onChunk } = options;
    const request = {
      model,
      input: Buffer.isBuffer(input) ? input : Buffer.from(String(input)),
      parameters: Object.fromEntries(
          Object.entries(params).map(([name, value]) => [name, makeParameter(value)])),
      request_id: requestId || crypto.randomUUID(),
    };
    const callOptions = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
    const start = process.hrtime.bigint();
    const sinceStartMs = () => Number(process.hrtime.bigint() - start) / 1e6;
    const result = {
      code: grpc.status.OK, codeName: 'OK', details: '', requestId: request.request_id,
      chunks: 0, output: Buffer.alloc(0), finishReason: '', usage: null,
      cancelledByClient: false, firstChunkMs: null, elapsedMs: 0,
    };
    const pieces = [];
    return new Promise((resolve) => {
      const call = this.stub.PredictStream(request, callOptions);
      call.on('data', (chunk) => {
        if (chunk.finish_reason !== 'FINISH_REASON_UNSPECIFIED') {
          result.finishReason = chunk.finish_reason;
          result.usage = chunk.usage;
          return;
        }
        if (result.cancelledByClient) return;  // already in flight when we cancelled
        if (result.firstChunkMs === null) result.firstChunkMs = sinceStartMs();
        result.chunks += 1;
        pieces.push(chunk.output);
        if (onChunk) onChunk(chunk.output);
        if (cancelAfterChunks != null && result.chunks >= cancelAfterChunks) {
          // Sends RST_STREAM(CANCEL); the call then ends with CANCELLED.
          result.cancelledByClient = true;
          call.cancel();
        }
      });
      // A failed call emits 'error' before 'status'; 'status' carries it too.
      call.on('error', () => {});
      call.on('status', (status) => {
        result.code = status.code;
        result.codeName = CODE_NAMES[status.code] || String(status.code);
        result.details = status.code === grpc.status.OK ? '' : status.details;
        result.output = Buffer.concat(pieces);
        result.elapsedMs = sinceStartMs();
        resolve(result);
      });
    });
  }
}

function statusLine(result) {
  const fields = [`status=${result.codeName}`];
  if (result.code !== grpc.status.OK) fields.push(`message="${result.details}"`);
  if (result.cancelledByClient) fields.push('cancelled_by=client');
  if (result.finishReason) fields.push(`finish_reason=${result.finishReason}`);
  fields.push(`chunks=${result.chunks}`, `request_id=${result.requestId}`);
  if (result.firstChunkMs !== null) fields.push(`first_chunk_ms=${result.firstChunkMs.toFixed(1)}`);
  fields.push(`total_ms=${result.elapsedMs.toFixed(1)}`);
  return fields.join(' ');
}

const USAGE = `Stream from a sluice server. Chunks go to stdout, the final status to stderr;
the exit code is 0 only if the call ended OK.

  --target=HOST:PORT            server or proxy (default 127.0.0.1:50051)
  --model=NAME                  model to call (see --list_models)
  --input=TEXT                  the model's input, e.g. a prompt
  --param NAME[:TYPE]=VALUE     a model parameter; repeat for more (types: int,
                                double, bool, string; inferred when omitted)
  --request_id=ID               id echoed in the server's logs (default: random)
  --deadline_ms=N               deadline for the call; 0 for none
  --cancel_after_chunks=N       cancel the call after receiving N chunks
  --list_models                 list the served models and their parameters
  --quiet                       print only the final status
`;

async function main(argv) {
  let args;
  try {
    ({ values: args } = parseArgs({
      args: argv,
      options: {
        target: { type: 'string', default: '127.0.0.1:50051' },
        model: { type: 'string' },
        input: { type: 'string', default: '' },
        param: { type: 'string', multiple: true, default: [] },
        request_id: { type: 'string' },
        deadline_ms: { type: 'string', default: '0' },
        cancel_after_chunks: { type: 'string' },
        list_models: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const client = new SluiceClient(args.target);
  try {
    if (args.list_models) {
      try {
        const { models } = await client.listModels();
        for (const m of models) {
          process.stdout.write(`${m.name}: ${m.description}\n`);
          for (const p of m.parameters) {
            process.stdout.write(`  --param ${p.name}=<${p.type}>  ${p.description}\n`);
          }
        }
        return 0;
      } catch (error) {
        process.stderr.write(`ListModels failed: ${CODE_NAMES[error.code]}: ${error.details}\n`);
        return 1;
      }
    }
    if (!args.model) {
      process.stderr.write('--model is required (see --list_models)\n');
      return 2;
    }
    const numbers = {};
    for (const flag of ['deadline_ms', 'cancel_after_chunks']) {
      if (args[flag] === undefined) continue;
      if (!/^\d+$/.test(args[flag])) {
        process.stderr.write(`--${flag} must be a whole number, got "${args[flag]}"\n`);
        return 2;
      }
      numbers[flag] = Number(args[flag]);
    }
    let params;
    try {
      params = Object.fromEntries(args.param.map(parseParameter));
    } catch (error) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    const result = await client.stream(
        { model: args.model, input: args.input, params, requestId: args.request_id },
        {
          deadlineMs: numbers.deadline_ms || undefined,
          cancelAfterChunks: numbers.cancel_after_chunks,
          onChunk: args.quiet ? undefined : (output) => process.stdout.write(output),
        });
    if (result.chunks > 0 && !args.quiet) process.stdout.write('\n');
    process.stderr.write(`${statusLine(result)}\n`);
    return result.code === grpc.status.OK ? 0 : 1;
  } finally {
    client.close();
  }
}

module.exports = { SluiceClient, loadInference, makeParameter, parseParameter, DEFAULT_PROTO };

if (require.main === module) {
  // Whoever read our output has gone (e.g. `| head`): exit, which closes the
  // connection, and the server stops the call.
  process.stdout.on('error', (error) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(1);
  });
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
