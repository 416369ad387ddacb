/** Every transport a graph's `transports` section may configure, by name. */
import type { TransportSpec } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { EventBus } from '../pipeline/event-bus.js';
import type { Logger } from '../pipeline/log.js';
import type { Metrics } from '../pipeline/metrics.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { HttpHub } from './http-hub.js';
import { mountMetrics } from './metrics.js';

export const TRANSPORT_NAMES = ['metrics'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

export interface TransportContext {
  hub: HttpHub;
  bus: EventBus;
  metrics: Metrics;
  settings: ResolvedSettings;
  log: Logger;
  runtime: () => Runtime;
}

/** What a mounted transport holds besides its routes (sockets, timers), released on unmount. */
export interface MountedTransport { close(): Promise<void> }

export interface TransportDefinition {
  name: TransportName;
  defaultPort(settings: ResolvedSettings): number;
  mount(spec: TransportSpec, port: number, ctx: TransportContext): MountedTransport;
}

const definitions: TransportDefinition[] = [
  {
    name: 'metrics',
    defaultPort: (s) => s.metricsPort,
    mount: (_spec, port, ctx) => {
      mountMetrics(ctx.hub, port, ctx.metrics, ctx.runtime);
      return { close: async () => undefined };
    },
  },
];

export function transportDefinition(name: string): TransportDefinition | undefined {
  return definitions.find((d) => d.name === name);
}
