/**
 * Fan-out to many WebSocket clients without letting a slow one hurt the others: each message is
 * serialised once and the same buffer is queued on every socket; a client whose socket is backed up
 * skips droppable messages (counted), and one that is hopelessly stuck is disconnected so its queue
 * can never grow without bound.
 */
import type { WebSocket } from 'ws';

export interface BroadcastLimits {
  /** Above this many queued bytes a client skips droppable messages (e.g. video frames). */
  dropAboveBytes: number;
  /** Above this many queued bytes a client is disconnected (close 1008). */
  closeAboveBytes: number;
}

export interface BroadcastResult { sent: number; dropped: number; closed: number }

export function broadcast(clients: Iterable<WebSocket>, payload: string | Buffer, droppable: boolean, limits: BroadcastLimits): BroadcastResult {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const result: BroadcastResult = { sent: 0, dropped: 0, closed: 0 };
  for (const ws of clients) {
    if (ws.readyState !== ws.OPEN) continue;
    if (ws.bufferedAmount > limits.closeAboveBytes) {
      ws.close(1008, 'client is not reading');
      ws.terminate();
      result.closed++;
      continue;
    }
    if (droppable && ws.bufferedAmount > limits.dropAboveBytes) {
      result.dropped++;
      continue;
    }
    // binary:false sends the pre-encoded UTF-8 bytes as a text frame, without re-encoding per client.
    ws.send(data, { binary: false });
    result.sent++;
  }
  return result;
}
