/** Worker side of reconstruction: fuse depth views into a point cloud and write it as a GLB. */
import { defineOp } from '../protocol.js';
import { Accessor, Document, NodeIO, Primitive } from '@gltf-transform/core';
import { fuseViews, type ViewCloud } from '../image/point-cloud.js';
import type { ReconstructResult, ReconstructTask } from './reconstruct.protocol.js';

const io = new NodeIO();

export async function reconstruct(task: ReconstructTask): Promise<ReconstructResult> {
  const views = task.views.map((v) => ({ ...v, rgb: new Uint8Array(v.rgb) }));
  const models = [];
  for (const maxPoints of task.maxPoints) {
    const clouds = fuseViews(views, { fovDeg: task.fovDeg, maxPoints, relativeRange: task.relativeRange });
    const glb = await writeGlb(clouds);
    const numPoints = clouds.reduce((s, c) => s + c.positions.length / 3, 0);
    models.push({ glb: glb.buffer.slice(glb.byteOffset, glb.byteOffset + glb.byteLength) as ArrayBuffer, numPoints });
  }
  return { models, views: task.views };
}

/** One node and mesh per view, each a POINTS primitive with POSITION and COLOR_0 (linear RGB floats). */
export async function writeGlb(clouds: ViewCloud[]): Promise<Uint8Array> {
  const doc = new Document();
  doc.getRoot().getAsset().generator = 'Sightline';
  const buffer = doc.createBuffer();
  const scene = doc.createScene('reconstruction');
  const material = doc.createMaterial('points').setBaseColorFactor([1, 1, 1, 1]);
  for (const c of clouds) {
    if (c.positions.length === 0) continue;
    const position = doc.createAccessor(`${c.name}:position`).setType(Accessor.Type.VEC3).setArray(c.positions).setBuffer(buffer);
    const color = doc.createAccessor(`${c.name}:color`).setType(Accessor.Type.VEC3).setArray(c.colors).setBuffer(buffer);
    const prim = doc.createPrimitive().setMode(Primitive.Mode.POINTS).setMaterial(material)
      .setAttribute('POSITION', position).setAttribute('COLOR_0', color);
    const mesh = doc.createMesh(c.name).addPrimitive(prim);
    scene.addChild(doc.createNode(c.name).setMesh(mesh));
  }
  doc.getRoot().setDefaultScene(scene);
  return io.writeBinary(doc);
}

export const ops = [
  defineOp<ReconstructTask, ReconstructResult>({
    op: 'reconstruct', run: (t) => reconstruct(t),
    transfer: (r) => [...r.models.map((m) => m.glb), ...r.views.flatMap((v) => [v.rgb, v.depth.data])],
  }),
];
