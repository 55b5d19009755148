// An in-memory file tree for the browser build. The checkpoint, tokenizer and drafter readers (src/formats,
// src/model, src/drafter) read through node:fs by path, with precise errors naming the file; the browser bundle maps
// node:fs to ./node/fs.ts, which reads this tree, so those readers run unchanged on bytes that came from a URL or a
// dropped file, and their errors name the file the user gave. Writes are not supported: the browser engine reads.

/** Bytes by absolute path ('/models/x.gguf'); folders exist implicitly as path prefixes. */
const files = new Map<string, Uint8Array>();

/** '/a/./b//c/../d' → '/a/b/d'; relative paths are taken from the root. */
export function normalizePath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/** Stores `bytes` at `path` (replacing what was there). The bytes are not copied: do not change them afterwards. */
export function putFile(path: string, bytes: Uint8Array): string {
  const normalized = normalizePath(path);
  files.set(normalized, bytes);
  return normalized;
}

/** Removes `path` and everything under it; returns how many files went. */
export function removeFiles(path: string): number {
  const normalized = normalizePath(path);
  let removed = 0;
  for (const key of [...files.keys()]) {
    if (key === normalized || key.startsWith(`${normalized}/`)) {
      files.delete(key);
      removed++;
    }
  }
  return removed;
}

export function fileBytes(path: string): Uint8Array | undefined {
  return files.get(normalizePath(path));
}

export function isFolder(path: string): boolean {
  const normalized = normalizePath(path);
  const prefix = normalized === '/' ? '/' : `${normalized}/`;
  for (const key of files.keys()) if (key.startsWith(prefix)) return true;
  return false;
}

/** Names directly inside a folder. */
export function listFolder(path: string): string[] {
  const normalized = normalizePath(path);
  const prefix = normalized === '/' ? '/' : `${normalized}/`;
  const names = new Set<string>();
  for (const key of files.keys()) {
    if (key.startsWith(prefix)) names.add(key.slice(prefix.length).split('/')[0]);
  }
  return [...names].sort();
}
