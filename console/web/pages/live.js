// Live view: each pipeline's video in a grid. Every camera asks the server for a frame newer than the one it drew, at
// the browser's own pace (a hidden or slow tab asks less, and the server never queues for it), and draws the results
// that came with the frame over it; each layer can be switched off.
import { useEffect, useRef, useState } from 'preact/hooks';
import { getJson } from '../api.js';
import { drawResults, LAYERS } from '../draw.js';
import { html } from '../html.js';

/** Splits one answer: [u32 LE JSON length][JSON][JPEG]. */
function parse(buffer) {
  const view = new DataView(buffer);
  const len = view.getUint32(0, true);
  const results = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, len)));
  return { results, jpeg: new Blob([new Uint8Array(buffer, 4 + len)], { type: 'image/jpeg' }) };
}

const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r()));

function Camera({ pipeline, layers }) {
  const canvas = useRef(null);
  const layersRef = useRef(layers);
  layersRef.current = layers;
  const [info, setInfo] = useState({ fps: 0, lagMs: null, drawn: false, people: 0, error: null });

  useEffect(() => {
    let stopped = false;
    let after = 0;
    let frames = 0;
    const times = [];
    const loop = async () => {
      while (!stopped) {
        try {
          const res = await fetch(`/api/live/${encodeURIComponent(pipeline)}?after=${after}&wait=5000`, { cache: 'no-store' });
          if (res.status === 204) continue;
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const { results, jpeg } = parse(await res.arrayBuffer());
          after = results.n;
          if (!results.image) { setInfo((i) => ({ ...i, error: 'no image for this pipeline' })); await new Promise((r) => setTimeout(r, 1000)); continue; }
          const bitmap = await createImageBitmap(jpeg);
          // Drawn when the browser is ready to paint: a hidden tab stops asking until it is shown again.
          await nextFrame();
          const c = canvas.current;
          if (!c || stopped) { bitmap.close(); break; }
          if (c.width !== bitmap.width || c.height !== bitmap.height) { c.width = bitmap.width; c.height = bitmap.height; }
          const ctx = c.getContext('2d');
          ctx.drawImage(bitmap, 0, 0);
          bitmap.close();
          if (!results.image.drawn) drawResults(ctx, results, c.width, c.height, layersRef.current);
          frames++;
          c.dataset.frames = String(frames);
          c.dataset.n = String(results.n);
          const now = performance.now();
          times.push(now);
          while (times.length && times[0] < now - 3000) times.shift();
          setInfo({ fps: times.length / 3, lagMs: Date.now() - results.capturedAtMs, drawn: results.image.drawn, people: (results.tracks ?? results.detections ?? []).length, error: null });
        } catch (e) {
          setInfo((i) => ({ ...i, error: e.message }));
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    };
    loop();
    return () => { stopped = true; };
  }, [pipeline]);

  return html`<figure class="camera" data-camera=${pipeline}>
    <canvas ref=${canvas} width="640" height="360"></canvas>
    <figcaption><b>${pipeline}</b> · ${info.fps.toFixed(1)} fps · ${info.lagMs === null ? '—' : `${info.lagMs} ms behind`} · ${info.people} tracked
      ${info.drawn ? html` · <span class="muted">drawn by the server</span>` : ''}${info.error ? html` · <span class="bad">${info.error}</span>` : ''}</figcaption>
  </figure>`;
}

export function Live() {
  const [pipelines, setPipelines] = useState(null);
  const [layers, setLayers] = useState(Object.fromEntries(LAYERS.map((l) => [l.id, true])));
  useEffect(() => {
    let stopped = false;
    const tick = () => getJson('/api/live').then((l) => { if (!stopped) setPipelines(l.pipelines); }).catch(() => undefined)
      .finally(() => { if (!stopped) setTimeout(tick, 5000); });
    tick();
    return () => { stopped = true; };
  }, []);
  const ids = (pipelines ?? []).map((p) => p.pipeline).sort();
  return html`<div>
    <div class="toolbar" id="layers">${LAYERS.map((l) => html`<label><input type="checkbox" data-layer=${l.id} checked=${layers[l.id]}
      onChange=${(e) => setLayers({ ...layers, [l.id]: e.target.checked })} /> ${l.label}</label>`)}</div>
    ${pipelines === null ? html`<p class="muted">loading…</p>` : ids.length === 0 ? html`<p class="muted">no pipeline has sent a frame in the last minute</p>` : ''}
    <div class="cameras">${ids.map((id) => html`<${Camera} key=${id} pipeline=${id} layers=${layers} />`)}</div>
  </div>`;
}
