// node:path (POSIX) for the browser bundle: the paths the readers build all live in the in-memory tree.
import { normalizePath } from '../memory-fs.js';

export const sep = '/';

export function join(...parts: string[]): string {
  const joined = parts.filter((part) => part !== '').join('/');
  if (joined === '') return '.';
  const normalized = normalizePath(joined);
  return joined.startsWith('/') ? normalized : normalized.slice(1) || '.';
}

export function resolve(...parts: string[]): string {
  let path = '';
  for (const part of parts) path = part.startsWith('/') ? part : `${path}/${part}`;
  return normalizePath(path);
}

export function dirname(path: string): string {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
  const at = trimmed.lastIndexOf('/');
  if (at < 0) return '.';
  return at === 0 ? '/' : trimmed.slice(0, at);
}

export function basename(path: string, suffix?: string): string {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
  const base = trimmed.slice(trimmed.lastIndexOf('/') + 1);
  return suffix !== undefined && base.endsWith(suffix) && base !== suffix ? base.slice(0, -suffix.length) : base;
}

export function extname(path: string): string {
  const base = basename(path);
  const at = base.lastIndexOf('.');
  return at <= 0 ? '' : base.slice(at);
}
