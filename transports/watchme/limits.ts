/** WatchMe's fixed limits (the configurable ones are options of the transport). */
export const LIMITS = {
  /** Session ids: the document's path parameter, bounded. */
  sessionId: /^[A-Za-z0-9_-]{1,128}$/,
  /** Images with more pixels than this are refused (decompression bombs). */
  maxPixels: 40_000_000,
  /** A client with more than this queued skips live results instead of growing the server's memory. */
  maxQueuedBytes: 1024 * 1024,
  /** Frames of one session waiting to be described, beyond which `single_frame` is answered `busy`. */
  maxPendingFrames: 4,
  /** At most one rate-limit error a second per session (answering every message of a flood would be a flood). */
  rateErrorIntervalMs: 1000,
  /** Ping interval; a socket that did not answer the previous ping is dropped. */
  heartbeatMs: 30_000,
  /** A connection with a session's id takes the session over when its socket does not answer a ping this fast. */
  takeoverProbeMs: 2000,
  /** A session let go of its dead socket is closed when the connection that took it over does not arrive by then. */
  orphanMs: 10_000,
} as const;
