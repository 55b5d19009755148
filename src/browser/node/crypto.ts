// node:crypto for the browser bundle: only the default-model download (a Node feature: it writes to the user's
// cache folder) hashes; in a browser it is never reached, and says so if it is.
export function createHash(algorithm: string): never {
  throw new Error(`createHash(${algorithm}): node:crypto is not available in the browser build`);
}
