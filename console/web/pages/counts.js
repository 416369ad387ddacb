// Counting and events: per counting pipeline the day's in/out totals, crossings per minute, traffic events and
// occupancy; falls and recoveries with a snapshot; and the feed of traffic, falls, occupancy and new faces.
import { fmt } from '../api.js';
import { usePoll } from '../hooks.js';
import { html } from '../html.js';
import { Plot } from '../plot.js';

function PerMinute({ p }) {
  // Every minute of the last hour (empty ones as 0), so the bars sit on a steady time axis.
  const end = Math.floor(Date.now() / 60000) * 60000;
  const t = [];
  const ins = [];
  const outs = [];
  const byMinute = new Map(p.perMinute.map((m) => [m.minuteMs, m]));
  for (let m = end - 59 * 60000; m <= end; m += 60000) {
    t.push(m / 1000);
    ins.push(byMinute.get(m)?.in ?? 0);
    outs.push(byMinute.get(m)?.out ?? 0);
  }
  return html`<${Plot} name=${`per-minute-${p.pipeline}`} title="crossings per minute (last hour of today)" bars=${true} height=${160}
    columns=${{ t, series: { in: ins, out: outs } }} series=${[{ key: 'in', label: 'in' }, { key: 'out', label: 'out' }]} />`;
}

function Pipeline({ p }) {
  const today = p.perMinute.reduce((a, m) => a + m.in + m.out, 0);
  return html`<section class="card counting" data-counting=${p.pipeline}>
    <h2>${p.pipeline} <span class="muted">${p.day}</span></h2>
    <div class="totals">
      <div><span>in</span><b data-in>${p.in}</b></div>
      <div><span>out</span><b data-out>${p.out}</b></div>
      <div><span>present</span><b data-occupancy>${p.occupancy?.count ?? '—'}</b></div>
      <div><span>faces</span><b>${p.faces}</b></div>
      <div><span>traffic events</span><b>${p.events}</b><small>${p.eventActive ? `one running: ${p.currentEventIn} in` : 'none running'}</small></div>
    </div>
    <p class="muted">${today} crossings recorded today</p>
    <${PerMinute} p=${p} />
    <table class="grid"><thead><tr><th>traffic event</th><th>start</th><th>end</th><th>in</th></tr></thead>
      <tbody>${p.traffic.length === 0 ? html`<tr><td colspan="4" class="muted">none today</td></tr>`
        : p.traffic.slice(0, 10).map((e, i) => html`<tr><td>#${p.traffic.length - i}</td><td>${fmt.time(e.startMs)}</td>
          <td>${e.endMs ? fmt.time(e.endMs) : html`<b>running</b>`}</td><td class="n">${e.countIn}</td></tr>`)}</tbody></table>
  </section>`;
}

function Falls({ falls }) {
  if (!falls.length) return html`<p class="muted" id="falls">No falls since the console started.</p>`;
  return html`<div class="falls" id="falls">${falls.map((f) => html`<figure class="card fall" data-fall=${f.id}>
    ${f.snapshot ? html`<div class="snap"><img src=${f.snapshot} alt="snapshot" />
      ${f.width && html`<span class="mark" style=${{ left: `${(f.box[0] / f.width) * 100}%`, top: `${(f.box[1] / f.height) * 100}%`,
        width: `${((f.box[2] - f.box[0]) / f.width) * 100}%`, height: `${((f.box[3] - f.box[1]) / f.height) * 100}%` }}></span>`}</div>`
      : html`<div class="snap muted">no snapshot</div>`}
    <figcaption><b>${f.pipeline}</b> · track ${f.trackId} fell at ${fmt.time(f.atMs)} · confidence ${fmt.num(f.confidence, 2)} · impact ${fmt.num(f.impactSeverity, 2)}
      <br />${f.recovered ? `got up at ${fmt.time(f.recovered.atMs)} after ${fmt.num(f.recovered.lyingSeconds)} s` : html`<b class="bad">not recovered</b>`}</figcaption>
  </figure>`)}</div>`;
}

export function Counts() {
  const { data, error } = usePoll('/api/counts', 2000);
  const { data: feed } = usePoll('/api/events?kinds=traffic,fall,recovered,occupancy,face', 2000);
  if (!data) return html`<p class="muted">${error ? error.message : 'loading…'}</p>`;
  const counting = data.pipelines.filter((p) => p.counts);
  const events = (feed?.events ?? []).slice(-30).reverse();
  return html`<div>
    ${counting.length === 0 ? html`<p class="muted">No pipeline counts line crossings (a count stage).</p>` : counting.map((p) => html`<${Pipeline} p=${p} />`)}
    ${data.pipelines.filter((p) => !p.counts).map((p) => html`<p>${p.pipeline}: ${p.occupancy?.count ?? '—'} present</p>`)}
    <h2>Falls and recoveries</h2><${Falls} falls=${data.falls} />
    <h2>Events</h2>
    <ul class="feed" id="events">${events.map((e) => html`<li data-kind=${e.kind}><time>${fmt.time(e.atMs)}</time> ${e.text}</li>`)}</ul>
  </div>`;
}
