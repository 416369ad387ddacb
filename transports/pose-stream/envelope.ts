/** The document's standard message structure: type, ISO timestamp, data, metadata {client_id, sequence}. */
export interface EnvelopeMessage<T = unknown> {
  type: string;
  timestamp: string;
  data: T;
  metadata: { client_id: string; sequence: number; compression?: string };
}

/** Stamps messages for one connection with its client id and a strictly increasing sequence. */
export class Envelope {
  private sequence = 0;
  /** `compression`: the negotiated per-message compression, reported in every message's metadata. */
  constructor(readonly clientId: string, private readonly compression?: string) {}

  get sent(): number {
    return this.sequence;
  }

  wrap<T>(type: string, data: T, atMs = Date.now(), extra: Record<string, unknown> = {}): string {
    const msg: EnvelopeMessage<T> & Record<string, unknown> = {
      type, timestamp: new Date(atMs).toISOString(), ...extra, data,
      metadata: { client_id: this.clientId, sequence: ++this.sequence, ...(this.compression ? { compression: this.compression } : {}) },
    };
    return JSON.stringify(msg);
  }
}
