// Small synchronous file helpers shared by the readers and writers. Readers go through a file descriptor so that
// nothing is allocated from a size the file declares before that size has been checked against the real file length,
// and so that multi-gigabyte checkpoints never need one Buffer holding the whole file.

import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { FormatError } from './errors.js';

export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export interface OpenFile {
  readonly path: string;
  readonly fd: number;
  readonly size: number;
}

function ioError(path: string, expected: string, err: unknown): FormatError {
  const got = err instanceof Error ? err.message : String(err);
  return new FormatError({ file: path, field: 'file', expected, got, cause: err });
}

/** Opens `path` for reading; I/O failures become FormatErrors so callers handle one error type. */
export function openForRead(path: string): OpenFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw ioError(path, 'a readable file', err);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new FormatError({ file: path, field: 'file', expected: 'a regular file', got: 'a directory or device' });
    return { path, fd, size: stat.size };
  } catch (err) {
    closeSync(fd);
    throw err instanceof FormatError ? err : ioError(path, 'a readable file', err);
  }
}

/** Runs `body` with the file open and always closes it. */
export function withFile<T>(path: string, body: (file: OpenFile) => T): T {
  const file = openForRead(path);
  try {
    return body(file);
  } finally {
    closeSync(file.fd);
  }
}

/** Fills `target` from `position`; returns the number of bytes actually read (short only at end of file). */
export function readInto(file: OpenFile, target: Uint8Array, position: number): number {
  let done = 0;
  // readSync reads at most ~2 GiB per call; loop in 1 GiB steps.
  const step = 1 << 30;
  while (done < target.length) {
    const want = Math.min(step, target.length - done);
    let n: number;
    try {
      n = readSync(file.fd, target, done, want, position + done);
    } catch (err) {
      throw ioError(file.path, `${target.length} readable bytes at offset ${position}`, err);
    }
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Reads a little-endian float32 array of `count` elements at `position` (the caller has checked the bounds). */
export function readF32(file: OpenFile, position: number, count: number, field: string): Float32Array {
  const out = new Float32Array(count);
  const bytes = new Uint8Array(out.buffer);
  const n = readInto(file, bytes, position);
  if (n !== bytes.length) {
    // Only reachable if the file shrank after it was measured.
    throw new FormatError({
      file: file.path,
      field,
      expected: `${bytes.length} bytes at offset ${position}`,
      got: String(n),
      detail: 'file truncated',
    });
  }
  if (!LITTLE_ENDIAN) swapBytes32(bytes);
  return out;
}

/** Reverses every 4-byte group in place (big-endian hosts only). */
export function swapBytes32(bytes: Uint8Array): void {
  for (let i = 0; i + 3 < bytes.length; i += 4) {
    const a = bytes[i];
    const b = bytes[i + 1];
    bytes[i] = bytes[i + 3];
    bytes[i + 1] = bytes[i + 2];
    bytes[i + 2] = b;
    bytes[i + 3] = a;
  }
}

/** The bytes of a float32 array in little-endian order (a view when the host is little-endian). */
export function f32Bytes(data: Float32Array): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return view;
  const copy = view.slice();
  swapBytes32(copy);
  return copy;
}

/**
 * Writes `chunks` to `path` atomically: a temporary file beside it is written, fsynced and renamed over `path`, so a
 * crash leaves either the old file or the complete new one, never a torn checkpoint.
 */
export function writeFileAtomic(path: string, chunks: Iterable<Uint8Array>): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (err) {
    throw ioError(path, `a writable location (temporary file ${tmp})`, err);
  }
  let open = true;
  try {
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
    }
    fsyncSync(fd);
    open = false;
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    if (open) {
      try {
        closeSync(fd);
      } catch {
        // the original error matters more
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw err instanceof FormatError ? err : ioError(path, 'a successful write', err);
  }
  // Persist the rename itself; not all platforms allow fsync on a directory, and the data is safe either way.
  try {
    const dirFd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // best effort
  }
}
