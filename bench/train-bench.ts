// Drafter training throughput (positions/s): forwardBackward + clipGradients + adamWStep at the default recipe's
// shapes (stories260K: H = 64, V = 512; E, blocks, T, batch and soft-target weight of DEFAULT_RECIPE) on random data.
// With --compare <dist>, a second build (e.g. a copy of dist/ made before a change) is loaded in the same process
// and the two are measured in alternation, round after round, so that noise from other processes lands on both
// alike; it prints the ratio of the medians and the median of the ratios of back-to-back rounds. Times are printed,
// never asserted.
// Run: node dist/bench/train-bench.js [--threads 1] [--rounds 7] [--updates 8] [--compare /tmp/base-dist]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as kernelsModule from '../src/kernels/index.js';
import * as graphModule from '../src/train/graph.js';
import * as optimModule from '../src/train/optim.js';
import { randomDrafter } from '../src/drafter/checkpoint.js';
import { DEFAULT_RECIPE } from '../src/train/recipe.js';
import type { LlamaConfig } from '../src/model/config.js';

interface Build {
  name: string;
  kernels: typeof kernelsModule;
  graph: typeof graphModule;
  optim: typeof optimModule;
}

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

const threads = option('threads', 1);
const rounds = option('rounds', 7);
const updates = option('updates', 8);
const compareAt = process.argv.indexOf('--compare');
const compareDir = compareAt >= 0 ? process.argv[compareAt + 1] : null;

const H = 64;
const V = 512;
const E = DEFAULT_RECIPE.exitDim;
const R = DEFAULT_RECIPE.layers;
const T = DEFAULT_RECIPE.predict;
const B = DEFAULT_RECIPE.batch;
const SOFT = DEFAULT_RECIPE.softWeight;

const base: LlamaConfig = {
  dim: H, hiddenDim: 4 * H, nLayers: 1, nHeads: 2, nKvHeads: 2, headDim: H / 2, vocabSize: V, maxSequenceLength: 256,
  normEps: 1e-5, ropeTheta: 10000, ropeLayout: 'pairs', ropeScaling: null, tiedClassifier: true, qkvBias: false,
  bosId: 1, eosIds: [2],
};

function fillRandom(a: Float32Array | Int32Array, seed: number, scale: number, ints = 0): void {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ints > 0 ? Math.floor((s / 2 ** 32) * ints) : (s / 2 ** 32 - 0.5) * scale;
  }
}

interface Runner {
  build: Build;
  /** Runs `count` updates; returns positions per second of wall time and of this process's CPU time. */
  run(count: number): { wall: number; cpu: number };
  close(): Promise<void>;
}

async function createRunner(build: Build): Promise<Runner> {
  const kernels = await build.kernels.createKernels({ threads, initialBytes: 64 * 1024 * 1024 });
  const embeddingPtr = kernels.heap.alloc(V * H * 4);
  const embedding = kernels.heap.f32(embeddingPtr, V * H);
  fillRandom(embedding, 1, 0.2);
  const weights = randomDrafter(base, { exitDim: E, numDraftLayers: R, rnn: true, seed: 5 });
  const graph = build.graph.createTrainingGraph(kernels, weights.config, embedding, { maxBatch: B, predict: T,
    teacher: { classifier: embedding, softWeight: SOFT } });
  graph.setWeights(weights);
  const optimizer = build.optim.createAdamWState(graph.tensors);
  const batches = [0, 1, 2, 3].map((seed) => {
    const hidden = new Float32Array(B * H);
    const tokens = new Int32Array(B * (T + 1));
    const targetHidden = new Float32Array(B * T * H);
    fillRandom(hidden, 10 + seed, 4);
    fillRandom(tokens, 20 + seed, 0, V);
    fillRandom(targetHidden, 30 + seed, 4);
    return { count: B, hidden, tokens, targetHidden };
  });
  let next = 0;
  return {
    build,
    run(count) {
      const started = performance.now();
      const cpu = process.cpuUsage();
      for (let u = 0; u < count; u++) {
        graph.forwardBackward(batches[next++ % batches.length]);
        build.optim.clipGradients(graph.tensors, 1);
        build.optim.adamWStep(graph.tensors, optimizer, 1e-3);
      }
      const used = process.cpuUsage(cpu);
      return { wall: (count * B) / ((performance.now() - started) / 1000), cpu: (count * B) / ((used.user + used.system) / 1e6) };
    },
    async close() {
      graph.dispose();
      await kernels.close();
    },
  };
}

async function loadBuild(dir: string): Promise<Build> {
  const url = (path: string): string => pathToFileURL(resolve(dir, path)).href;
  return {
    name: dir,
    kernels: await import(url('src/kernels/index.js')) as typeof kernelsModule,
    graph: await import(url('src/train/graph.js')) as typeof graphModule,
    optim: await import(url('src/train/optim.js')) as typeof optimModule,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const builds: Build[] = [{ name: 'this build', kernels: kernelsModule, graph: graphModule, optim: optimModule }];
if (compareDir !== null) builds.push(await loadBuild(compareDir));
const runners: Runner[] = [];
for (const build of builds) runners.push(await createRunner(build));
for (const runner of runners) runner.run(2);
const wall = runners.map((): number[] => []);
const cpu = runners.map((): number[] => []);
for (let round = 0; round < rounds; round++) {
  runners.forEach((runner, i) => {
    const speed = runner.run(updates);
    wall[i].push(speed.wall);
    cpu[i].push(speed.cpu);
  });
}
// CPU time (all threads of the process, spinning workers included) is the steadier measure on a loaded machine at
// one thread; at more threads wall time is the one that counts.
console.log(`threads ${threads}, ${rounds} rounds of ${updates} updates (batch ${B}, T ${T}, H ${H}, E ${E}, R ${R}, V ${V})`);
runners.forEach((runner, i) => {
  const s = wall[i];
  console.log(`${runner.build.name}: median ${median(s).toFixed(0)} positions/s (min ${Math.min(...s).toFixed(0)}, ` +
    `max ${Math.max(...s).toFixed(0)}), per CPU second ${median(cpu[i]).toFixed(0)}`);
});
if (runners.length === 2) {
  // Ratios of rounds run back to back, whose load from other processes was most alike.
  const paired = (s: number[][]): number => median(s[0].map((v, i) => v / s[1][i]));
  console.log(`ratio (this / compare): wall ${(median(wall[0]) / median(wall[1])).toFixed(3)} ` +
    `(median of round pairs ${paired(wall).toFixed(3)}), CPU ${(median(cpu[0]) / median(cpu[1])).toFixed(3)} ` +
    `(pairs ${paired(cpu).toFixed(3)})`);
}
for (const runner of runners) await runner.close();
