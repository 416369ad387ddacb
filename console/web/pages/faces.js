// Faces and persons: the saved face crops, newest first; and the known persons, listed, added with a photo, renamed
// and deleted through the persons API (changes need the console token).
import { useState } from 'preact/hooks';
import { change, fmt } from '../api.js';
import { usePoll } from '../hooks.js';
import { html } from '../html.js';

function Crops() {
  const { data, error } = usePoll('/api/faces?limit=120', 5000);
  if (!data) return html`<p class="muted">${error ? error.message : 'loading…'}</p>`;
  if (!data.faces.length) return html`<p class="muted" id="crops">No face saved yet.</p>`;
  return html`<div class="crops" id="crops">${data.faces.map((f) => html`<figure class="crop" data-face=${`${f.pipeline}/${f.faceId}`}>
    <img src=${f.image} alt=${`face ${f.faceId}`} loading="lazy" />
    <figcaption>${f.pipeline} #${f.faceId}<br /><span class="muted">${fmt.time(f.createdMs)} · ${fmt.num(f.score, 2)}</span></figcaption>
  </figure>`)}</div>`;
}

function AddPerson({ onDone, setMessage }) {
  const [name, setName] = useState('');
  const [surname, setSurname] = useState('');
  const [role, setRole] = useState('guest');
  const [photo, setPhoto] = useState(null);
  const add = async (e) => {
    e.preventDefault();
    try {
      const person = await change('POST', '/api/persons', { name, surname: surname || undefined, role });
      if (photo) {
        const form = new FormData();
        form.append('file', photo);
        try {
          await change('POST', `/api/persons/${person.id}/photos`, form);
        } catch (err) {
          setMessage({ ok: false, text: `${person.name} added, but the photo was refused: ${err.message}` });
          onDone();
          return;
        }
      }
      setMessage({ ok: true, text: `${person.name} added${photo ? ' with a photo' : ''}` });
      setName(''); setSurname(''); setPhoto(null); e.target.reset();
      onDone();
    } catch (err) { setMessage({ ok: false, text: err.message }); }
  };
  return html`<form class="add-person" id="add-person" onSubmit=${add}>
    <input required placeholder="name" name="name" value=${name} onInput=${(e) => setName(e.target.value)} />
    <input placeholder="surname" name="surname" value=${surname} onInput=${(e) => setSurname(e.target.value)} />
    <select name="role" value=${role} onChange=${(e) => setRole(e.target.value)}><option value="guest">guest</option><option value="user">user</option></select>
    <input type="file" name="photo" accept="image/jpeg,image/png,image/webp" onChange=${(e) => setPhoto(e.target.files[0] ?? null)} />
    <button type="submit">Add person</button>
  </form>`;
}

function Person({ p, onDone, setMessage }) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(p.name);
  const act = async (what, fn) => {
    try { await fn(); setMessage({ ok: true, text: what }); onDone(); } catch (err) { setMessage({ ok: false, text: err.message }); }
  };
  return html`<tr data-person=${p.id}>
    <td>${p.id}</td>
    <td>${editing ? html`<input value=${name} onInput=${(e) => setName(e.target.value)} data-rename />` : html`<span data-name>${p.name}</span>`} ${p.surname ?? ''}</td>
    <td>${p.role}</td><td class="n">${p.photos}</td><td>${fmt.dateTime(Date.parse(p.created_at))}</td>
    <td>${editing
      ? html`<button data-save onClick=${() => act(`renamed to ${name}`, async () => { await change('PATCH', `/api/persons/${p.id}`, { name }); setEditing(false); })}>save</button>
        <button onClick=${() => setEditing(false)}>cancel</button>`
      : html`<button data-edit onClick=${() => setEditing(true)}>rename</button>
        <button data-delete onClick=${() => confirm(`Delete ${p.name}?`) && act(`${p.name} deleted`, () => change('DELETE', `/api/persons/${p.id}`))}>delete</button>`}</td>
  </tr>`;
}

function Persons({ caller }) {
  const [version, setVersion] = useState(0);
  const [message, setMessage] = useState(null);
  const { data, error } = usePoll(`/api/persons?v=${version}`, 10000);
  const refresh = () => setVersion((v) => v + 1);
  return html`<section id="persons">
    ${!caller && html`<p class="muted">Type the console token above to add, rename or delete persons.</p>`}
    <${AddPerson} onDone=${refresh} setMessage=${setMessage} />
    ${message && html`<p class=${message.ok ? 'ok' : 'bad'} id="persons-message">${message.text}</p>`}
    ${error && html`<p class="bad">${error.message}</p>`}
    <table class="grid"><thead><tr><th>id</th><th>name</th><th>role</th><th>photos</th><th>added</th><th></th></tr></thead>
      <tbody>${(data ?? []).map((p) => html`<${Person} key=${p.id} p=${p} onDone=${refresh} setMessage=${setMessage} />`)}</tbody></table>
  </section>`;
}

export function Faces({ caller }) {
  return html`<div>
    <h2>Known persons</h2><${Persons} caller=${caller} />
    <h2>Saved faces <span class="muted">newest first</span></h2><${Crops} />
  </div>`;
}
