// Overview: every source and pipeline with its state and figures, the worker pool, the cluster (on a cluster node),
// plots of the last minutes drawn from the process's own figures, and the latest state changes.
import { useEffect, useState } from 'preact/hooks';
import { fmt, getJson } from '../api.js';
import { usePoll } from '../hooks.js';
import { html } from '../html.js';
import { Plot } from '../plot.js';
import { StateBadge } from '../state.js';

const REASONS = ['stale', 'stage_error', 'shutdown'];

function Sources({ sources, cluster }) {
  return html`<table class="grid" id="sources">
    <thead><tr><th>source</th><th>state</th><th>fps in</th><th>frames in</th><th>last frame</th>${cluster && html`<th>lease held by</th>`}<th>uri</th></tr></thead>
    <tbody>${sources.map((s) => html`<tr data-source=${s.id} data-state=${s.state}>
      <td><b>${s.id}</b></td><td><${StateBadge} ...${s} /></td><td class="n">${fmt.num(s.fpsIn)}</td>
      <td class="n">${s.framesIn ?? '—'}</td><td class="n">${s.lastFrameAgeS === null ? '—' : `${fmt.num(s.lastFrameAgeS)} s ago`}</td>
      ${cluster && html`<td data-holder>${s.holder ?? '—'}</td>`}<td class="uri">${s.uri}</td></tr>`)}</tbody>
  </table>`;
}

function Pipelines({ pipelines, cluster }) {
  const [open, setOpen] = useState({});
  return html`<table class="grid" id="pipelines">
    <thead><tr><th>pipeline</th><th>state</th><th>fps</th><th>capture→sink p95</th><th>processed</th>
      ${REASONS.map((r) => html`<th>dropped: ${r}</th>`)}${cluster && html`<th>runs on</th>`}</tr></thead>
    <tbody>${pipelines.map((p) => html`
      <tr data-pipeline=${p.id} data-state=${p.state} class="clickable" onClick=${() => setOpen({ ...open, [p.id]: !open[p.id] })}>
        <td><b>${p.id}</b> <span class="muted">← ${p.source}</span> <span class="muted">${open[p.id] ? '▾' : '▸'}</span></td>
        <td><${StateBadge} ...${p} /></td><td class="n" data-fps>${fmt.num(p.fps)}</td><td class="n">${p.p95Ms === null ? '—' : `${fmt.num(p.p95Ms, 0)} ms`}${p.measuredHere === false
          ? html` <span class="muted" title="runs on another node: from capture there to arrival here">(arrival)</span>` : ''}</td>
        <td class="n" data-processed>${p.processed ?? '—'}</td>
        ${REASONS.map((r) => html`<td class="n">${p.dropped[r] ?? 0}${p.dropsPerS[r] ? html` <span class="muted">(${fmt.num(p.dropsPerS[r])}/s)</span>` : ''}</td>`)}
        ${cluster && html`<td>${p.holder ?? '—'}</td>`}
      </tr>
      ${open[p.id] && html`<tr class="stages"><td colspan="9"><table class="inner">
        <thead><tr><th>stage</th><th>uses</th><th>p50</th><th>p95</th><th>errors</th></tr></thead>
        <tbody>${p.stages.map((s) => html`<tr data-stage=${s.id}><td>${s.id}</td><td>${s.use}</td>
          <td class="n">${s.p50Ms === null ? '—' : `${fmt.num(s.p50Ms)} ms`}</td><td class="n">${s.p95Ms === null ? '—' : `${fmt.num(s.p95Ms)} ms`}</td>
          <td class="n">${s.errors}${s.errorsPerS ? ` (${fmt.num(s.errorsPerS)}/s)` : ''}</td></tr>`)}</tbody></table></td></tr>`}
    `)}</tbody>
  </table>`;
}

function Cluster({ cluster }) {
  const n = cluster.nats;
  return html`<section class="card" id="cluster">
    <h2>Cluster</h2>
    <p>This node: <b>${cluster.nodeId}</b> (${cluster.role}) · NATS <span class=${`state state-${n.connected ? 'running' : 'retrying'}`} data-nats=${n.connected ? 'connected' : 'disconnected'}>
      ${n.connected ? 'connected' : 'disconnected'}</span> to ${n.server} · ${n.reconnects} reconnect(s)</p>
    <p>Workers present: ${cluster.workers.length ? cluster.workers.join(', ') : '—'}${cluster.leasesError ? html` <span class="bad">(${cluster.leasesError})</span>` : ''}</p>
  </section>`;
}

function Plots() {
  const [columns, setColumns] = useState(null);
  useEffect(() => {
    let stopped = false;
    const tick = () => getJson('/api/history').then((c) => { if (!stopped) setColumns(c); }).catch(() => undefined)
      .finally(() => { if (!stopped) setTimeout(tick, 5000); });
    tick();
    return () => { stopped = true; };
  }, []);
  if (!columns) return html`<p class="muted">collecting figures…</p>`;
  const keys = Object.keys(columns.series);
  const pick = (prefix, suffix = '') => keys.filter((k) => k.startsWith(prefix)).map((k) => ({ key: k, label: `${k.slice(prefix.length)}${suffix}` }));
  return html`<div class="plots">
    <${Plot} name="fps" title="frames per second (in: decoded by the source; out: through the pipeline)" columns=${columns}
      series=${[...pick('in/', ' in'), ...pick('fps/', ' out')]} />
    <${Plot} name="latency" title="capture → sink p95 (ms)" columns=${columns} series=${pick('p95/')} unit="" />
    <${Plot} name="drops" title="frames dropped per second" columns=${columns} series=${pick('drops/')} />
    <${Plot} name="pool" title="worker pool busy (%)" columns=${columns} series=${[{ key: 'pool/utilization', label: 'busy %' }]} />
  </div>`;
}

function Changes() {
  const { data } = usePoll('/api/events?kinds=source,pipeline,config', 3000);
  const events = (data?.events ?? []).slice(-12).reverse();
  return html`<ul class="feed" id="changes">${events.map((e) => html`<li data-kind=${e.kind}><time>${fmt.time(e.atMs)}</time> ${e.text}</li>`)}</ul>`;
}

export function Overview() {
  const { data, error } = usePoll('/api/overview', 2000);
  if (!data) return html`<p class="muted">${error ? error.message : 'loading…'}</p>`;
  const pool = data.pool;
  return html`<div class="overview" data-sampled=${data.sampledAtMs ?? ''}>
    <section class="cards">
      <div class="card stat"><span>sources</span><b>${data.sources.filter((s) => s.state === 'running').length}/${data.sources.length}</b><small>running</small></div>
      <div class="card stat"><span>pipelines</span><b>${data.pipelines.filter((p) => p.state === 'running').length}/${data.pipelines.length}</b><small>running</small></div>
      <div class="card stat" id="pool"><span>worker pool</span><b>${pool?.utilization === null || !pool ? '—' : `${Math.round(pool.utilization * 100)}%`}</b>
        <small>${pool ? `${pool.threads} threads · ${pool.queue} queued` : ''}</small></div>
    </section>
    ${data.cluster && html`<${Cluster} cluster=${data.cluster} />`}
    <h2>Sources</h2><${Sources} sources=${data.sources} cluster=${data.cluster} />
    <h2>Pipelines</h2><${Pipelines} pipelines=${data.pipelines} cluster=${data.cluster} />
    <h2>Last 15 minutes</h2><${Plots} />
    <h2>Changes</h2><${Changes} />
  </div>`;
}
