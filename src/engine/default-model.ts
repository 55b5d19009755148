// Finding the default model (stories260K) without the user pointing at it: REDRAFTER_MODELS, then a `shared/models`
// folder beside the checkout, then the user cache, else a download from its public source, verified by sha256.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface DefaultModelFiles {
  model: string;
  tokenizer: string;
  /** Where they were found, for messages. */
  source: 'REDRAFTER_MODELS' | 'shared' | 'cache' | 'download';
}

const FOLDER = 'stories260K';
const FILES = {
  model: { name: 'stories260K.bin', sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696' },
  tokenizer: { name: 'tok512.bin', sha256: '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312' },
} as const;
const SOURCE_URL = 'https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/';

/** The repository root, from this file's place in dist/src/engine or src/engine. */
function repositoryRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const parts = here.split(/[\\/]/);
  const distAt = parts.lastIndexOf('dist');
  return distAt >= 0 ? parts.slice(0, distAt).join('/') || '/' : resolve(here, '..', '..');
}

/** The trained drafter for stories260K shipped in the package (models/stories260K-drafter), if present. */
export function defaultDrafterPath(): string | undefined {
  const path = join(repositoryRoot(), 'models', 'stories260K-drafter');
  return existsSync(join(path, 'config.json')) ? path : undefined;
}

export function userCacheFolder(): string {
  const base = process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(base, 'redrafter', 'models');
}

/** Folders that may hold `stories260K/`, in the order they are tried. */
export function modelFolders(): { folder: string; source: DefaultModelFiles['source'] }[] {
  const folders: { folder: string; source: DefaultModelFiles['source'] }[] = [];
  const fromEnv = process.env['REDRAFTER_MODELS'];
  if (fromEnv) folders.push({ folder: resolve(fromEnv), source: 'REDRAFTER_MODELS' });
  folders.push({ folder: resolve(repositoryRoot(), '..', 'shared', 'models'), source: 'shared' });
  folders.push({ folder: userCacheFolder(), source: 'cache' });
  return folders;
}

export async function resolveDefaultModel(log: (message: string) => void = () => {}): Promise<DefaultModelFiles> {
  for (const { folder, source } of modelFolders()) {
    const model = join(folder, FOLDER, FILES.model.name);
    const tokenizer = join(folder, FOLDER, FILES.tokenizer.name);
    if (existsSync(model) && existsSync(tokenizer)) return { model, tokenizer, source };
  }
  const target = join(userCacheFolder(), FOLDER);
  mkdirSync(target, { recursive: true });
  for (const file of [FILES.model, FILES.tokenizer]) {
    const path = join(target, file.name);
    if (existsSync(path) && sha256(readFileSync(path)) === file.sha256) continue;
    log(`downloading ${file.name} from ${SOURCE_URL} …`);
    let bytes: Buffer;
    try {
      const response = await fetch(SOURCE_URL + file.name);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      bytes = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      throw new Error(`the default model stories260K was not found and could not be downloaded ` +
        `(${SOURCE_URL}${file.name}: ${(error as Error).message}). Looked in: ` +
        `${modelFolders().map((f) => join(f.folder, FOLDER)).join(', ')}. ` +
        `Point REDRAFTER_MODELS at a folder holding stories260K/stories260K.bin and stories260K/tok512.bin, ` +
        `or pass --model PATH (and --tokenizer PATH).`);
    }
    const digest = sha256(bytes);
    if (digest !== file.sha256) {
      throw new Error(`${file.name} from ${SOURCE_URL}: sha256 ${digest} does not match the expected ${file.sha256}; ` +
        `the file was not saved`);
    }
    const temporary = `${path}.download-${process.pid}`;
    writeFileSync(temporary, bytes);
    renameSync(temporary, path);
  }
  return { model: join(target, FILES.model.name), tokenizer: join(target, FILES.tokenizer.name), source: 'download' };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
