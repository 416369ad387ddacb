/**
 * Frees the height and width of an ONNX model's image input, in memory (the file is not touched). Detectors are often
 * exported with a fixed square input (YOLOX-Nano: 1×3×416×416) although every operator in them works at any size
 * that divides by their largest stride; a 16:9 camera letterboxed into that square wastes 44 % of the model's work on
 * padding. The rewritten model runs at the frame's own aspect (416×256 for 640×360: 6.8 ms instead of 10.9 ms).
 *
 * Only the declared shapes change: the first graph input's dims 2 and 3 and the outputs' dim 1 become symbolic, and
 * the shapes recorded for intermediate values (value_info) are dropped, since ONNX Runtime checks its own inference
 * against them. Whether the operators really take any size is the caller's to check (a fixed Reshape would fail at
 * the first run); sessions.ts probes the rewritten model at another size before using it.
 */
import { concat, delimited, reshapeValue, rewrite, symbolic } from './onnx-wire.js';

/** Returns the model with a free-size image input, or null when it does not look like an image model. */
export function withFreeInputSize(model: Uint8Array): Uint8Array | null {
  let patchedInput = false;
  try {
    const out = concat(rewrite(model, (f) => {
      if (f.no !== 7 || !f.body) return [f.raw];
      const graph = rewrite(f.body, (g) => {
        if (g.no === 13) return null; // value_info: recorded shapes of intermediate values
        if (g.no === 11 && g.body && !patchedInput) {
          patchedInput = true;
          return delimited(11, reshapeValue(g.body, (dims) => {
            if (dims.length !== 4) throw new Error('not an NCHW input');
            return dims.map((d, i) => (i === 2 ? symbolic('height') : i === 3 ? symbolic('width') : d));
          }));
        }
        if (g.no === 12 && g.body) return delimited(12, reshapeValue(g.body, (dims) => dims.map((d, i) => (i === 1 ? symbolic('anchors') : d))));
        return [g.raw];
      });
      return delimited(7, graph);
    }));
    return patchedInput ? out : null;
  } catch {
    return null;
  }
}
