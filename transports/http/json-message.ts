/**
 * Client messages read defensively: size and nesting depth are bounded before JSON.parse sees the text, and values
 * are shown back to clients only through `preview` (bounded, never JSON.stringify of an arbitrary value, which a
 * 5000-deep array overflows).
 */
import type { RawData } from 'ws';

export type ParsedMessage =
  | { ok: true; value: unknown }
  | { ok: false; reason: 'binary' | 'too_large' | 'too_deep' | 'invalid_json' };

export interface MessageLimits {
  maxBytes: number;
  /** Deepest nesting of arrays and objects (the protocols' messages need 4 or 5). */
  maxDepth: number;
}

/** The nesting depth of a JSON text (strings skipped), counted without recursion; stops counting past `limit`. */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) { if (++depth > max) { max = depth; if (max > limit) return max; } }
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

export function parseMessage(raw: RawData | string, isBinary: boolean, limits: MessageLimits): ParsedMessage {
  if (isBinary) return { ok: false, reason: 'binary' };
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : Array.isArray(raw) ? raw.reduce((n, b) => n + b.length, 0) : raw.byteLength;
  if (size > limits.maxBytes) return { ok: false, reason: 'too_large' };
  const text = typeof raw === 'string' ? raw : Array.isArray(raw) ? Buffer.concat(raw).toString('utf8') : Buffer.from(raw as ArrayBuffer).toString('utf8');
  if (jsonDepth(text, limits.maxDepth) > limits.maxDepth) return { ok: false, reason: 'too_deep' };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, reason: 'invalid_json' };
  }
}

/** A short, safe rendering of any value for an error message (bounded length, no deep walk). */
export function preview(value: unknown, max = 64): string {
  let s: string;
  if (typeof value === 'string') s = JSON.stringify(value.length > max ? value.slice(0, max) : value);
  else if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean') s = String(value);
  else if (Array.isArray(value)) s = `an array of ${value.length}`;
  else s = typeof value === 'object' ? 'an object' : typeof value;
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
