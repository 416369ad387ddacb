/** Reading request bodies with a size limit, as JSON or as one uploaded file (multipart/form-data). */
import type http from 'node:http';
import busboy from 'busboy';
import { coded } from '../../core/errors.js';

export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(coded('TOO_LARGE', `request body is larger than ${limit} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) { reject(coded('TOO_LARGE', `request body is larger than ${limit} bytes`)); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const body = await readBody(req, limit);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw coded('INVALID_JSON', 'request body is not valid JSON');
  }
}

/** The first file of a multipart/form-data upload. */
export function readUploadedFile(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: limit, files: 1 } });
    } catch (err) {
      reject(coded('BAD_FORMAT', `bad multipart upload: ${(err as Error).message}`));
      return;
    }
    let file: Buffer | null = null;
    bb.on('file', (_name, stream) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => reject(coded('TOO_LARGE', `uploaded file is larger than ${limit} bytes`)));
      stream.on('close', () => { file ??= Buffer.concat(chunks); });
    });
    bb.on('close', () => (file ? resolve(file) : reject(coded('BAD_FORMAT', 'multipart upload has no file'))));
    bb.on('error', (err: Error) => reject(coded('BAD_FORMAT', `bad multipart upload: ${err.message}`)));
    req.pipe(bb);
  });
}
