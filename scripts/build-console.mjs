// Bundles the web console (console/web/) into dist/console/web/: index.html, one script and one stylesheet, with
// Preact, htm and uPlot inside, so the page works offline and loads nothing from elsewhere. Run by `npm run build`.
import { copyFile, mkdir } from 'node:fs/promises';
import { build } from 'esbuild';

const out = 'dist/console/web';
await mkdir(out, { recursive: true });
await build({
  entryPoints: { app: 'console/web/main.js' },
  outdir: out,
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  legalComments: 'eof',
  logLevel: 'warning',
});
await copyFile('console/web/index.html', `${out}/index.html`);
