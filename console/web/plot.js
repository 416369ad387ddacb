// A time-series plot (uPlot) of some series of the history's columns; rebuilt when the set of series changes,
// otherwise only fed new data, and resized with its box.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { html } from './html.js';

export const COLORS = ['#2f7ed8', '#e4572e', '#29a35a', '#8e44ad', '#f0a202', '#16a2b8', '#c2185b', '#5d4037'];

/** `series`: [{ key, label }] picked from `columns.series`; `bars` draws columns instead of lines. */
export function Plot({ title, columns, series, unit = '', height = 180, bars = false, name }) {
  const box = useRef(null);
  const plot = useRef(null);
  const signature = series.map((s) => s.key).join('|');
  const data = () => [columns.t, ...series.map((s) => columns.series[s.key] ?? columns.t.map(() => null))];

  useEffect(() => {
    const el = box.current;
    const opts = {
      width: Math.max(200, el.clientWidth), height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.1)] } },
      axes: [{ stroke: '#8a94a6', grid: { stroke: '#e6e9ef' } }, { stroke: '#8a94a6', grid: { stroke: '#e6e9ef' }, size: 48, values: (_u, v) => v.map((x) => `${x}${unit}`) }],
      series: [{}, ...series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false,
        // Bars of several series stand side by side in their slot: the first to the left, the next to the right.
        ...(bars ? { paths: uPlot.paths.bars({ size: [0.45, 10], align: i === 0 ? -1 : 1 }), fill: `${COLORS[i % COLORS.length]}cc`, points: { show: false } } : {}),
      }))],
    };
    plot.current = new uPlot(opts, data(), el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
    resize.observe(el);
    return () => { resize.disconnect(); plot.current?.destroy(); plot.current = null; };
  }, [signature, height, bars]);

  useEffect(() => { plot.current?.setData(data()); }, [columns]);

  const points = columns.t.length;
  return html`<figure class="plot" data-plot=${name ?? title} data-points=${points}>
    <figcaption>${title}</figcaption>
    <div ref=${box}></div>
  </figure>`;
}
