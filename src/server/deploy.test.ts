// deploy/ against the server it deploys: every metric the Kubernetes manifests and the endpoint picker's settings name
// is served by a running server's /metrics (with the labels the picker reads); the manifests agree with each other
// (selectors, ports, names); the Dockerfile's and the Deployment's flags are ones `redrafter serve` accepts. Then the
// gauges the picker routes by move with the load, and the speculation counters add up to the responses' timings.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { post, skip, startServer, type Running } from '../../test/server.js';
import { schedulerFor } from '../engine/scheduler.js';

// Compiled to dist/src/server: the checkout is three folders up.
const checkout = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const deployDir = join(checkout, 'deploy');
const main = join(checkout, 'dist', 'src', 'cli', 'main.js');

type Doc = Record<string, unknown>;

function manifests(): { file: string; doc: Doc }[] {
  const out: { file: string; doc: Doc }[] = [];
  const dir = join(deployDir, 'kubernetes');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const document of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      assert.equal(document.errors.length, 0, `${file}: ${document.errors.map((e) => e.message).join('; ')}`);
      out.push({ file, doc: document.toJS() as Doc });
    }
  }
  return out;
}

/** The value at a dotted path ("spec.template.metadata.labels"), for reading manifests without a type per kind. */
function at(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = /^\d+$/.test(key) ? (current as unknown[])[Number(key)] : (current as Record<string, unknown>)[key];
  }
  return current;
}

function find(docs: { doc: Doc }[], kind: string, name: string): Doc {
  const found = docs.find(({ doc }) => doc['kind'] === kind && at(doc, 'metadata.name') === name);
  assert.ok(found, `${kind} ${name} not in deploy/kubernetes`);
  return found.doc;
}

interface EngineConfig {
  name: string;
  queuedRequestsSpec: string;
  runningRequestsSpec: string;
  kvUsageSpec: string;
  loraSpec: string;
  cacheInfoSpec: string;
  cacheBlockSizeLabelName?: string;
  cacheNumBlocksLabelName?: string;
}

/** The EndpointPickerConfig inside the EPP's ConfigMap and the core-metrics-extractor's redrafter engine. */
function pickerConfig(docs: { doc: Doc }[]): { config: Doc; engine: EngineConfig; defaultEngine: unknown;
  labelKey: unknown } {
  const configMap = find(docs, 'ConfigMap', 'redrafter-epp');
  // The key has a dot in it: read it directly, not through at().
  const config = parseYaml((configMap['data'] as Record<string, string>)['config.yaml']) as Doc;
  assert.equal(config['kind'], 'EndpointPickerConfig');
  const plugins = config['plugins'] as { type: string; parameters?: Doc }[];
  const extractor = plugins.find((p) => p.type === 'core-metrics-extractor');
  assert.ok(extractor?.parameters, 'core-metrics-extractor with parameters');
  const engines = extractor.parameters['engineConfigs'] as EngineConfig[];
  const engine = engines.find((e) => e.name === 'redrafter');
  assert.ok(engine, 'an engineConfigs entry named redrafter');
  return { config, engine, defaultEngine: extractor.parameters['defaultEngine'],
    labelKey: extractor.parameters['engineLabelKey'] };
}

/** Every redrafter metric name written anywhere under deploy/ (specs, flags in comments), and in the README section. */
function namedMetrics(): Set<string> {
  const texts = [readFileSync(join(deployDir, 'Dockerfile'), 'utf8'),
    ...readdirSync(join(deployDir, 'kubernetes')).map((f) => readFileSync(join(deployDir, 'kubernetes', f), 'utf8'))];
  const readme = readFileSync(join(checkout, 'README.md'), 'utf8');
  const section = /^## Scale-out behind an inference gateway$([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  assert.ok(section, 'README has a "Scale-out behind an inference gateway" section');
  texts.push(section);
  // A letter after "redrafter:" leaves out image tags (redrafter:0.1.0).
  return new Set(texts.flatMap((text) => text.match(/\bredrafter(?::|_)[a-z][a-z0-9_:]*/g) ?? []));
}

/** Flags (--name) in an argument list, after `serve` where it is there. */
function flagsOf(args: readonly string[]): string[] {
  return args.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]);
}

const help = (): string => execFileSync(process.execPath, [main, 'serve', '--help'], { encoding: 'utf8' });

let server: Running;
before(async () => {
  // One sequence at a time, so that a second request waits and the queue gauge shows it.
  if (!skip) server = await startServer({ maxSequences: 1 });
});
after(async () => {
  if (!skip) await server.close();
});

async function scrape(): Promise<string> {
  const response = await fetch(`${server.url}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/** The samples of one metric family: labels (as a record) and value. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const match of text.matchAll(new RegExp(`^${escaped}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    const labels: Record<string, string> = {};
    for (const pair of (match[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1]] = pair[2];
    out.push({ labels, value: Number(match[2]) });
  }
  return out;
}

test('every metric the manifests, the EPP settings and the README section name is served, with the picker\'s labels',
  { skip }, async () => {
    // Some traffic first, so that labelled counters have samples.
    const warm = await post(`${server.url}/v1/completions`, { prompt: 'Once', max_tokens: 8, temperature: 0,
      speculative: { beams: 2, beam_length: 3 } });
    assert.equal(warm.status, 200);
    const text = await scrape();
    const names = namedMetrics();
    const { engine } = pickerConfig(manifests());
    for (const spec of [engine.queuedRequestsSpec, engine.runningRequestsSpec, engine.kvUsageSpec, engine.cacheInfoSpec]) {
      assert.ok(names.has(spec), spec);
    }
    assert.equal(engine.loraSpec, '', 'no LoRA: the LoRA scrape is off');
    assert.ok(names.size >= 4, [...names].join(', '));
    for (const name of names) {
      assert.match(text, new RegExp(`^# TYPE ${name.replace(/[:_]/g, '[:_]')} `, 'm'), `${name} is not served`);
      // Histograms are served as _bucket/_sum/_count; everything else needs a sample of its own name.
      if (!/^# TYPE \S+ histogram$/m.test(text.split('\n').find((l) => l.startsWith(`# TYPE ${name} `)) ?? '')) {
        assert.ok(samples(text, name).length > 0, `${name} has no sample`);
      }
    }
    // The three gauges are plain numbers; the info gauge is 1 with the labels the picker reads (its defaults, or the
    // names the engine config sets).
    for (const gauge of [engine.queuedRequestsSpec, engine.runningRequestsSpec, engine.kvUsageSpec]) {
      assert.match(text, new RegExp(`^# TYPE ${gauge} gauge$`, 'm'));
    }
    const info = samples(text, engine.cacheInfoSpec);
    assert.equal(info.length, 1);
    assert.equal(info[0].value, 1);
    const blockSize = Number(info[0].labels[engine.cacheBlockSizeLabelName ?? 'block_size']);
    const blocks = Number(info[0].labels[engine.cacheNumBlocksLabelName ?? 'num_gpu_blocks']);
    assert.ok(Number.isInteger(blockSize) && blockSize >= 1, JSON.stringify(info));
    // The paged KV pool's own block size and count.
    const pool = schedulerFor(server.loaded).pool;
    assert.equal(blockSize, pool.blockSize);
    assert.equal(blocks, pool.blocks);
  });

test('the manifests agree: labels, selectors, ports, the picker\'s names; every flag is one serve accepts', async () => {
  const docs = manifests();
  const deployment = find(docs, 'Deployment', 'redrafter');
  const podLabels = at(deployment, 'spec.template.metadata.labels') as Record<string, string>;
  const container = at(deployment, 'spec.template.spec.containers.0') as Doc;
  const args = container['args'] as string[];
  const serveHelp = help();
  for (const flag of flagsOf(args)) assert.ok(serveHelp.includes(`${flag} `), `Deployment: serve has no ${flag}`);
  const port = Number(args[args.indexOf('--port') + 1]);
  assert.equal(args[args.indexOf('--host') + 1], '0.0.0.0');
  assert.equal(at(container, 'ports.0.containerPort'), port);
  for (const probe of ['readinessProbe', 'startupProbe', 'livenessProbe']) {
    assert.equal(at(container, `${probe}.httpGet.path`), '/health', probe);
  }
  assert.ok(at(container, 'resources.requests.cpu') && at(container, 'resources.limits.memory'));
  assert.equal(at(container, 'resources.requests.cpu'), args[args.indexOf('--threads') + 1], '--threads = CPU request');
  // Pods must outlive the server's own shutdown deadline.
  assert.ok(Number(at(deployment, 'spec.template.spec.terminationGracePeriodSeconds')) >
    Number(args[args.indexOf('--shutdown-timeout') + 1]));
  assert.equal(at(deployment, 'spec.template.spec.securityContext.runAsNonRoot'), true);

  const service = find(docs, 'Service', 'redrafter');
  for (const [key, value] of Object.entries(at(service, 'spec.selector') as Record<string, string>)) {
    assert.equal(podLabels[key], value, `Service selector ${key}`);
  }
  const pool = find(docs, 'InferencePool', 'redrafter');
  assert.equal(pool['apiVersion'], 'inference.networking.k8s.io/v1');
  for (const [key, value] of Object.entries(at(pool, 'spec.selector.matchLabels') as Record<string, string>)) {
    assert.equal(podLabels[key], value, `InferencePool selector ${key}`);
  }
  assert.equal(at(pool, 'spec.targetPorts.0.number'), port);
  const { engine, defaultEngine, labelKey } = pickerConfig(docs);
  assert.equal(podLabels[String(labelKey)], engine.name, 'the pods carry the engine label of our engineConfigs');
  assert.equal(defaultEngine, engine.name);
  const pickerName = at(pool, 'spec.endpointPickerRef.name');
  const pickerPort = at(pool, 'spec.endpointPickerRef.port.number');
  const pickerService = find(docs, 'Service', String(pickerName));
  assert.ok((at(pickerService, 'spec.ports') as { port: number }[]).some((p) => p.port === pickerPort));
  const picker = find(docs, 'Deployment', String(pickerName));
  const pickerArgs = at(picker, 'spec.template.spec.containers.0.args') as string[];
  assert.equal(pickerArgs[pickerArgs.indexOf('--pool-name') + 1], at(pool, 'metadata.name'));
  assert.equal(pickerArgs[pickerArgs.indexOf('--config-file') + 1], '/config/config.yaml');
  // EPP v1.5 fails to start when a deprecated per-metric flag is set: they may only appear in comments.
  assert.ok(!pickerArgs.some((a) => /-metric(=|$)/.test(a)), pickerArgs.join(' '));
  const route = find(docs, 'HTTPRoute', 'redrafter');
  assert.deepEqual(at(route, 'spec.rules.0.backendRefs.0'), { group: 'inference.networking.k8s.io',
    kind: 'InferencePool', name: 'redrafter' });

  // The Dockerfile: a slim Node 22+ image, a non-root user, exec-form `serve` with flags serve accepts, the port it
  // exposes and health-checks.
  const dockerfile = readFileSync(join(deployDir, 'Dockerfile'), 'utf8');
  const instruction = (name: string): string[] => [...dockerfile.matchAll(new RegExp(`^${name} (.*)$`, 'gm'))]
    .map((m) => m[1]);
  for (const from of instruction('FROM')) assert.match(from, /^node:(22|24)-slim( AS \w+)?$/);
  assert.match(instruction('USER').at(-1) ?? '', /^(node|\d*[1-9]\d*)$/, 'a non-root user');
  const entrypoint = JSON.parse(instruction('ENTRYPOINT')[0]) as string[];
  const cmd = JSON.parse(instruction('CMD')[0]) as string[];
  assert.deepEqual(entrypoint.slice(-2), ['dist/src/cli/main.js', 'serve']);
  for (const flag of flagsOf(cmd)) assert.ok(serveHelp.includes(`${flag} `), `Dockerfile: serve has no ${flag}`);
  assert.equal(cmd[cmd.indexOf('--host') + 1], '0.0.0.0');
  const dockerPort = cmd[cmd.indexOf('--port') + 1];
  assert.equal(instruction('EXPOSE')[0], dockerPort);
  assert.match(dockerfile, new RegExp(`^HEALTHCHECK [^]*?http://127\\.0\\.0\\.1:${dockerPort}/health`, 'm'));
});

test('the gauges the picker routes by move with the load and return to idle', { skip }, async () => {
  const gauge = (text: string, name: string): number => samples(text, name)[0]?.value ?? NaN;
  const idle = await scrape();
  assert.equal(gauge(idle, 'redrafter:num_requests_running'), 0);
  assert.equal(gauge(idle, 'redrafter:kv_cache_usage_perc'), 0);
  const controllers = [new AbortController(), new AbortController()];
  const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: 400, temperature: 1, seed: 9, stream: true,
    speculative: false });
  const first = await fetch(`${server.url}/v1/completions`, { method: 'POST', body, signal: controllers[0].signal,
    headers: { 'content-type': 'application/json' } });
  const reader = first.body!.getReader();
  await reader.read();
  // The second waits behind the first (this server runs one sequence at a time; the queue's gauge shows it).
  const second = fetch(`${server.url}/v1/completions`, { method: 'POST', body, signal: controllers[1].signal,
    headers: { 'content-type': 'application/json' } }).catch(() => undefined);
  let busy = '';
  for (let i = 0; i < 100; i++) {
    busy = await scrape();
    if (gauge(busy, 'redrafter:num_requests_waiting') === 1) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(gauge(busy, 'redrafter:num_requests_running'), 1);
  assert.equal(gauge(busy, 'redrafter:num_requests_waiting'), 1);
  const usage = gauge(busy, 'redrafter:kv_cache_usage_perc');
  assert.ok(usage > 0 && usage <= 1, `kv_cache_usage_perc ${usage}`);
  for (const controller of controllers) controller.abort();
  await second;
  let after = '';
  for (let i = 0; i < 100; i++) {
    after = await scrape();
    if (gauge(after, 'redrafter:num_requests_running') === 0 && gauge(after, 'redrafter:num_requests_waiting') === 0) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(gauge(after, 'redrafter:num_requests_running'), 0);
  assert.equal(gauge(after, 'redrafter:num_requests_waiting'), 0);
  assert.equal(gauge(after, 'redrafter:kv_cache_usage_perc'), 0);
});

test('the speculation counters add up to the responses\' timings', { skip }, async () => {
  const totals = (text: string): Record<string, number> => {
    const sum = (name: string): number => samples(text, name).reduce((a, s) => a + s.value, 0);
    return { draft: sum('redrafter_draft_tokens_total'), accepted: sum('redrafter_draft_tokens_accepted_total'),
      byDepth: sum('redrafter_draft_tokens_accepted_by_depth_total'), steps: sum('redrafter_decode_steps_total'),
      tokens: sum('redrafter_generation_tokens_total') };
  };
  const before = totals(await scrape());
  const seen = { draft: 0, accepted: 0, byDepth: 0, steps: 0, tokens: 0 };
  for (const speculative of [{ beams: 2, beam_length: 4 }, { beams: 1, beam_length: 6 }, 'auto', false]) {
    const response = await post(`${server.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 40,
      temperature: 0, speculative });
    assert.equal(response.status, 200);
    const timings = response.json['timings'] as { draft_n: number; draft_n_accepted: number; steps: number;
      predicted_n: number };
    seen.draft += timings.draft_n;
    seen.accepted += timings.draft_n_accepted;
    seen.byDepth += timings.draft_n_accepted;
    seen.steps += timings.steps;
    seen.tokens += timings.predicted_n;
  }
  assert.ok(seen.draft > 0 && seen.accepted > 0, JSON.stringify(seen));
  const after = totals(await scrape());
  for (const key of Object.keys(seen) as (keyof typeof seen)[]) {
    assert.equal(after[key] - before[key], seen[key], key);
  }
});
