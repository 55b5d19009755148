// node:fs for the browser bundle, over the in-memory tree of ../memory-fs.ts: the synchronous reads the format
// readers use (open / fstat / read / close, readFileSync, existsSync, statSync, readdirSync); every write throws.
import { fileBytes, isFolder, listFolder, normalizePath } from '../memory-fs.js';

/** An error shaped like Node's (code, syscall, path), so callers that inspect `.code` behave the same. */
function fsError(code: 'ENOENT' | 'EBADF' | 'EISDIR' | 'ENOTSUP', syscall: string, path: string, what: string): Error {
  const error = new Error(`${code}: ${what}, ${syscall} '${path}'`) as Error & { code: string; syscall: string; path: string };
  error.code = code;
  error.syscall = syscall;
  error.path = path;
  return error;
}

export interface Stats {
  size: number;
  isFile(): boolean;
  isDirectory(): boolean;
}

function stats(size: number, directory: boolean): Stats {
  return { size, isFile: () => !directory, isDirectory: () => directory };
}

export function existsSync(path: string): boolean {
  return fileBytes(path) !== undefined || isFolder(path);
}

export function statSync(path: string): Stats {
  const bytes = fileBytes(path);
  if (bytes !== undefined) return stats(bytes.length, false);
  if (isFolder(path)) return stats(0, true);
  throw fsError('ENOENT', 'stat', path, 'no such file or directory');
}

export function realpathSync(path: string): string {
  if (!existsSync(path)) throw fsError('ENOENT', 'realpath', path, 'no such file or directory');
  return normalizePath(path);
}

export function readdirSync(path: string): string[] {
  if (!isFolder(path)) throw fsError('ENOENT', 'scandir', path, 'no such file or directory');
  return listFolder(path);
}

export function readFileSync(path: string, encoding?: 'utf8' | 'utf-8' | { encoding: 'utf8' | 'utf-8' }): string | Uint8Array;
export function readFileSync(path: string, encoding?: 'utf8' | 'utf-8' | { encoding: 'utf8' | 'utf-8' }): string | Uint8Array {
  const bytes = fileBytes(path);
  if (bytes === undefined) {
    if (isFolder(path)) throw fsError('EISDIR', 'read', path, 'illegal operation on a directory');
    throw fsError('ENOENT', 'open', path, 'no such file or directory');
  }
  return encoding === undefined ? bytes.slice() : new TextDecoder().decode(bytes);
}

// Open files: descriptor → path (descriptors start at 3, as in a process with stdio).
const open = new Map<number, string>();
let nextDescriptor = 3;

export function openSync(path: string, flags: string = 'r'): number {
  if (flags !== 'r') throw fsError('ENOTSUP', 'open', path, 'the browser build reads files only');
  if (fileBytes(path) === undefined) {
    if (isFolder(path)) throw fsError('EISDIR', 'open', path, 'illegal operation on a directory');
    throw fsError('ENOENT', 'open', path, 'no such file or directory');
  }
  const fd = nextDescriptor++;
  open.set(fd, normalizePath(path));
  return fd;
}

function openBytes(fd: number, syscall: string): Uint8Array {
  const path = open.get(fd);
  const bytes = path === undefined ? undefined : fileBytes(path);
  if (bytes === undefined) throw fsError('EBADF', syscall, String(fd), 'bad file descriptor');
  return bytes;
}

export function fstatSync(fd: number): Stats {
  return stats(openBytes(fd, 'fstat').length, false);
}

export function readSync(fd: number, target: Uint8Array, offset: number, length: number, position: number): number {
  const bytes = openBytes(fd, 'read');
  const start = Math.min(position, bytes.length);
  const count = Math.min(length, bytes.length - start);
  target.set(bytes.subarray(start, start + count), offset);
  return count;
}

export function closeSync(fd: number): void {
  if (!open.delete(fd)) throw fsError('EBADF', 'close', String(fd), 'bad file descriptor');
}

function readOnly(name: string): (path: unknown) => never {
  return (path) => {
    throw fsError('ENOTSUP', name, String(path), 'the browser build reads files only');
  };
}

export const writeFileSync = readOnly('write');
export const appendFileSync = readOnly('write');
export const writeSync = readOnly('write');
export const mkdirSync = readOnly('mkdir');
export const mkdtempSync = readOnly('mkdtemp');
export const renameSync = readOnly('rename');
export const unlinkSync = readOnly('unlink');
export const rmSync = readOnly('rm');
export const fsyncSync = readOnly('fsync');
