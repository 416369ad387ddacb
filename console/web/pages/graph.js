// The graph: the running YAML in an editor that validates as you type (the same file:line:col: key: message issues as
// `sightline validate`, marked at their lines), and apply, which writes the graph file and shows what the live reload
// restarted and what kept running.
import { useEffect, useRef, useState } from 'preact/hooks';
import { change, getJson } from '../api.js';
import { html } from '../html.js';

const SECTIONS = ['sources', 'models', 'pipelines', 'transports'];

function Outcome({ out }) {
  if (out.result === 'invalid') return html`<div class="outcome bad">Reload refused: ${out.errors?.join('; ')}</div>`;
  if (out.result === 'pending') return html`<div class="outcome" id="outcome" data-result="pending"><b>Written</b>: ${out.summary}</div>`;
  return html`<div class="outcome" id="outcome" data-result=${out.result}>
    <p><b>${out.result === 'applied' ? 'Applied' : 'Nothing changed'}</b>: ${out.summary}</p>
    <table class="grid"><thead><tr><th></th><th>started</th><th>restarted</th><th>stopped</th><th>kept running</th></tr></thead>
      <tbody>${SECTIONS.map((s) => {
        const o = out.sections?.[s] ?? { started: [], restarted: [], stopped: [], kept: [] };
        return html`<tr data-section=${s}><th>${s}</th><td data-started>${o.started.join(', ')}</td><td data-restarted>${o.restarted.join(', ')}</td>
          <td data-stopped>${o.stopped.join(', ')}</td><td data-kept>${o.kept.join(', ')}</td></tr>`;
      })}</tbody></table>
    ${out.sourceRestarted?.length ? html`<p class="muted">Kept their state, reading a restarted source: ${out.sourceRestarted.join(', ')}</p>` : ''}
  </div>`;
}

export function GraphPage({ caller }) {
  const [loaded, setLoaded] = useState(null);
  const [text, setText] = useState('');
  const [check, setCheck] = useState({ ok: true, issues: [], warnings: [] });
  const [out, setOut] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const area = useRef(null);
  const gutter = useRef(null);

  const load = () => getJson('/api/graph').then((g) => { setLoaded(g); setText(g.yaml); setCheck({ ok: true, issues: [], warnings: [] }); }).catch(setError);
  useEffect(() => { load(); }, []);

  // Validation as you type, a moment after the last key.
  useEffect(() => {
    if (!loaded) return undefined;
    const t = setTimeout(() => change('POST', '/api/graph/validate', text).then(setCheck).catch(setError), 250);
    return () => clearTimeout(t);
  }, [text, loaded]);

  const apply = async () => {
    setBusy(true); setOut(null); setError(null);
    try {
      setOut(await change('PUT', '/api/graph', text));
      const g = await getJson('/api/graph');
      setLoaded(g);
    } catch (e) {
      setError(e);
      if (e.body?.issues) setCheck({ ok: false, issues: e.body.issues, warnings: [] });
    } finally { setBusy(false); }
  };

  const goTo = (line) => {
    const el = area.current;
    const lines = text.split('\n');
    const start = lines.slice(0, line - 1).reduce((a, l) => a + l.length + 1, 0);
    el.focus();
    el.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
    el.scrollTop = Math.max(0, (line - 5) * parseFloat(getComputedStyle(el).lineHeight));
  };

  if (!loaded) return html`<p class="muted">${error ? error.message : 'loading…'}</p>`;
  const bad = new Map(check.issues.map((i) => [i.line, i.text]));
  const lineCount = text.split('\n').length;
  const changed = text !== loaded.yaml;
  return html`<div class="graph-page">
    <p><code>${loaded.file}</code> ${loaded.writable ? '' : html`<span class="muted">(started without a graph file: read only)</span>`}
      · <span id="validity" class=${check.ok ? 'ok' : 'bad'} data-ok=${String(check.ok)}>${check.ok ? 'valid' : `${check.issues.length} issue(s)`}</span></p>
    <div class="editor">
      <div class="gutter" ref=${gutter}>${Array.from({ length: lineCount }, (_, i) => html`<div data-line=${i + 1}
        class=${bad.has(i + 1) ? 'bad-line' : ''} title=${bad.get(i + 1) ?? ''}>${i + 1}</div>`)}</div>
      <textarea ref=${area} id="graph-text" spellcheck="false" value=${text} onInput=${(e) => setText(e.target.value)}
        onScroll=${(e) => { gutter.current.scrollTop = e.target.scrollTop; }}></textarea>
    </div>
    <ul class="issues" id="issues">${check.issues.map((i) => html`<li data-line=${i.line} onClick=${() => goTo(i.line)}>${i.text}</li>`)}
      ${check.warnings.map((w) => html`<li class="warn">warning: ${w}</li>`)}</ul>
    <div class="actions">
      <button id="apply" disabled=${busy || !check.ok || !changed || !loaded.writable} onClick=${apply}>Apply</button>
      <button disabled=${busy || !changed} onClick=${() => { setText(loaded.yaml); setOut(null); }}>Revert</button>
      ${!caller && html`<span class="muted">applying needs the console token</span>`}
      ${error && html`<span class="bad" id="apply-error" data-code=${error.code ?? ''}>${error.message}</span>`}
    </div>
    ${out && html`<${Outcome} out=${out} />`}
  </div>`;
}
