// The `process` global for the browser bundle (esbuild's inject replaces free references to it): the engine reads
// process.env (tuning file location, REDRAFTER_SIMD), process.pid (temporary file names) and the version fields of
// its machine description. Nothing here claims to be Node: versions.node stays undefined (kernels/simd.ts reads it).
export const process = {
  env: {} as Record<string, string | undefined>,
  pid: 0,
  version: 'browser',
  versions: {} as Record<string, string | undefined>,
  platform: 'browser',
  arch: 'wasm32',
  execArgv: [] as string[],
  cwd: (): string => '/',
};
