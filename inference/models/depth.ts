/**
 * Monocular depth models by kind: what the graph's `kind` says about a model's input and output, so a
 * model can be swapped by configuration. The stage and the reconstruction handle both output meanings.
 */

/** `metric`: depth in metres, larger is farther. `inverse-relative`: affine-invariant inverse depth (disparity), larger is nearer. */
export type DepthOutput = 'metric' | 'inverse-relative';

export interface DepthModelSpec {
  output: DepthOutput;
  /** Fixed input size (the whole image is stretched to it). */
  width: number;
  height: number;
  /** Per-channel RGB normalisation of 0–1 values: (x - mean) / std. */
  mean: [number, number, number];
  std: [number, number, number];
}

const IMAGENET = { mean: [0.485, 0.456, 0.406] as [number, number, number], std: [0.229, 0.224, 0.225] as [number, number, number] };
const PLAIN = { mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };

export const DEPTH_MODELS = {
  /** FastDepth (NYU Depth v2): metres, fixed 224×224, RGB 0–1 without mean/std. */
  fastdepth: { output: 'metric', width: 224, height: 224, ...PLAIN },
  /** MiDaS v2.1 small exports: relative inverse depth, 256×256, ImageNet normalisation. */
  midas: { output: 'inverse-relative', width: 256, height: 256, ...IMAGENET },
  /** Depth Anything (v1/v2) relative exports: inverse depth, 518×518, ImageNet normalisation. */
  'depth-anything': { output: 'inverse-relative', width: 518, height: 518, ...IMAGENET },
} satisfies Record<string, DepthModelSpec>;

export type DepthModelKind = keyof typeof DEPTH_MODELS;
export const DEPTH_MODEL_KINDS = Object.keys(DEPTH_MODELS) as DepthModelKind[];

export function depthModelSpec(kind: string): DepthModelSpec {
  const spec = (DEPTH_MODELS as Record<string, DepthModelSpec>)[kind];
  if (!spec) throw new Error(`"${kind}" is not a depth model kind; expected one of ${DEPTH_MODEL_KINDS.join(', ')}`);
  return spec;
}
