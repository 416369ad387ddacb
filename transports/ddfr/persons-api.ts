/**
 * The known-persons REST API beside DDFR's `/ws`: persons and their photos (a photo is enrolled as the face embedding
 * of the one face it shows). Bodies are JSON (or one multipart file for a photo), bounded and validated before use;
 * writes from pages of another origin are refused. Errors are `{"detail": ...}` with the code's HTTP status.
 */
import { createHash } from 'node:crypto';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Clock } from '../../core/clock.js';
import { coded, isCode, SightlineError } from '../../core/errors.js';
import type { FaceRecognizer } from '../../services/persons/face-recognizer.js';
import type { KnownPersons, Person, PersonInput, PersonsWriter } from '../../services/persons/known-persons.js';
import { jsonBodies, refuseCrossSiteWrites } from '../http/bodies.js';
import { parsePerson, personJson } from './messages.js';

export interface PersonsApiDeps {
  persons: KnownPersons;
  writer: PersonsWriter;
  recognizer: FaceRecognizer;
  clock: Clock;
  maxImageBytes: number;
  /** Page origins (besides this server's own) allowed to change persons from a browser. */
  allowOrigins: string[];
}

const PERSON_BODY_BYTES = 64 * 1024;
/** Ids are positive integers of at most 15 digits (JavaScript's safe integers). */
const ID = { type: 'string', pattern: '^[0-9]{1,15}$' };
const personParams = { type: 'object', required: ['id'], properties: { id: ID } };
const photoParams = { type: 'object', required: ['id', 'photoId'], properties: { id: ID, photoId: ID } };
const objectBody = { type: 'object', maxProperties: 16 };

type Params = { id: string; photoId?: string };

export function personsRoutes(app: FastifyInstance, d: PersonsApiDeps): void {
  const { persons, writer, recognizer, clock } = d;
  jsonBodies(app, { otherTypes: 'send application/json (a photo: {"image": "<base64>"} or multipart/form-data with one file)' });
  refuseCrossSiteWrites(app, d.allowOrigins);
  // An id that is not a number names no person; a body that is not an object is refused as the API documents.
  app.setSchemaErrorFormatter((_errors, dataVar) => (dataVar === 'params' ? coded('NOT_FOUND', 'not found')
    : coded('BAD_FORMAT', 'request body must be a JSON object')));
  void app.register(multipart, { limits: { fileSize: d.maxImageBytes, files: 1, fields: 4, parts: 5, headerPairs: 50 } });

  const personOr404 = (id: string): Person => {
    const p = persons.get(Number(id));
    if (!p) throw coded('NOT_FOUND', `person ${id} not found`);
    return p;
  };
  const body = (req: FastifyRequest, partial: boolean) => parsePerson(req.body, partial, clock.now());

  app.get('/persons', async () => persons.list().map((p) => personJson(p)));
  app.post('/persons', { bodyLimit: PERSON_BODY_BYTES, schema: { body: objectBody } }, async (req, reply) => {
    const input = body(req, false) as PersonInput;
    reply.code(201).send(personJson({ ...await writer.create(input), photos: 0 }));
  });
  app.get<{ Params: Params }>('/persons/:id', { schema: { params: personParams } }, async (req) => {
    const p = personOr404(req.params.id);
    return personJson({ ...p, photos: persons.photos(p.id).length });
  });
  for (const method of ['PATCH', 'PUT'] as const) {
    app.route<{ Params: Params }>({
      method, url: '/persons/:id', bodyLimit: PERSON_BODY_BYTES, schema: { params: personParams, body: objectBody },
      handler: async (req) => {
        const p = personOr404(req.params.id);
        const updated = await writer.update(p.id, body(req, true));
        if (!updated) throw coded('NOT_FOUND', `person ${req.params.id} not found`);
        return personJson({ ...updated, photos: persons.photos(p.id).length });
      },
    });
  }
  app.delete<{ Params: Params }>('/persons/:id', { schema: { params: personParams } }, async (req, reply) => {
    personOr404(req.params.id);
    await writer.delete(Number(req.params.id));
    reply.code(204).send();
  });
  app.get<{ Params: Params }>('/persons/:id/photos', { schema: { params: personParams } }, async (req) => {
    const p = personOr404(req.params.id);
    return persons.photos(p.id).map((ph) => ({ id: ph.id, person_id: ph.personId, sha256: ph.sha256, created_at: new Date(ph.createdMs).toISOString() }));
  });
  app.post<{ Params: Params }>('/persons/:id/photos', {
    // Room for the base64 of the largest photo.
    bodyLimit: Math.ceil(d.maxImageBytes * 1.4) + 1024, schema: { params: personParams },
  }, async (req, reply) => {
    const p = personOr404(req.params.id);
    const image = await photoOf(req, d.maxImageBytes);
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
    if (!photo) throw coded('NOT_FOUND', `person ${req.params.id} not found`);
    reply.code(201).send({ id: photo.id, person_id: p.id, sha256: photo.sha256, created_at: new Date(photo.createdMs).toISOString() });
  });
  app.delete<{ Params: Params }>('/persons/:id/photos/:photoId', { schema: { params: photoParams } }, async (req, reply) => {
    personOr404(req.params.id);
    if (!await writer.deletePhoto(Number(req.params.id), Number(req.params.photoId))) {
      throw coded('NOT_FOUND', `photo ${req.params.photoId} of person ${req.params.id} not found`);
    }
    reply.code(204).send();
  });
}

/** A photo as JSON `{"image": "<base64>"}` or as one multipart/form-data file. */
async function photoOf(req: FastifyRequest, limit: number): Promise<Buffer> {
  if (req.isMultipart()) {
    try {
      const file = await req.file();
      if (!file) throw coded('BAD_FORMAT', 'multipart upload has no file');
      const bytes = await file.toBuffer();
      if (file.file.truncated) throw coded('TOO_LARGE', `uploaded file is larger than ${limit} bytes`);
      return bytes;
    } catch (err) {
      // The multipart parser's own errors (a malformed form) are the client's; its limits carry their status.
      if (err instanceof SightlineError || typeof (err as { statusCode?: unknown }).statusCode === 'number') throw err;
      throw coded('BAD_FORMAT', `bad multipart upload: ${String((err as Error).message).slice(0, 100)}`);
    }
  }
  const image = (req.body as { image?: unknown } | null | undefined)?.image;
  if (typeof image !== 'string' || image.length === 0) throw coded('BAD_FORMAT', '"image" must be a base64 string');
  const b64 = image.replace(/^data:[^;]+;base64,/, '');
  if (!/^[A-Za-z0-9+/\s]+={0,2}$/.test(b64)) throw coded('BAD_FORMAT', '"image" is not valid base64');
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length > limit) throw coded('TOO_LARGE', `photo is larger than ${limit} bytes`);
  return bytes;
}
