/** Reconstruction's fixed limits: the document's session parameters and what an image must look like. */

/** Defaults of the document's session parameters. */
export const SESSION_DEFAULTS = { max_images: 100, process_res: 504, num_max_points: 1_000_000 };
/** Their ranges (inclusive). */
export const SESSION_LIMITS = { max_images: [1, 1000], process_res: [32, 2048], num_max_points: [1, 10_000_000] } as const;

/** Images with more pixels than this are refused before their depth is estimated. */
export const MAX_PIXELS = 50_000_000;

/** What an image must start with to be worth decoding: JPEG, PNG, WebP, GIF, BMP. */
const IMAGE_MAGIC = [[0xff, 0xd8, 0xff], [0x89, 0x50, 0x4e, 0x47], [0x52, 0x49, 0x46, 0x46], [0x47, 0x49, 0x46, 0x38], [0x42, 0x4d]];
export const looksLikeImage = (b: Buffer): boolean => IMAGE_MAGIC.some((m) => b.length > m.length && m.every((x, i) => b[i] === x));
