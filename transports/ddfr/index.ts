/**
 * DDFR (ddfr-face-recognition.md): binary JPEG/PNG frames on WS `/ws`, answered in order with the faces
 * found and the known persons they belong to; plus the REST API that manages those known persons.
 */
import { createHash } from 'node:crypto';
import type http from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TransportSpec } from '../../config/graph.js';
import { BadImageError, FaceRecognizer } from '../../services/persons/face-recognizer.js';
import { ageOn, PersonsUnavailableError, type Person, type PersonInput } from '../../services/persons/known-persons.js';
import { modelPath } from '../../pipeline/runtime.js';
import { HttpError, readJson, readUploadedFile } from '../http/body.js';
import { sendJson } from '../http/hub.js';
import type { MountedTransport, TransportContext } from '../contract.js';

const PROTOCOL = 'ddfr';

export interface DdfrSpec extends TransportSpec {
  port: number;
  detector: string;
  embedder: string;
  /** Cosine similarity needed to name a person (the document's 0.4). */
  threshold?: number;
  faceScore?: number;
  /** Largest frame or photo accepted, in bytes. */
  maxImageBytes?: number;
}

/** The document's face object. */
function faceJson(box: [number, number, number, number], person: Person | null, today: Date) {
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

function personJson(p: Person & { photos?: number }, today = new Date()) {
  return {
    id: p.id, name: p.name, surname: p.surname, birthday: p.birthday, age: ageOn(p.birthday, today),
    relationship: p.relationship, role: p.role, photos: p.photos, created_at: new Date(p.createdMs).toISOString(),
  };
}

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

/** Validates a person body; `partial` for updates. Throws HttpError(400) naming the field. */
function parsePerson(body: unknown, partial: boolean): Partial<PersonInput> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const known = ['name', 'surname', 'birthday', 'relationship', 'role'];
  const extra = Object.keys(b).filter((k) => !known.includes(k));
  if (extra.length) throw new HttpError(400, `unknown field "${extra[0]}"; expected ${known.join(', ')}`);
  const out: Partial<PersonInput> = {};
  const text = (k: 'name' | 'surname' | 'relationship', nullable: boolean) => {
    if (!(k in b)) return;
    const v = b[k];
    if (v === null && nullable) { (out as Record<string, unknown>)[k] = null; return; }
    if (typeof v !== 'string' || v.trim() === '' || v.length > 100) throw new HttpError(400, `"${k}" must be a non-empty string of at most 100 characters${nullable ? ' or null' : ''}`);
    out[k] = v.trim();
  };
  text('name', false);
  text('surname', true);
  text('relationship', true);
  if ('birthday' in b) {
    const v = b.birthday;
    if (v !== null && (typeof v !== 'string' || !DATE.test(v) || Number.isNaN(Date.parse(v)) || Date.parse(v) > Date.now())) {
      throw new HttpError(400, '"birthday" must be a past date as YYYY-MM-DD, or null');
    }
    out.birthday = v as string | null;
  }
  if ('role' in b) {
    if (b.role !== 'user' && b.role !== 'guest') throw new HttpError(400, '"role" must be "user" or "guest"');
    out.role = b.role;
  }
  if (!partial && out.name === undefined) throw new HttpError(400, '"name" is required');
  return out;
}

export function mountDdfr(spec: DdfrSpec, ctx: TransportContext): MountedTransport {
  const { hub, metrics, log, persons, inference, settings } = ctx;
  const graph = ctx.graph();
  const maxImageBytes = spec.maxImageBytes ?? 10 * 1024 * 1024;
  const recognizer = new FaceRecognizer(inference, persons, {
    detector: { path: modelPath(graph, settings, spec.detector), kind: 'yunet' },
    embedder: { path: modelPath(graph, settings, spec.embedder), kind: 'mobilefacenet' },
    faceScore: spec.faceScore ?? 0.8, threshold: spec.threshold ?? 0.4, maxSide: 1280, maxPixels: 40_000_000,
  });
  // Load both models now, so a missing or corrupt file is reported at start, not on the first frame.
  for (const model of [recognizer.opts.detector, recognizer.opts.embedder]) {
    inference.preload(model).catch((err: Error) => log.error(`ddfr: ${err.message}`));
  }
  // Load the known faces (or build their search graph) now rather than on the first frame.
  persons.search?.warm();
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  let warnedEmpty = false;

  // ---- WebSocket /ws ----------------------------------------------------------------------------
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxImageBytes });
  const MAX_PENDING = 8;

  const answer = async (data: Buffer): Promise<string> => {
    try {
      const r = await recognizer.recognize(data);
      if (persons.indexSize === 0 && !warnedEmpty) {
        warnedEmpty = true;
        log.warn('ddfr: no known persons enrolled; detection only, every face is Unknown');
      }
      const today = new Date();
      return JSON.stringify({ status: 'ok', faces: r.faces.map((f) => faceJson(f.box, f.match?.person ?? null, today)) });
    } catch (err) {
      if (err instanceof BadImageError) {
        metrics.wsErrors.inc({ protocol: PROTOCOL, kind: 'bad_image' });
        log.debug(`ddfr: frame not decoded: ${err.message}`);
      } else {
        metrics.wsErrors.inc({ protocol: PROTOCOL, kind: 'internal' });
        log.error(`ddfr: frame failed: ${(err as Error).message}`);
      }
      // The document: a frame that cannot be processed is answered with null; the connection stays open.
      return 'null';
    }
  };

  wss.on('connection', (ws: WebSocket) => {
    metrics.wsClients.inc({ protocol: PROTOCOL });
    // Frames of one connection are answered in order; different connections run in parallel.
    let chain = Promise.resolve();
    let pending = 0;
    ws.on('message', (raw, isBinary) => {
      inbound.inc();
      if (!isBinary) {
        metrics.wsErrors.inc({ protocol: PROTOCOL, kind: 'text_frame' });
        // Through the chain too, so replies keep the order of the messages they answer.
        chain = chain.then(() => {
          if (ws.readyState !== ws.OPEN) return;
          ws.send(JSON.stringify({ status: 'error', message: 'send each frame as a binary message holding a JPEG or PNG image' }));
          out.inc();
        });
        return;
      }
      const data = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw as ArrayBuffer);
      if (pending >= MAX_PENDING) {
        // A client sending faster than frames are processed: answer null at once rather than queue without bound.
        metrics.wsDropped.inc({ protocol: PROTOCOL });
        chain = chain.then(() => { if (ws.readyState === ws.OPEN) { ws.send('null'); out.inc(); } });
        return;
      }
      pending++;
      const result = answer(data);
      chain = chain.then(async () => {
        const text = await result;
        pending--;
        if (ws.readyState === ws.OPEN) { ws.send(text); out.inc(); }
      });
    });
    ws.on('close', () => metrics.wsClients.dec({ protocol: PROTOCOL }));
    ws.on('error', () => undefined);
  });
  hub.upgrade(spec.id, spec.port, '/ws', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  // ---- REST: known persons ----------------------------------------------------------------------
  const route = (method: string, pattern: RegExp, handler: (req: http.IncomingMessage, res: http.ServerResponse, m: RegExpExecArray) => Promise<void> | void) => {
    hub.route(spec.id, spec.port, method, (p) => pattern.test(p), async (req, res, url) => {
      try {
        await handler(req, res, pattern.exec(url.pathname)!);
      } catch (err) {
        if (err instanceof HttpError) sendJson(res, err.status, { detail: err.message });
        else if (err instanceof PersonsUnavailableError) sendJson(res, 503, { detail: err.message });
        else throw err;
      }
    });
  };
  const personOr404 = (id: string): Person => {
    const p = persons.get(Number(id));
    if (!p) throw new HttpError(404, `person ${id} not found`);
    return p;
  };

  route('GET', /^\/persons$/, (_req, res) => sendJson(res, 200, persons.list().map((p) => personJson(p))));
  route('POST', /^\/persons$/, async (req, res) => {
    const input = parsePerson(await readJson(req, 64 * 1024), false) as PersonInput;
    sendJson(res, 201, personJson({ ...await persons.writer.create(input), photos: 0 }));
  });
  route('GET', /^\/persons\/(\d{1,15})$/, (_req, res, m) => {
    const p = personOr404(m[1]);
    sendJson(res, 200, personJson({ ...p, photos: persons.photos(p.id).length }));
  });
  const update = async (req: http.IncomingMessage, res: http.ServerResponse, m: RegExpExecArray) => {
    const p = personOr404(m[1]);
    const updated = await persons.writer.update(p.id, parsePerson(await readJson(req, 64 * 1024), true));
    if (!updated) throw new HttpError(404, `person ${m[1]} not found`);
    sendJson(res, 200, personJson({ ...updated, photos: persons.photos(p.id).length }));
  };
  route('PATCH', /^\/persons\/(\d{1,15})$/, update);
  route('PUT', /^\/persons\/(\d{1,15})$/, update);
  route('DELETE', /^\/persons\/(\d{1,15})$/, async (_req, res, m) => {
    personOr404(m[1]);
    await persons.writer.delete(Number(m[1]));
    res.writeHead(204).end();
  });
  route('GET', /^\/persons\/(\d{1,15})\/photos$/, (_req, res, m) => {
    const p = personOr404(m[1]);
    sendJson(res, 200, persons.photos(p.id).map((ph) => ({ id: ph.id, person_id: ph.personId, sha256: ph.sha256, created_at: new Date(ph.createdMs).toISOString() })));
  });
  route('POST', /^\/persons\/(\d{1,15})\/photos$/, async (req, res, m) => {
    const p = personOr404(m[1]);
    const image = await photoFromRequest(req, maxImageBytes);
    let faces;
    try {
      faces = (await recognizer.recognize(image)).faces;
    } catch (err) {
      if (err instanceof BadImageError) throw new HttpError(422, `the photo is not a readable image (${err.message})`);
      throw err;
    }
    if (faces.length === 0) throw new HttpError(422, 'no face found in the photo; send a photo with exactly one clearly visible face');
    if (faces.length > 1) throw new HttpError(422, `${faces.length} faces found in the photo; send a photo with exactly one face`);
    const photo = await persons.writer.addPhoto(p.id, faces[0].embedding, createHash('sha256').update(image).digest('hex'));
    if (!photo) throw new HttpError(404, `person ${m[1]} not found`);
    sendJson(res, 201, { id: photo.id, person_id: p.id, sha256: photo.sha256, created_at: new Date(photo.createdMs).toISOString() });
  });
  route('DELETE', /^\/persons\/(\d{1,15})\/photos\/(\d{1,15})$/, async (_req, res, m) => {
    personOr404(m[1]);
    if (!await persons.writer.deletePhoto(Number(m[1]), Number(m[2]))) throw new HttpError(404, `photo ${m[2]} of person ${m[1]} not found`);
    res.writeHead(204).end();
  });

  return {
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

/** A photo as JSON `{"image": "<base64>"}` or as a multipart/form-data file. */
async function photoFromRequest(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const type = String(req.headers['content-type'] ?? '');
  if (type.startsWith('multipart/form-data')) return readUploadedFile(req, limit);
  if (!type.startsWith('application/json')) throw new HttpError(415, 'send the photo as application/json {"image": "<base64>"} or as multipart/form-data');
  const body = await readJson(req, Math.ceil(limit * 1.4) + 1024);
  const image = (body as { image?: unknown } | null)?.image;
  if (typeof image !== 'string' || image.length === 0) throw new HttpError(400, '"image" must be a base64 string');
  const b64 = image.replace(/^data:[^;]+;base64,/, '');
  if (!/^[A-Za-z0-9+/\s]+={0,2}$/.test(b64)) throw new HttpError(400, '"image" is not valid base64');
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length > limit) throw new HttpError(413, `photo is larger than ${limit} bytes`);
  return bytes;
}
