// The demo page: loads a model (URL or dropped files) into the engine worker (src/browser/engine-worker.ts), runs
// plain decoding and then ReDrafter on the same prompt and seed, streams both with their tokens/s and tokens per
// step, and draws each ReDrafter step's prefix tree. Everything the engine does happens in that worker, so this page
// stays responsive while it computes.
import type { Capabilities, DrafterSpec, FileSpec, GenerateRequest, LoadRequest, ModelInfo, PageMessage, RunProgress,
  TreeShape, TreeStep, WorkerMessage } from '../../src/browser/protocol.js';

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`demo.html has no #${id}`);
  return found as T;
}

const ui = {
  backend: element<HTMLSelectElement>('backend'),
  backendStatus: element('backend-status'),
  isolation: element('isolation'),
  modelUrl: element<HTMLInputElement>('model-url'),
  tokenizerUrl: element<HTMLInputElement>('tokenizer-url'),
  drafterUrl: element<HTMLInputElement>('drafter-url'),
  threads: element<HTMLInputElement>('threads'),
  load: element<HTMLButtonElement>('load'),
  drop: element('drop'),
  files: element<HTMLInputElement>('files'),
  progress: element<HTMLProgressElement>('progress'),
  status: element('status'),
  error: element('error'),
  prompt: element<HTMLTextAreaElement>('prompt'),
  maxTokens: element<HTMLInputElement>('max-tokens'),
  temperature: element<HTMLInputElement>('temperature'),
  seed: element<HTMLInputElement>('seed'),
  beams: element<HTMLInputElement>('beams'),
  beamLength: element<HTMLInputElement>('beam-length'),
  stepwise: element<HTMLInputElement>('stepwise'),
  run: element<HTMLButtonElement>('run'),
  pause: element<HTMLButtonElement>('pause'),
  step: element<HTMLButtonElement>('step'),
  resume: element<HTMLButtonElement>('resume'),
  stop: element<HTMLButtonElement>('stop'),
  plain: element('plain'),
  redrafter: element('redrafter'),
  tree: element('tree') as unknown as SVGSVGElement,
  treeCaption: element('tree-caption'),
};

const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { type: 'module', name: 'redrafter engine' });
const send = (message: PageMessage): void => worker.postMessage(message);

let model: ModelInfo | null = null;
let loading = false;
let running: number | null = null;
let runs = 0;
/** The run ids of the current comparison: plain, then ReDrafter. */
let current = { plain: 0, redrafter: 0 };

function showError(message: string | null): void {
  ui.error.hidden = message === null;
  ui.error.textContent = message ?? '';
}

function updateButtons(): void {
  const idle = running === null && !loading;
  ui.run.disabled = !idle || model === null;
  ui.load.disabled = loading;
  ui.pause.disabled = running === null;
  ui.step.disabled = running === null;
  ui.resume.disabled = running === null;
  ui.stop.disabled = running === null;
}

function describeCapabilities(capabilities: Capabilities): void {
  ui.backend.replaceChildren(...capabilities.backends.map((backend) => {
    const option = document.createElement('option');
    option.value = backend.name;
    option.textContent = `${backend.name === 'wasm' ? 'WebAssembly' : 'WebGPU'}${backend.available ? '' : ' (unavailable)'}`;
    option.disabled = !backend.available;
    option.title = backend.detail;
    return option;
  }));
  ui.backend.value = 'wasm';
  ui.backendStatus.textContent = `in use: WebAssembly — ${capabilities.backends[0].detail}`;
  if (capabilities.singleThreadReason === null) {
    ui.isolation.textContent = `Cross-origin isolated: the kernels run on up to ${capabilities.maxThreads} threads ` +
      '(Web Workers over one shared WebAssembly.Memory).';
    ui.isolation.className = 'note';
  } else {
    ui.isolation.textContent = `Single thread: ${capabilities.singleThreadReason}.`;
    ui.isolation.className = 'note warn';
  }
  ui.isolation.dataset['threads'] = String(capabilities.maxThreads);
}

function describeModel(info: ModelInfo): void {
  const threadText = `${info.threads} thread${info.threads > 1 ? 's' : ''}`;
  ui.status.textContent = `${info.name} (${info.format}, ${info.parameters}) on ${threadText}, ${info.simd} SIMD` +
    `${info.drafter === null ? ', no drafter (ReDrafter unavailable)' : `, drafter ${info.drafter}`}` +
    ` — loaded in ${info.loadSeconds.toFixed(1)} s`;
  ui.backendStatus.textContent = info.backend === 'webgpu'
    ? `in use: WebGPU (${info.adapter ?? 'adapter'}); drafter and sampler on WebAssembly, ${threadText}`
    : `in use: WebAssembly (${info.simd === 'relaxed' ? 'SIMD128 + relaxed SIMD' : 'SIMD128'}), ${threadText}`;
  if (info.threadNote !== null) ui.status.textContent += ` — ${info.threadNote}`;
  ui.status.dataset['state'] = 'loaded';
}

function threadsValue(): number | 'auto' {
  const text = ui.threads.value.trim();
  if (text === '' || text === 'auto') return 'auto';
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new Error(`Threads: expected "auto" or an integer 1–16, got "${text}"`);
  return n;
}

function requestLoad(request: Omit<LoadRequest, 'type' | 'threads'>): void {
  let threads: number | 'auto';
  try {
    threads = threadsValue();
  } catch (error) {
    showError((error as Error).message);
    return;
  }
  showError(null);
  loading = true;
  ui.progress.value = 0;
  ui.progress.dataset['sources'] = '';
  ui.status.textContent = 'loading…';
  ui.status.dataset['state'] = 'loading';
  updateButtons();
  send({ type: 'load', threads, backend: ui.backend.value === 'webgpu' ? 'webgpu' : 'wasm', ...request });
}

function loadFromUrls(): void {
  const url = (input: HTMLInputElement): string | undefined => input.value.trim() || undefined;
  const modelUrl = url(ui.modelUrl);
  if (modelUrl === undefined) {
    showError('Model URL: give the URL of a llama2.c .bin or a .gguf file, or drop the files');
    return;
  }
  const tokenizer = url(ui.tokenizerUrl);
  const drafter = url(ui.drafterUrl);
  requestLoad({ model: { url: modelUrl }, tokenizer: tokenizer === undefined ? undefined : { url: tokenizer },
    drafter: drafter === undefined ? undefined : { url: drafter } });
}

/** Sorts dropped files by name: model, tokenizer, drafter config and weights. */
function loadFromFiles(list: FileList): void {
  const files = [...list];
  const isTokenizer = (f: File): boolean => /^(tok\d*|tokenizer)\.(bin|json)$/.test(f.name);
  const model = files.find((f) => /\.(gguf|bin)$/.test(f.name) && !isTokenizer(f));
  if (model === undefined) {
    showError(`None of the dropped files (${files.map((f) => f.name).join(', ')}) is a model: expected a .bin or .gguf file`);
    return;
  }
  const tokenizer = files.find(isTokenizer);
  const config = files.find((f) => f.name === 'config.json');
  const weights = files.find((f) => f.name.endsWith('.safetensors'));
  if ((config === undefined) !== (weights === undefined)) {
    showError('A drafter needs both its config.json and its model.safetensors');
    return;
  }
  const drafter: DrafterSpec | undefined = config !== undefined && weights !== undefined
    ? { config: { file: config }, weights: { file: weights } } : undefined;
  const spec = (file: File): FileSpec => ({ file });
  requestLoad({ model: spec(model), tokenizer: tokenizer === undefined ? undefined : spec(tokenizer), drafter });
}

function numberInput(input: HTMLInputElement, name: string, min: number, max: number, integer: boolean): number {
  const value = Number(input.value);
  if (input.value.trim() === '' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new Error(`${name}: expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got "${input.value}"`);
  }
  return value;
}

function startRuns(): void {
  let base: Omit<GenerateRequest, 'run' | 'decoding' | 'paused'>;
  try {
    const shapeChoice = document.querySelector<HTMLInputElement>('input[name=shape]:checked')?.value ?? 'auto';
    const shape: TreeShape = shapeChoice === 'auto' ? 'auto'
      : { beams: numberInput(ui.beams, 'W', 1, 16, true), beamLength: numberInput(ui.beamLength, 'L', 2, 16, true) };
    base = { type: 'generate', prompt: ui.prompt.value, maxTokens: numberInput(ui.maxTokens, 'Max tokens', 1, 4096, true),
      temperature: numberInput(ui.temperature, 'Temperature', 0, 2, false), seed: numberInput(ui.seed, 'Seed', 0, 2 ** 31, true),
      shape };
  } catch (error) {
    showError((error as Error).message);
    return;
  }
  showError(null);
  current = { plain: ++runs, redrafter: ++runs };
  for (const column of [ui.plain, ui.redrafter]) {
    column.dataset['state'] = 'waiting';
    delete column.dataset['ids'];
    column.querySelector('.text')!.textContent = '';
    column.querySelector('.stats')!.textContent = 'waiting…';
  }
  clearTree();
  plainSteps = 0;
  // One after the other, so that each has the CPU to itself and its tokens/s is its own.
  send({ ...base, run: current.plain, decoding: 'plain' });
  if (model?.drafter !== null) send({ ...base, run: current.redrafter, decoding: 'redrafter', paused: ui.stepwise.checked });
  else ui.redrafter.querySelector('.stats')!.textContent = 'no drafter loaded';
  running = current.plain;
  updateButtons();
}

function columnOf(run: number): HTMLElement | null {
  return run === current.plain ? ui.plain : run === current.redrafter ? ui.redrafter : null;
}

/** Plain steps the controller chose in the current ReDrafter run, to say so where no tree is drawn. */
let plainSteps = 0;

function showProgress(progress: RunProgress, done: boolean, finishReason?: string): void {
  const column = columnOf(progress.run);
  if (column === null) return;
  if (progress.run === current.redrafter && (progress.shapes['plain'] ?? 0) > plainSteps) {
    plainSteps = progress.shapes['plain'] ?? 0;
    ui.treeCaption.textContent = `— step ${progress.steps}: the speculation controller chose plain decoding (no tree; ` +
      `${plainSteps} plain step${plainSteps === 1 ? '' : 's'} so far)`;
  }
  running = done ? (progress.run === current.plain && model?.drafter !== null ? current.redrafter : null) : progress.run;
  column.dataset['state'] = done ? 'done' : 'running';
  if (done) column.dataset['ids'] = JSON.stringify(progress.ids);
  const text = column.querySelector('.text')!;
  const prompt = document.createElement('span');
  prompt.className = 'prompt';
  prompt.textContent = ui.prompt.value;
  text.replaceChildren(prompt, progress.text);
  const shapes = Object.entries(progress.shapes).map(([shape, n]) => `${shape}×${n}`).join(' ');
  column.querySelector('.stats')!.textContent = `${progress.tokensPerSecond.toFixed(1)} tokens/s · ` +
    `${progress.tokensPerStep.toFixed(2)} tokens/step · ${progress.tokens} tokens in ${progress.steps} steps` +
    `${shapes ? ` · shapes ${shapes}` : ''}${done ? ` · ${finishReason}` : ''}`;
  updateButtons();
}

// ---- the prefix tree ----

const SVG = 'http://www.w3.org/2000/svg';
const COLUMN = 118;
const ROW = 30;
const BOX_HEIGHT = 22;

function svg<K extends keyof SVGElementTagNameMap>(name: K, attributes: Record<string, string | number>, text?: string):
  SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function clearTree(): void {
  ui.tree.replaceChildren();
  ui.tree.setAttribute('width', '100');
  ui.tree.setAttribute('height', '40');
  ui.treeCaption.textContent = '';
  delete ui.tree.dataset['step'];
}

function readable(piece: string): string {
  const shown = piece.replace(/ /g, '␣').replace(/\n/g, '⏎');
  return shown.length > 12 ? `${shown.slice(0, 11)}…` : shown;
}

/**
 * Draws one step: the packed tree (shared prefixes are single nodes already), the accepted path, the bonus token as
 * a child of the last accepted node, and each beam's score at the node where the beam ends.
 */
function drawTree(step: TreeStep): void {
  const count = step.nodes.length;
  const children: number[][] = Array.from({ length: count + 1 }, () => []);
  step.nodes.forEach((node, i) => {
    if (node.parent >= 0) children[node.parent].push(i);
  });
  const bonusIndex = count;
  const lastAccepted = step.acceptedPath[step.acceptedPath.length - 1] ?? 0;
  children[lastAccepted].push(bonusIndex);
  const depth = (i: number): number => (i === bonusIndex ? step.nodes[lastAccepted].depth + 1 : step.nodes[i].depth);
  const accepted = new Set(step.acceptedPath);

  // Leaves top to bottom in depth-first order; a parent sits level with the middle of its children.
  const y = new Float64Array(count + 1);
  let leaves = 0;
  const place = (i: number): number => {
    if (children[i].length === 0) {
      y[i] = leaves++ * ROW;
      return y[i];
    }
    const ys = children[i].map(place);
    y[i] = (ys[0] + ys[ys.length - 1]) / 2;
    return y[i];
  };
  const roots = step.nodes.map((n, i) => (n.parent < 0 ? i : -1)).filter((i) => i >= 0);
  for (const root of roots) place(root);

  // Each beam ends at one node: walk its tokens down the tree.
  const scores = new Map<number, string[]>();
  step.beams.forEach((beam, b) => {
    let at = roots.find((r) => step.nodes[r].token === beam[0]);
    for (const token of beam.slice(1)) {
      if (at === undefined) break;
      at = children[at].find((c) => c !== bonusIndex && step.nodes[c].token === token);
    }
    if (at !== undefined) scores.set(at, [...(scores.get(at) ?? []), `b${b} ${step.scores[b].toFixed(2)}`]);
  });

  const maxDepth = Math.max(...Array.from({ length: count + 1 }, (_, i) => depth(i)));
  const width = (maxDepth + 1) * COLUMN + 150 + 64;
  const height = Math.max(leaves, 1) * ROW + 16;
  ui.tree.replaceChildren();
  ui.tree.setAttribute('width', String(width));
  ui.tree.setAttribute('height', String(height));
  const top = 8;
  // The bonus token sits after its parent's beam score, when that node has one.
  const bonusShift = scores.has(lastAccepted) ? 64 : 0;
  const left = (i: number): number => 8 + depth(i) * COLUMN + (i === bonusIndex ? bonusShift : 0);
  const boxWidth = COLUMN - 26;
  const edges = svg('g', {});
  const boxes = svg('g', {});
  for (let i = 0; i <= count; i++) {
    const parent = i === bonusIndex ? lastAccepted : step.nodes[i].parent;
    if (parent >= 0) {
      const kind = i === bonusIndex ? 'bonus' : accepted.has(i) && accepted.has(parent) ? 'accepted' : '';
      // The bonus edge starts after the beam score written beside its parent.
      const x1 = left(parent) + boxWidth + (i === bonusIndex ? Math.max(0, bonusShift - 6) : 0);
      const y1 = top + y[parent] + BOX_HEIGHT / 2;
      const x2 = left(i);
      const y2 = top + y[i] + BOX_HEIGHT / 2;
      edges.append(svg('path', { class: `edge ${kind}`, d: `M${x1},${y1} C${x1 + 14},${y1} ${x2 - 14},${y2} ${x2},${y2}` }));
    }
    const kind = i === bonusIndex ? 'bonus' : step.nodes[i].parent < 0 ? 'root accepted' : accepted.has(i) ? 'accepted' : '';
    const group = svg('g', { class: `node ${kind}`, transform: `translate(${left(i)},${top + y[i]})` });
    const piece = i === bonusIndex ? step.bonusPiece : step.pieces[i];
    const title = svg('title', {}, `${i === bonusIndex ? 'bonus token (the model\'s own)' : `node ${i}, depth ${depth(i)}`}: ` +
      `${JSON.stringify(piece)} (id ${i === bonusIndex ? step.bonus : step.nodes[i].token})`);
    group.append(title, svg('rect', { width: boxWidth, height: BOX_HEIGHT, rx: 4 }),
      svg('text', { x: 6, y: 15 }, readable(piece)));
    const labels = scores.get(i);
    if (labels !== undefined) group.append(svg('text', { class: 'score', x: boxWidth + 6, y: 15 }, labels.join(', ')));
    boxes.append(group);
  }
  ui.tree.append(edges, boxes);
  const acceptedDrafts = step.acceptedPath.length - 1;
  ui.treeCaption.textContent = `— step ${step.index}: ${step.shape.replace('x', ' beams × length ')}, ` +
    `${step.nodes.length} nodes, ${acceptedDrafts} draft${acceptedDrafts === 1 ? '' : 's'} accepted + the bonus token ` +
    `= ${step.committed.length} committed`;
  ui.tree.dataset['step'] = String(step.index);
}

// ---- wiring ----

worker.addEventListener('message', (event: MessageEvent<WorkerMessage>) => {
  const message = event.data;
  switch (message.type) {
    case 'capabilities':
      describeCapabilities(message.capabilities);
      break;
    case 'progress': {
      const { file, loaded, total, source } = message.progress;
      // Where this load's files came from (download, cache, file), for the reader and for tests.
      const sources = new Set((ui.progress.dataset['sources'] ?? '').split(' ').filter((s) => s !== ''));
      sources.add(source);
      ui.progress.dataset['sources'] = [...sources].join(' ');
      ui.progress.value = total ? loaded / total : message.progress.done ? 1 : 0;
      const size = `${(loaded / 2 ** 20).toFixed(1)}${total ? ` / ${(total / 2 ** 20).toFixed(1)}` : ''} MiB`;
      ui.status.textContent = `${file}: ${size} ${source === 'cache' ? 'from the cache' : source === 'download' ? 'downloaded' : 'read'}`;
      break;
    }
    case 'loaded':
      loading = false;
      model = message.model;
      describeModel(message.model);
      updateButtons();
      break;
    case 'load-error':
      loading = false;
      ui.progress.value = 0;
      showError(`Could not load the model: ${message.message}`);
      ui.status.textContent = model === null ? 'no model loaded' : `still using ${model.name}`;
      ui.status.dataset['state'] = model === null ? 'empty' : 'loaded';
      updateButtons();
      break;
    case 'chunk':
      showProgress(message, false);
      break;
    case 'done':
      showProgress(message, true, message.finishReason);
      break;
    case 'tree':
      if (message.run === current.redrafter) drawTree(message.step);
      break;
    case 'run-error': {
      const column = columnOf(message.run);
      if (column !== null) {
        column.dataset['state'] = 'error';
        column.querySelector('.stats')!.textContent = `failed: ${message.message}`;
      }
      showError(message.message);
      running = message.run === current.plain && model?.drafter !== null ? current.redrafter : null;
      updateButtons();
      break;
    }
    case 'paused':
      break;
  }
});
worker.addEventListener('error', (event) => {
  showError(`The engine worker failed: ${event.message || 'it could not start (see the console)'}`);
});

ui.load.addEventListener('click', loadFromUrls);
ui.run.addEventListener('click', startRuns);
ui.pause.addEventListener('click', () => send({ type: 'pause' }));
ui.step.addEventListener('click', () => send({ type: 'step' }));
ui.resume.addEventListener('click', () => send({ type: 'resume' }));
ui.stop.addEventListener('click', () => send({ type: 'stop' }));
ui.files.addEventListener('change', () => {
  if (ui.files.files !== null && ui.files.files.length > 0) loadFromFiles(ui.files.files);
});
ui.drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  ui.drop.classList.add('over');
});
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (event) => {
  event.preventDefault();
  ui.drop.classList.remove('over');
  if (event.dataTransfer !== null && event.dataTransfer.files.length > 0) loadFromFiles(event.dataTransfer.files);
});

// The server's defaults (redrafter demo): fill the fields and load at once.
void fetch('demo-config.json').then(async (response) => {
  if (!response.ok) return;
  const config = await response.json() as { model: { url: string }; tokenizer?: { url: string };
    drafter?: { url: string }; threads: number | 'auto' };
  ui.modelUrl.value = config.model.url;
  ui.tokenizerUrl.value = config.tokenizer?.url ?? '';
  ui.drafterUrl.value = config.drafter?.url ?? '';
  ui.threads.value = String(config.threads);
  loadFromUrls();
}).catch(() => {
  // served without a config (a static copy of dist/browser): the user fills the fields
});
updateButtons();
