/** Transport names a graph's `transports` section may configure. */
export const TRANSPORT_NAMES = ['metrics'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];
