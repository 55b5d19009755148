// Bundles the browser build into dist/browser (esbuild, ESM, one folder so that the relative URLs of the kernels
// module and the worker scripts resolve from any chunk):
//   redrafter.js      the library (src/browser/index.ts)
//   kernel-worker.js  a kernel pool worker (Web Worker)
//   engine-worker.js  the whole engine in a dedicated worker, as the demo runs it
//   demo.js, bench.js the demo and benchmark pages (web/), with their HTML; library.html, an empty page for tests
//   kernels*.wasm     the two kernel builds, copied from dist/src/kernels (scripts/build-kernels.mjs)
// Node's modules are replaced by src/browser/node/* (reads from an in-memory file tree, the page's clock, ...), and
// src/kernels/host.ts by src/browser/kernel-host.ts (fetch, Web Workers). Run after build-kernels.mjs.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'browser');
const shims = join(root, 'src', 'browser', 'node');

/** node:X → src/browser/node/X.ts; a Node module without a browser version is a build error naming its importer. */
const browserEnvironment = {
  name: 'browser-environment',
  setup(builder) {
    builder.onResolve({ filter: /^node:/ }, (args) => {
      const name = args.path.slice('node:'.length).replace('/', '_');
      const shim = join(shims, `${name}.ts`);
      if (existsSync(shim)) return { path: shim };
      return { errors: [{ text: `${args.path} (imported by ${args.importer}) has no browser version in src/browser/node` }] };
    });
    builder.onResolve({ filter: /^\.\/host\.js$/ }, (args) =>
      args.importer.startsWith(join(root, 'src', 'kernels')) ? { path: join(root, 'src', 'browser', 'kernel-host.ts') } : undefined);
  },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: {
    redrafter: 'src/browser/index.ts',
    'kernel-worker': 'src/browser/kernel-worker.ts',
    'engine-worker': 'src/browser/engine-worker.ts',
    demo: 'web/demo/demo.ts',
    bench: 'web/bench/bench.ts',
  },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  chunkNames: '[name]-[hash]',
  sourcemap: true,
  inject: [join(shims, 'process.ts')],
  plugins: [browserEnvironment],
  logLevel: 'warning',
  metafile: true,
});
if (result.errors.length > 0) process.exit(1);
for (const file of readdirSync(join(root, 'dist', 'src', 'kernels')).filter((f) => f.endsWith('.wasm'))) {
  copyFileSync(join(root, 'dist', 'src', 'kernels', file), join(out, file));
}
copyFileSync(join(root, 'web', 'library.html'), join(out, 'library.html'));
for (const page of ['demo', 'bench']) {
  for (const file of readdirSync(join(root, 'web', page)).filter((f) => /\.(html|css)$/.test(f))) {
    copyFileSync(join(root, 'web', page, file), join(out, file));
  }
}
