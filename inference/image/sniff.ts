/** The formats of client images Sightline decodes, recognised by their magic bytes (no decoder involved). */

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff';

const starts = (b: Uint8Array, sig: number[], at = 0): boolean => b.length >= at + sig.length && sig.every((x, i) => b[at + i] === x);

/** The format of an encoded image by its magic bytes, or null for anything not accepted. */
export function sniffFormat(b: Uint8Array): ImageFormat | null {
  if (starts(b, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (starts(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (starts(b, [0x52, 0x49, 0x46, 0x46]) && starts(b, [0x57, 0x45, 0x42, 0x50], 8)) return 'webp';
  if (starts(b, [0x47, 0x49, 0x46, 0x38])) return 'gif';
  if (starts(b, [0x49, 0x49, 0x2a, 0x00]) || starts(b, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  return null;
}
