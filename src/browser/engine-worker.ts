// The engine in a dedicated Web Worker (the demo's design): forwards are synchronous and the calling thread spins
// while kernel workers finish their shares, so running them here keeps the page responsive. The page sends
// protocol.ts requests; the worker loads through the browser library (index.ts) and generates with the public
// generate(), posting every chunk and every ReDrafter step (onStep). Between steps it yields to its event loop, so
// pause / step / stop messages are seen.
import { browserCapabilities, generate, loadDrafter, loadModel, type BrowserLoadedModel, type FileSource,
  type LoadedDrafter, type RedrafterStep } from './index.js';
import type { DrafterSpec, FileSpec, GenerateRequest, LoadRequest, PageMessage, ProgressInfo, RunProgress, TreeStep,
  WorkerMessage } from './protocol.js';
import { workerScope } from './web-globals.js';

const scope = workerScope();
const post = (message: WorkerMessage): void => scope.postMessage(message);

let loaded: BrowserLoadedModel | null = null;
let drafter: LoadedDrafter | null = null;
/** Requests are handled one at a time, in order (a load waits for the generation before it, and so on). */
let queue: Promise<void> = Promise.resolve();

// Pause control of the running generation.
let paused = false;
let stopped = false;
let wake: (() => void) | null = null;
let stepOnce = false;

function fileSource(spec: FileSpec): FileSource {
  return 'url' in spec ? spec.url : spec.file;
}

function drafterSource(spec: DrafterSpec): string | { config: FileSource; weights: FileSource } {
  return 'url' in spec ? spec.url : { config: fileSource(spec.config), weights: fileSource(spec.weights) };
}

function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.message}${cause}`;
}

async function load(request: LoadRequest): Promise<void> {
  const started = performance.now();
  const onProgress = (progress: ProgressInfo): void => post({ type: 'progress', progress });
  const cache = request.cache === false ? false as const : undefined;
  // The new model is loaded before the old one is closed, so that a load that fails (a bad URL, a file that is not a
  // model) leaves the page with the model it had.
  let model: BrowserLoadedModel | null = null;
  let nextDrafter: LoadedDrafter | null = null;
  try {
    model = await loadModel({ model: fileSource(request.model),
      tokenizer: request.tokenizer === undefined ? undefined : fileSource(request.tokenizer), threads: request.threads,
      backend: request.backend ?? 'wasm', onProgress, cache });
    if (request.drafter !== undefined) nextDrafter = await loadDrafter(model, drafterSource(request.drafter), { onProgress, cache });
  } catch (error) {
    await model?.close();
    post({ type: 'load-error', message: messageOf(error) });
    return;
  }
  drafter?.dispose();
  await loaded?.close();
  loaded = model;
  drafter = nextDrafter;
  const config = model.model.config;
  post({ type: 'loaded', model: {
    name: model.path.slice(model.path.lastIndexOf('/') + 1), format: model.format,
    parameters: `dim ${config.dim}, ${config.nLayers} layers, vocabulary ${config.vocabSize}`,
    contextLength: model.model.contextLength, threads: model.threads, threadNote: model.threadNote,
    simd: model.kernels.simd, backend: model.backend, adapter: model.adapter,
    drafter: drafter === null ? null
      : `E ${drafter.weights.config.exitDim}, ${drafter.weights.config.numDraftLayers} residual blocks`,
    loadSeconds: (performance.now() - started) / 1000,
  } });
}

/** Resolves when the generation may take its next step (not paused, or one step was asked for). */
function mayStep(): Promise<void> {
  if (stopped) return Promise.resolve();
  if (!paused) return new Promise((resolve) => setTimeout(resolve, 0)); // let pause / stop messages in
  if (stepOnce) {
    stepOnce = false;
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    wake = resolve;
  });
}

async function run(request: GenerateRequest): Promise<void> {
  const model = loaded;
  if (model === null) {
    post({ type: 'run-error', run: request.run, message: 'no model is loaded' });
    return;
  }
  if (request.decoding === 'redrafter' && drafter === null) {
    post({ type: 'run-error', run: request.run, message: 'no drafter is loaded: ReDrafter needs one' });
    return;
  }
  paused = request.paused === true;
  stopped = false;
  stepOnce = false;
  const tokenizer = model.tokenizer;
  const piece = (id: number): string => tokenizer?.tokenPiece(id) ?? String(id);
  let treeSteps = 0;
  const onStep = (step: RedrafterStep): void => {
    const tree: TreeStep = { ...step, pieces: step.nodes.map((node) => piece(node.token)),
      bonus: step.committed[step.committed.length - 1], bonusPiece: piece(step.committed[step.committed.length - 1]),
      shape: `${step.beams.length}x${step.beams[0]?.length ?? 0}`, index: ++treeSteps };
    post({ type: 'tree', run: request.run, step: tree });
  };
  const fixed = request.shape === 'auto' ? {} : { beams: request.shape.beams, beamLength: request.shape.beamLength };
  const progress: RunProgress = { run: request.run, decoding: request.decoding, ids: [], text: '', tokens: 0, steps: 0,
    tokensPerSecond: 0, tokensPerStep: 0, shapes: {} };
  try {
    const generation = generate(model, { prompt: request.prompt, maxTokens: request.maxTokens,
      temperature: request.temperature, seed: request.seed, topP: request.topP, topK: request.topK,
      ...(request.decoding === 'redrafter' ? { drafter: drafter ?? undefined, onStep, ...fixed } : {}) });
    const iterator = generation[Symbol.asyncIterator]();
    // Compute time of the steps after the first chunk: the first includes the prompt and, on a drafter's first use,
    // the speculation controller's calibration; pauses are not compute.
    let busy = 0;
    let firstTokens = 0;
    let first = true;
    for (;;) {
      if (!first) await mayStep();
      if (stopped) break;
      const before = performance.now();
      const next = await iterator.next();
      if (next.done === true) break;
      if (first) firstTokens = next.value.ids.length;
      else busy += performance.now() - before;
      first = false;
      progress.ids.push(...next.value.ids);
      progress.text += next.value.text;
      const stats = generation.stats;
      progress.tokens = stats.tokens;
      progress.steps = stats.steps;
      progress.tokensPerSecond = busy > 0 ? (stats.tokens - firstTokens) / (busy / 1000) : 0;
      progress.tokensPerStep = stats.steps > 0 ? stats.committedPerStep.reduce((a, b) => a + b, 0) / stats.steps : 0;
      progress.shapes = { ...(stats.redrafter?.shapes ?? {}) };
      post({ type: 'chunk', ...progress });
    }
    if (stopped) await iterator.return?.();
    post({ type: 'done', finishReason: stopped ? 'stopped' : generation.finishReason ?? 'length', ...progress });
  } catch (error) {
    post({ type: 'run-error', run: request.run, message: messageOf(error) });
  }
}

scope.addEventListener('message', (event) => {
  const message = event.data as PageMessage;
  switch (message.type) {
    case 'load':
      queue = queue.then(() => load(message));
      break;
    case 'generate':
      queue = queue.then(() => run(message));
      break;
    case 'pause':
      paused = true;
      break;
    case 'resume':
      paused = false;
      wake?.();
      wake = null;
      break;
    case 'step':
      if (wake !== null) {
        wake();
        wake = null;
      } else {
        stepOnce = true;
      }
      break;
    case 'stop':
      stopped = true;
      wake?.();
      wake = null;
      break;
  }
});

void browserCapabilities().then((capabilities) => post({ type: 'capabilities', capabilities }));
