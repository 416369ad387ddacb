// The console's shell: navigation between the pages (by the URL's hash), the token box, and the page shown.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getJson, token } from './api.js';
import { html } from './html.js';
import { Counts } from './pages/counts.js';
import { Faces } from './pages/faces.js';
import { GraphPage } from './pages/graph.js';
import { Live } from './pages/live.js';
import { Overview } from './pages/overview.js';
import './style.css';

const PAGES = [
  { id: 'overview', title: 'Overview', view: Overview },
  { id: 'live', title: 'Live', view: Live },
  { id: 'counts', title: 'Counting & events', view: Counts },
  { id: 'faces', title: 'Faces & persons', view: Faces },
  { id: 'graph', title: 'Graph', view: GraphPage },
];

const pageOf = () => PAGES.find((p) => `#/${p.id}` === location.hash) ?? PAGES[0];

/** Where the token for changes is typed; it is checked against the server and kept for this tab only. */
function TokenBox({ onChange }) {
  const [value, setValue] = useState(token.get());
  const [status, setStatus] = useState(null);
  const check = async () => {
    if (!token.get()) { setStatus(null); onChange(null); return; }
    try {
      const r = await fetch('/api/auth', { headers: { authorization: `Bearer ${token.get()}` } });
      const body = await r.json();
      setStatus(r.ok ? { ok: true, text: `changes allowed (${body.subject})` } : { ok: false, text: body.message });
      onChange(r.ok ? body : null);
    } catch (e) { setStatus({ ok: false, text: e.message }); onChange(null); }
  };
  useEffect(() => { check(); }, []);
  const save = (e) => { e.preventDefault(); token.set(value); check(); };
  return html`<form class="token" onSubmit=${save}>
    <input type="password" placeholder="console token (sightline token --console)" value=${value} onInput=${(e) => setValue(e.target.value)} aria-label="console token" />
    <button type="submit">Use</button>
    ${status && html`<span class=${status.ok ? 'ok' : 'bad'} id="token-status">${status.text}</span>`}
  </form>`;
}

function App() {
  const [page, setPage] = useState(pageOf());
  const [caller, setCaller] = useState(null);
  const [node, setNode] = useState(null);
  useEffect(() => {
    const onHash = () => setPage(pageOf());
    addEventListener('hashchange', onHash);
    getJson('/api/overview').then((o) => setNode(o.node)).catch(() => undefined);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  useEffect(() => { document.title = `${page.title} · Sightline`; document.body.dataset.page = page.id; }, [page]);
  const View = page.view;
  return html`<header>
      <span class="brand">Sightline</span>
      ${node && html`<span class="node">${node.role === 'single' ? 'single node' : `${node.role} ${node.id}`}</span>`}
      <nav>${PAGES.map((p) => html`<a href=${`#/${p.id}`} class=${p === page ? 'active' : ''} data-nav=${p.id}>${p.title}</a>`)}</nav>
      <${TokenBox} onChange=${setCaller} />
    </header>
    <main id=${`page-${page.id}`}><${View} caller=${caller} /></main>`;
}

render(html`<${App} />`, document.getElementById('app'));
