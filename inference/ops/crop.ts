/** The crop op: JPEG crops of regions of a frame (a track's best face), the frame's pixels handed back. */
import { defineOp } from '../protocol.js';
import type { CropResult, CropTask } from './crop.protocol.js';
import { encodeCrops } from './faces.js';

export const ops = [
  defineOp<CropTask, CropResult>({
    op: 'crop',
    run: async (t) => ({ crops: await encodeCrops(new Uint8Array(t.data), t.width, t.height, t.crops, t.quality), data: t.data }),
    transfer: (r) => [r.data, ...r.crops.map((c) => c.jpeg)],
  }),
];
