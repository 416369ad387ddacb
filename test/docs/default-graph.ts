/**
 * The shipped default graph (config/examples/default.yaml: the sample video, every protocol) served for the tests
 * that run the documents' clients, with only its ports moved to free ones. The documents' code names
 * `localhost:<its port>`; `address(transport)` is what replaces it.
 */
import { filter, firstValueFrom, timeout } from 'rxjs';
import { SignJWT } from 'jose';
import { startApp, type App } from '../../app/app.js';
import { loadGraph } from '../../app/catalog.js';
import { secretFromFile } from '../../core/secret-file.js';
import { memoryLogger, testSettings } from '../helpers.js';
import { freePort } from '../rtsp-server.js';
import path from 'node:path';

export const DEFAULT_GRAPH = 'config/examples/default.yaml';

export interface DefaultGraph {
  app: App;
  dataDir: string;
  /** `127.0.0.1:<port>` of a transport. */
  address(transport: string): string;
  /** A pose-stream token signed with the graph's secret, expiring in `ttlSeconds` (negative: already expired). */
  token(ttlSeconds?: number): Promise<string>;
}

/** Starts the default graph and waits until its pipeline has delivered a frame. */
export async function startDefaultGraph(): Promise<DefaultGraph> {
  const graph = loadGraph(DEFAULT_GRAPH);
  // Each port of the graph moves to a free one; transports that share a port keep sharing it.
  const moved = new Map<number | undefined, number>();
  for (const t of Object.values(graph.transports)) {
    if (!moved.has(t.port)) moved.set(t.port, await freePort());
    t.port = moved.get(t.port);
  }
  const settings = testSettings();
  const app = await startApp(graph, settings, { log: memoryLogger() });
  await firstValueFrom(app.bus.on('packet').pipe(filter((p) => p.pipeline === 'plaza'), timeout(120_000)));
  const secretFile = path.resolve(settings.dataDir, String((graph.transports['pose-stream-v1'].auth as { secretFile: string }).secretFile));
  return {
    app,
    dataDir: settings.dataDir,
    address: (transport) => `127.0.0.1:${app.portOf(transport)}`,
    token: (ttlSeconds = 600) => new SignJWT({ scope: 'pose:read' }).setProtectedHeader({ alg: 'HS256' }).setSubject('documents')
      .setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
      .sign(new TextEncoder().encode(secretFromFile(secretFile))),
  };
}
