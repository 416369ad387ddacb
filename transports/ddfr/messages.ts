/** DDFR's JSON: the document's face object, the persons API's person, and the validation of a person body. */
import { coded } from '../../core/errors.js';
import type { Box } from '../../core/types.js';
import { ageOn, type Person, type PersonInput } from '../../services/persons/known-persons.js';

/** The document's face object (an unknown face is "Unknown" with nulls). */
export function faceJson(box: Box, person: Person | null, today: Date) {
  const [top, left, right, bottom] = [box[1], box[0], box[2], box[3]].map(Math.round);
  return {
    id: `${top}_${left}`, top, right, bottom, left,
    name: person ? person.name : 'Unknown',
    surname: person ? person.surname : null,
    age: person ? ageOn(person.birthday, today) : 0,
    relationship: person ? person.relationship : null,
    role: person ? person.role : null,
  };
}

export function personJson(p: Person & { photos?: number }, today = new Date()) {
  return {
    id: p.id, name: p.name, surname: p.surname, birthday: p.birthday, age: ageOn(p.birthday, today),
    relationship: p.relationship, role: p.role, photos: p.photos, created_at: new Date(p.createdMs).toISOString(),
  };
}

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const FIELDS = ['name', 'surname', 'birthday', 'relationship', 'role'];

/** Validates a person body; `partial` for updates. Throws BAD_FORMAT naming the field. */
export function parsePerson(body: unknown, partial: boolean, nowMs: number): Partial<PersonInput> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw coded('BAD_FORMAT', 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const extra = Object.keys(b).filter((k) => !FIELDS.includes(k));
  if (extra.length) throw coded('BAD_FORMAT', `unknown field "${extra[0].slice(0, 64)}"; expected ${FIELDS.join(', ')}`);
  const out: Partial<PersonInput> = {};
  const text = (k: 'name' | 'surname' | 'relationship', nullable: boolean) => {
    if (!(k in b)) return;
    const v = b[k];
    if (v === null && nullable) { (out as Record<string, unknown>)[k] = null; return; }
    if (typeof v !== 'string' || v.trim() === '' || v.length > 100) throw coded('BAD_FORMAT', `"${k}" must be a non-empty string of at most 100 characters${nullable ? ' or null' : ''}`);
    out[k] = v.trim();
  };
  text('name', false);
  text('surname', true);
  text('relationship', true);
  if ('birthday' in b) {
    const v = b.birthday;
    if (v !== null && (typeof v !== 'string' || !DATE.test(v) || Number.isNaN(Date.parse(v)) || Date.parse(v) > nowMs)) {
      throw coded('BAD_FORMAT', '"birthday" must be a past date as YYYY-MM-DD, or null');
    }
    out.birthday = v as string | null;
  }
  if ('role' in b) {
    if (b.role !== 'user' && b.role !== 'guest') throw coded('BAD_FORMAT', '"role" must be "user" or "guest"');
    out.role = b.role;
  }
  if (!partial && out.name === undefined) throw coded('BAD_FORMAT', '"name" is required');
  return out;
}
