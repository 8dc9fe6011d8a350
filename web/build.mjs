// build.mjs bundles src/ into dist/ for vmd's go:embed: every page's script
// and the style sheet get content-hashed names under dist/static/, and the
// HTML pages are written with those names filled in. dist/ is committed, so
// `go build ./...` on a clean clone needs no node; web_test.go in this
// directory fails when dist/ is older than the sources (see inputsHash).
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const src = path.join(here, 'src');
const dist = path.join(here, 'dist');
const pages = ['index', 'login', 'signup', 'verify', 'forgot', 'reset', 'console', 'vm'];

rmSync(dist, { recursive: true, force: true });
mkdirSync(path.join(dist, 'static'), { recursive: true });

const result = await esbuild.build({
  entryPoints: [...pages.map((p) => path.join(src, `${p}.js`)), path.join(src, 'style.css')],
  outdir: path.join(dist, 'static'),
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  assetNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  // noVNC's browser probe uses top-level await.
  target: ['es2022'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});

// Map each entry point to its hashed output name.
const names = {};
for (const [out, meta] of Object.entries(result.metafile.outputs)) {
  if (meta.entryPoint) {
    names[path.basename(meta.entryPoint)] = '/static/' + path.basename(out);
  }
}

for (const p of pages) {
  let html = readFileSync(path.join(src, 'pages', `${p}.html`), 'utf8');
  html = html.replaceAll('/static/style.css', names['style.css']).replaceAll(`/static/${p}.js`, names[`${p}.js`]);
  writeFileSync(path.join(dist, `${p}.html`), html);
}

writeFileSync(path.join(dist, 'manifest.json'), JSON.stringify({ inputs: inputsHash(), assets: names }, null, 2) + '\n');

// inputsHash covers everything that shapes dist/: the sources, the build
// script and the locked dependency versions. web_test.go computes the same.
function inputsHash() {
  const files = ['build.mjs', 'package-lock.json'];
  const walk = (dir) => {
    for (const e of readdirSync(path.join(here, dir), { withFileTypes: true })) {
      const rel = dir + '/' + e.name;
      if (e.isDirectory()) walk(rel);
      else files.push(rel);
    }
  };
  walk('src');
  files.sort();
  const h = createHash('sha256');
  for (const f of files) {
    h.update(f + '\0');
    h.update(readFileSync(path.join(here, f)));
    h.update('\0');
  }
  return h.digest('hex');
}
