#!/usr/bin/env node
// The Node example client against the real stock server: a full stream, a
// mid-stream cancel and a deadline, each checked from the server's side too
// (its --vlog=1 line for the call says how and when generation stopped).

'use strict';

const assert = require('node:assert/strict');
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');

// Bounds every wait for an event that normally takes milliseconds.
const WAIT_MS = 30000;
// A stream that would run for 1000 s unless stopped: one chunk every 10 ms,
// paced by the server.
const LONG_STREAM = { tokens: 100000, token_interval_us: 10000 };
const INTERVAL_MS = 10;
// Chunks the server may make after the cancel or deadline before acting on
// it: the stream's buffer, what is in flight, and a second of slack for a
// loaded machine. Far below the 100000 of a stream that was not stopped.
const SLACK_CHUNKS = 8 + 100;

function runfile(workspaceRelative) {
  return path.join(process.env.TEST_SRCDIR, process.env.TEST_WORKSPACE, workspaceRelative);
}

// This file's real directory is client/node in the source tree: Bazel's
// runfiles (with --spawn_strategy=local) are symlinks to it, and Node resolves
// a main module's symlinks. node_modules, installed there by tools/setup
// (npm ci), is found from there by require() itself.
const CLIENT_DIR = path.dirname(fs.realpathSync(__filename));
const PROTO = runfile('protos/sluice/v1/inference.proto');

function requireInstalledClient() {
  const { mismatches } = require(path.join(CLIENT_DIR, 'check_node_modules.js'));
  let problems;
  try {
    problems = mismatches(CLIENT_DIR);
  } catch (error) {
    problems = [error.message];
  }
  if (problems.length > 0) {
    throw new Error(`${CLIENT_DIR}/node_modules does not match package-lock.json ` +
                    `(run tools/setup, which runs npm ci there):\n  ${problems.join('\n  ')}`);
  }
  return require(path.join(CLIENT_DIR, 'sluice_client.js'));
}

// waitFor: resolves with check()'s first truthy result, re-checked whenever
// `emitter` emits one of `events`; rejects after timeoutMs with `what`.
function waitFor(emitter, events, check, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const done = (fn, value) => {
      clearTimeout(timer);
      for (const e of events) emitter.off(e, onEvent);
      fn(value);
    };
    const onEvent = () => {
      let result;
      try {
        result = check();
      } catch (error) {
        return done(reject, error);
      }
      if (result) done(resolve, result);
    };
    const timer = setTimeout(() => done(reject, new Error(`timed out waiting for ${what}`)),
                             timeoutMs);
    for (const e of events) emitter.on(e, onEvent);
    onEvent();
  });
}

// Server: the stock sluice_server on a free loopback port, logging every
// ended call. Its stderr is kept line by line; 'line' fires for each.
class Server extends require('node:events') {
  static async start() {
    const server = new Server();
    await server.started;
    return server;
  }

  constructor() {
    super();
    this.dir = fs.mkdtempSync(path.join(process.env.TEST_TMPDIR, 'server-'));
    const portFile = path.join(this.dir, 'port');
    this.lines = [];
    this.exited = false;
    this.child = spawn(runfile('service/sluice_server'),
                       ['--port=0', `--port_file=${portFile}`, '--metrics_port=-1', '--vlog=1'],
                       { stdio: ['ignore', 'ignore', 'pipe'] });
    let partial = '';
    this.child.stderr.setEncoding('utf8').on('data', (text) => {
      const pieces = (partial + text).split('\n');
      partial = pieces.pop();
      for (const line of pieces) {
        this.lines.push(line);
        this.emit('line', line);
      }
    });
    this.child.on('exit', () => {
      this.exited = true;
      this.emit('exited');
    });
    // The port file is renamed into place once the server listens.
    const watcher = fs.watch(this.dir);
    watcher.on('change', () => this.emit('dir'));
    this.started = waitFor(this, ['dir', 'exited'], () => {
      if (fs.existsSync(portFile)) return fs.readFileSync(portFile, 'utf8').trim();
      if (this.exited) throw new Error(`sluice_server exited:\n${this.lines.join('\n')}`);
      return null;
    }, WAIT_MS, 'the server to listen').then((port) => {
      this.target = `127.0.0.1:${port}`;
    }).finally(() => watcher.close());
  }

  // ended: the fields of the server's ended-call line for requestId, e.g.
  // {ended: 'client_cancelled', code: 'CANCELLED', chunks: '3', ...}.
  ended(requestId) {
    const find = () => {
      for (const line of this.lines) {
        const match = / (?:Predict|PredictStream) (model=.* ended=.*)$/.exec(line);
        if (!match) continue;
        const fields = Object.fromEntries(
            match[1].split(' ').filter((f) => f.includes('=')).map((f) => {
              const eq = f.indexOf('=');
              return [f.slice(0, eq), f.slice(eq + 1)];
            }));
        if (fields.request_id === requestId) return fields;
      }
      if (this.exited) throw new Error('the server exited');
      return null;
    };
    return waitFor(this, ['line', 'exited'], find, WAIT_MS,
                   `the server to end ${requestId}:\n${this.lines.join('\n')}`);
  }

  // stop: SIGTERM to the server this test started, by its PID; waits for it.
  stop() {
    if (this.exited) return Promise.resolve();
    const exited = waitFor(this, ['exited'], () => this.exited, WAIT_MS, 'the server to exit');
    this.child.kill('SIGTERM');
    return exited.catch((error) => {
      this.child.kill('SIGKILL');
      throw error;
    });
  }
}

let sluice;
let server;
let client;

before(async () => {
  sluice = requireInstalledClient();
  server = await Server.start();
  client = new sluice.SluiceClient(server.target, { protoPath: PROTO });
});

after(async () => {
  if (client) client.close();
  if (server) await server.stop();
});

test('a full stream ends OK with every chunk', async () => {
  const result = await client.stream({ model: 'synthetic', params: { tokens: 5, chunk_bytes: 3 } });
  assert.equal(result.codeName, 'OK', result.details);
  assert.equal(result.chunks, 5);
  assert.equal(result.output.toString(), 't0 t1 t2 t3 t4 ');
  assert.equal(result.finishReason, 'FINISH_REASON_LENGTH');
  assert.equal(result.usage.output_chunks, 5);
  const fields = await server.ended(result.requestId);
  assert.deepEqual([fields.ended, fields.code, fields.chunks], ['completed', 'OK', '5']);
});

test('a cancel mid-stream stops generation', async () => {
  // The deadline only bounds the test should the cancel not work.
  const result = await client.stream({ model: 'synthetic', params: LONG_STREAM },
                                     { cancelAfterChunks: 3, deadlineMs: WAIT_MS });
  assert.equal(result.codeName, 'CANCELLED', result.details);
  assert.ok(result.cancelledByClient);
  assert.equal(result.chunks, 3);
  const fields = await server.ended(result.requestId);
  assert.equal(fields.ended, 'client_cancelled');
  assert.equal(fields.code, 'CANCELLED');
  assert.ok(Number(fields.chunks) >= 3, fields.chunks);
  assert.ok(Number(fields.chunks) <= 3 + SLACK_CHUNKS, fields.chunks);
});

test('a deadline stops generation', async () => {
  // grpc-js fixes a call's grpc-timeout before the channel connects, so on a
  // channel still connecting the client's deadline comes well before the
  // server's; with the channel ready they are the same moment.
  await client.listModels();
  const result = await client.stream({ model: 'synthetic', params: LONG_STREAM },
                                     { deadlineMs: 300 });
  assert.equal(result.codeName, 'DEADLINE_EXCEEDED', result.details);
  assert.ok(result.chunks > 0);
  const fields = await server.ended(result.requestId);
  // The server's deadline comes from the call's grpc-timeout header and the
  // client resets the stream at its own deadline: the server ends the call on
  // whichever reaches it first. Usually its own timer; on a loaded machine the
  // client's reset may come first, which it counts as a cancel.
  const ending = `ended=${fields.ended} code=${fields.code}`;
  assert.ok(['ended=deadline code=DEADLINE_EXCEEDED', 'ended=client_cancelled code=CANCELLED']
      .includes(ending), ending);
  assert.ok(Number(fields.chunks) <= 300 / INTERVAL_MS + SLACK_CHUNKS, fields.chunks);
});

test('the CLI streams, cancels and exits with the status', async () => {
  const requestId = `cli-${process.pid}`;
  const { code, stdout, stderr } = await new Promise((resolve) => {
    execFile(process.execPath,
             [path.join(CLIENT_DIR, 'sluice_client.js'), `--target=${server.target}`,
              '--model=synthetic', '--param=tokens=100000', '--param', 'token_interval_us=10000',
              '--cancel_after_chunks=2', '--deadline_ms=30000', `--request_id=${requestId}`],
             { env: { ...process.env, SLUICE_PROTO: PROTO }, timeout: WAIT_MS },
             (error, out, err) => {
               resolve({ code: error ? error.code : 0, stdout: out, stderr: err });
             });
  });
  assert.equal(code, 1, stderr);
  assert.equal(stdout, 't0 t1 \n');
  assert.match(stderr, /status=CANCELLED /);
  assert.match(stderr, new RegExp(`cancelled_by=client chunks=2 request_id=${requestId} `));
  // The CLI exits right after cancelling, so the server may see the closed
  // connection before the cancel: either way it stops.
  const fields = await server.ended(requestId);
  assert.ok(['client_cancelled', 'disconnected'].includes(fields.ended), fields.ended);
  assert.ok(Number(fields.chunks) <= 2 + SLACK_CHUNKS, fields.chunks);
});

test('parameters are typed like sluice_cli types them', () => {
  const { parseParameter, makeParameter } = sluice;
  assert.deepEqual(parseParameter('tokens=5'), ['tokens', { int64_param: '5' }]);
  assert.deepEqual(parseParameter('temperature=0.5'), ['temperature', { double_param: 0.5 }]);
  assert.deepEqual(parseParameter('flag=false'), ['flag', { bool_param: false }]);
  assert.deepEqual(parseParameter('name=a=b'), ['name', { string_param: 'a=b' }]);
  assert.deepEqual(parseParameter('temperature:double=1'), ['temperature', { double_param: 1 }]);
  assert.deepEqual(parseParameter('seed:string=7'), ['seed', { string_param: '7' }]);
  for (const bad of ['novalue', '=5', 'tokens:int=x', 'flag:bool=yes', 'x:complex=1']) {
    assert.throws(() => parseParameter(bad), Error, bad);
  }
  assert.deepEqual(makeParameter(2), { int64_param: 2 });
  assert.deepEqual(makeParameter(0.25), { double_param: 0.25 });
  assert.deepEqual(makeParameter({ double_param: 1 }), { double_param: 1 });
  assert.throws(() => makeParameter(null), TypeError);
});
