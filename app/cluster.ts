/**
 * The same node on NATS: its parts from the cluster's implementations (cluster/node.ts). Chosen by the settings
 * (`--cluster nats://…`); the app runs it exactly as it runs a single node.
 */
import type { ResolvedSettings } from '../config/settings.js';
import type { Logger } from '../core/log.js';
import { Metrics } from '../core/metrics.js';
import { loadOrCreateKey } from '../services/looks/embedding-token.js';
import { localPersonsWriter, type KnownPersons, type PersonsWriter } from '../services/persons/known-persons.js';
import { localSessionsWriter } from '../services/reconstruction/sessions.js';
import type { Store } from '../services/store/store.js';
import { singleNode, type NodeKind } from './node.js';

export const clusterNode: NodeKind = {
  // A gateway sends model work to the workers: one idle thread is all its pool needs.
  poolThreads: (settings) => (settings.role === 'gateway' ? 1 : settings.workers),
  // The cluster's code (and NATS) is loaded by cluster nodes only.
  join: async (b) => {
    const { ClusterNode } = await import('../cluster/node.js');
    const node = await ClusterNode.join({
      ...b,
      localPersonsWriter: localPersonsWriter(b.persons),
      localSessionsWriter: localSessionsWriter(b.sessions),
      localEmbeddingKey: () => loadOrCreateKey(b.settings.dataDir),
    });
    return {
      inference: node.inference,
      personsWriter: node.personsWriter,
      sessionsWriter: node.sessionsWriter,
      looks: node.looks,
      states: node.states,
      cluster: node.view,
      embeddingKey: node.embeddingKey,
      servesProtocols: node.servesProtocols,
      configured: () => node.configured,
      initialGraph: (graph) => node.initialGraph(graph),
      start: (graph, runtime) => node.start(graph, runtime),
      apply: (next) => node.apply(next),
      close: () => node.close(),
    };
  },
};

/** The kind of node the settings ask for. */
export const nodeKindFor = (settings: ResolvedSettings): NodeKind => (settings.cluster ? clusterNode : singleNode);

/**
 * Where `sightline enroll` writes: the local store, or (with --cluster) the cluster's persons log, which every
 * gateway applies. Answers the writer and what to close when done.
 */
export async function enrollmentWriter(settings: ResolvedSettings, persons: KnownPersons, store: Store, log: Logger):
  Promise<{ writer: PersonsWriter; close(): Promise<void> }> {
  if (!settings.cluster) return { writer: localPersonsWriter(persons), close: async () => undefined };
  const [{ connect }, { SharedPersons }] = await Promise.all([import('nats'), import('../cluster/shared-persons.js')]);
  const nc = await connect({ servers: settings.cluster.split(',').map((s) => s.trim()).filter(Boolean), name: 'sightline-enroll' });
  const shared = await SharedPersons.start(nc, persons, store, log, new Metrics(), Math.max(1, settings.clusterReplicas));
  return { writer: shared, close: async () => { await shared.close(); await nc.drain(); } };
}
