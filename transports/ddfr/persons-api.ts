/**
 * The known-persons REST API beside DDFR's `/ws`: persons and their photos (a photo is enrolled as the face
 * embedding of the one face it shows). Errors are `{"detail": ...}` with the code's HTTP status.
 */
import { createHash } from 'node:crypto';
import type http from 'node:http';
import type { Clock } from '../../core/clock.js';
import { coded, isCode, SightlineError } from '../../core/errors.js';
import type { FaceRecognizer } from '../../services/persons/face-recognizer.js';
import type { KnownPersons, Person, PersonInput, PersonsWriter } from '../../services/persons/known-persons.js';
import { readJson, readUploadedFile } from '../http/body.js';
import { sendJson, type HttpHub } from '../http/hub.js';
import { parsePerson, personJson } from './messages.js';

export interface PersonsApiDeps {
  hub: HttpHub;
  owner: string;
  port: number;
  persons: KnownPersons;
  writer: PersonsWriter;
  recognizer: FaceRecognizer;
  clock: Clock;
  maxImageBytes: number;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, m: RegExpExecArray) => Promise<void> | void;

const BODY_LIMIT = 64 * 1024;
const PERSON = /^\/persons\/(\d{1,15})$/;
const PHOTOS = /^\/persons\/(\d{1,15})\/photos$/;
const PHOTO = /^\/persons\/(\d{1,15})\/photos\/(\d{1,15})$/;

export function mountPersonsApi(d: PersonsApiDeps): void {
  const { persons, writer, recognizer, clock } = d;
  const route = (method: string, pattern: RegExp, handler: Handler): void => {
    d.hub.route(d.owner, d.port, method, (p) => pattern.test(p), async (req, res, url) => {
      try {
        await handler(req, res, pattern.exec(url.pathname)!);
      } catch (err) {
        if (!(err instanceof SightlineError) || err.code === 'INTERNAL') throw err;
        sendJson(res, err.status, { detail: err.message });
      }
    });
  };
  const personOr404 = (id: string): Person => {
    const p = persons.get(Number(id));
    if (!p) throw coded('NOT_FOUND', `person ${id} not found`);
    return p;
  };
  const body = async (req: http.IncomingMessage, partial: boolean) => parsePerson(await readJson(req, BODY_LIMIT), partial, clock.now());

  route('GET', /^\/persons$/, (_req, res) => sendJson(res, 200, persons.list().map((p) => personJson(p))));
  route('POST', /^\/persons$/, async (req, res) => {
    const input = await body(req, false) as PersonInput;
    sendJson(res, 201, personJson({ ...await writer.create(input), photos: 0 }));
  });
  route('GET', PERSON, (_req, res, m) => {
    const p = personOr404(m[1]);
    sendJson(res, 200, personJson({ ...p, photos: persons.photos(p.id).length }));
  });
  const update: Handler = async (req, res, m) => {
    const p = personOr404(m[1]);
    const updated = await writer.update(p.id, await body(req, true));
    if (!updated) throw coded('NOT_FOUND', `person ${m[1]} not found`);
    sendJson(res, 200, personJson({ ...updated, photos: persons.photos(p.id).length }));
  };
  route('PATCH', PERSON, update);
  route('PUT', PERSON, update);
  route('DELETE', PERSON, async (_req, res, m) => {
    personOr404(m[1]);
    await writer.delete(Number(m[1]));
    res.writeHead(204).end();
  });
  route('GET', PHOTOS, (_req, res, m) => {
    const p = personOr404(m[1]);
    sendJson(res, 200, persons.photos(p.id).map((ph) => ({ id: ph.id, person_id: ph.personId, sha256: ph.sha256,
      created_at: new Date(ph.createdMs).toISOString() })));
  });
  route('POST', PHOTOS, async (req, res, m) => {
    const p = personOr404(m[1]);
    const image = await photoFromRequest(req, d.maxImageBytes);
    let faces;
    try {
      faces = (await recognizer.recognize(image)).faces;
    } catch (err) {
      if (isCode(err, 'BAD_IMAGE', 'IMAGE_TOO_LARGE')) throw coded('BAD_IMAGE', `the photo is not a readable image (${err.message})`);
      throw err;
    }
    if (faces.length === 0) throw coded('NO_FACE', 'no face found in the photo; send a photo with exactly one clearly visible face');
    if (faces.length > 1) throw coded('NO_FACE', `${faces.length} faces found in the photo; send a photo with exactly one face`);
    const photo = await writer.addPhoto(p.id, faces[0].embedding, createHash('sha256').update(image).digest('hex'));
    if (!photo) throw coded('NOT_FOUND', `person ${m[1]} not found`);
    sendJson(res, 201, { id: photo.id, person_id: p.id, sha256: photo.sha256, created_at: new Date(photo.createdMs).toISOString() });
  });
  route('DELETE', PHOTO, async (_req, res, m) => {
    personOr404(m[1]);
    if (!await writer.deletePhoto(Number(m[1]), Number(m[2]))) throw coded('NOT_FOUND', `photo ${m[2]} of person ${m[1]} not found`);
    res.writeHead(204).end();
  });
}

/** A photo as JSON `{"image": "<base64>"}` or as a multipart/form-data file. */
async function photoFromRequest(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const type = String(req.headers['content-type'] ?? '');
  if (type.startsWith('multipart/form-data')) return readUploadedFile(req, limit);
  if (!type.startsWith('application/json')) throw coded('UNSUPPORTED_MEDIA_TYPE', 'send the photo as application/json {"image": "<base64>"} or as multipart/form-data');
  const body = await readJson(req, Math.ceil(limit * 1.4) + 1024);
  const image = (body as { image?: unknown } | null)?.image;
  if (typeof image !== 'string' || image.length === 0) throw coded('BAD_FORMAT', '"image" must be a base64 string');
  const b64 = image.replace(/^data:[^;]+;base64,/, '');
  if (!/^[A-Za-z0-9+/\s]+={0,2}$/.test(b64)) throw coded('BAD_FORMAT', '"image" is not valid base64');
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length > limit) throw coded('TOO_LARGE', `photo is larger than ${limit} bytes`);
  return bytes;
}
