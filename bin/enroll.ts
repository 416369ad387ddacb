/** `sightline enroll <folder>`: one sub-folder per person (Name_Surname), each photo with exactly one face. */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ResolvedSettings } from '../config/settings.js';
import { isCode } from '../core/errors.js';
import { FaceRecognizer } from '../services/persons/face-recognizer.js';
import { KnownPersons } from '../services/persons/known-persons.js';
import { createLogger } from '../core/log.js';
import { Store } from '../services/store/store.js';
import { InferencePool } from '../inference/pool.js';
import { WORKER_OPS } from '../app/catalog.js';
import { enrollmentWriter } from '../app/cluster.js';

const IMAGE = /\.(jpe?g|png|webp|bmp)$/i;

export interface EnrollOptions { detector: string; embedder: string }

export async function enrollFolder(folder: string, settings: ResolvedSettings, opts: EnrollOptions,
  print: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<number> {
  const people = readdirSync(folder).filter((d) => statSync(path.join(folder, d)).isDirectory()).sort();
  if (!people.length) { print(`enroll: ${folder} has no person folders (expected <folder>/<Name_Surname>/<photo>.jpg)`); return 2; }
  const store = Store.open(settings.dataDir);
  // Writes only: a running server picks the new rows up itself, so no search index is loaded here.
  const log = createLogger(settings.logLevel);
  const persons = new KnownPersons(store, null, log);
  // With --cluster the persons go to the cluster's stream (every gateway applies it), not this store alone.
  const { writer, close } = await enrollmentWriter(settings, persons, store, log);
  const pool = new InferencePool({ workers: settings.workers, ortThreads: settings.ortThreads, ops: WORKER_OPS });
  const recognizer = new FaceRecognizer(pool, persons, {
    detector: { path: path.resolve(settings.modelDir, opts.detector), kind: 'yunet' },
    embedder: { path: path.resolve(settings.modelDir, opts.embedder), kind: 'mobilefacenet' },
    faceScore: 0.8, threshold: 0.4, maxSide: 1280, maxPixels: 40_000_000,
  });
  let added = 0;
  let refused = 0;
  let skipped = 0;
  try {
    for (const dir of people) {
      const [name, ...rest] = dir.split(/[_ ]+/);
      const surname = rest.join(' ') || null;
      const person = persons.list().find((p) => p.name === name && p.surname === surname) ?? await writer.create({ name, surname });
      const known = new Set(persons.photos(person.id).map((p) => p.sha256));
      for (const file of readdirSync(path.join(folder, dir)).filter((f) => IMAGE.test(f)).sort()) {
        const bytes = readFileSync(path.join(folder, dir, file));
        const sha = createHash('sha256').update(bytes).digest('hex');
        const label = `${dir}/${file}`;
        if (known.has(sha)) { skipped++; print(`  skip    ${label} (already enrolled)`); continue; }
        try {
          const { faces } = await recognizer.recognize(bytes);
          if (faces.length !== 1) { refused++; print(`  refuse  ${label}: ${faces.length} faces (need exactly one)`); continue; }
          if (!await writer.addPhoto(person.id, faces[0].embedding, sha)) throw new Error(`person ${person.id} was deleted meanwhile`);
          added++;
          print(`  add     ${label} → person ${person.id} (${name}${surname ? ` ${surname}` : ''})`);
        } catch (err) {
          refused++;
          print(`  refuse  ${label}: ${isCode(err, 'BAD_IMAGE', 'IMAGE_TOO_LARGE') ? 'not a readable image' : (err as Error).message}`);
        }
      }
    }
  } finally {
    await pool.close();
    await close();
    store.close();
  }
  print(`enrolled ${added} photo(s) of ${people.length} person(s); ${skipped} already enrolled; ${refused} refused`);
  // Failure only when not a single photo of the folder is (or was already) usable.
  return refused && !added && !skipped ? 1 : 0;
}
