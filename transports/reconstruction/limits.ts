/** Reconstruction's fixed limits: the document's session parameters and what an image must look like. */

/** Defaults of the document's session parameters. */
export const SESSION_DEFAULTS = { max_images: 100, process_res: 504, num_max_points: 1_000_000 };
/** Their ranges (inclusive). */
export const SESSION_LIMITS = { max_images: [1, 1000], process_res: [32, 2048], num_max_points: [1, 10_000_000] } as const;

/** Images with more pixels than this are refused before their depth is estimated. */
export const MAX_PIXELS = 50_000_000;
