// What the live view draws over a frame, from the results that came with it: boxes, track ids, the counting line and
// totals, keypoints with their skeleton, and falls. Coordinates arrive in source pixels and are scaled to the canvas.
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#e6550d', '#8c564b', '#c2185b', '#00838f', '#5d4037', '#3949ab'];
/** COCO keypoint pairs joined by the skeleton. */
const SKELETON = [[5, 6], [5, 7], [7, 9], [6, 8], [8, 10], [5, 11], [6, 12], [11, 12], [11, 13], [13, 15], [12, 14], [14, 16], [0, 1], [0, 2], [1, 3], [2, 4]];

export const LAYERS = [
  { id: 'boxes', label: 'boxes' }, { id: 'ids', label: 'track ids' }, { id: 'line', label: 'line & counts' },
  { id: 'keypoints', label: 'keypoints' }, { id: 'faces', label: 'faces' }, { id: 'falls', label: 'falls' },
];

const colorOf = (id) => PALETTE[Math.abs(Number(id)) % PALETTE.length];

function tag(ctx, text, x, y, color, size) {
  ctx.font = `bold ${size}px sans-serif`;
  const w = ctx.measureText(text).width + 8;
  ctx.fillStyle = color;
  ctx.fillRect(x, y - size - 4, w, size + 4);
  ctx.fillStyle = '#fff';
  ctx.fillText(text, x + 4, y - 4);
}

/** Draws `r` over the picture already on `ctx` (canvas of `w` × `h`), for the layers switched on in `on`. */
export function drawResults(ctx, r, w, h, on) {
  const sx = w / r.width;
  const sy = h / r.height;
  const size = Math.max(11, Math.round(h / 36));
  ctx.lineWidth = Math.max(2, h / 300);
  const fallen = new Set((r.activities ?? []).filter((a) => a.fallen).map((a) => a.trackId));
  for (const t of r.tracks ?? []) {
    const [x1, y1, x2, y2] = [t.box[0] * sx, t.box[1] * sy, t.box[2] * sx, t.box[3] * sy];
    const isFallen = on.falls && fallen.has(t.id);
    if (on.boxes || isFallen) {
      ctx.strokeStyle = isFallen ? '#ff1744' : colorOf(t.id);
      ctx.lineWidth = Math.max(2, h / 300) * (isFallen ? 2.5 : 1);
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      ctx.lineWidth = Math.max(2, h / 300);
    }
    if (on.ids) tag(ctx, `${t.id}`, x1, y1, colorOf(t.id), size);
    if (isFallen) tag(ctx, 'FALL', x1, y2 + size + 4, '#ff1744', size);
  }
  if (on.boxes) {
    for (const d of r.detections ?? []) {
      ctx.strokeStyle = '#2f7ed8';
      ctx.strokeRect(d.box[0] * sx, d.box[1] * sy, (d.box[2] - d.box[0]) * sx, (d.box[3] - d.box[1]) * sy);
      if (on.ids) tag(ctx, `${d.label} ${d.score.toFixed(2)}`, d.box[0] * sx, d.box[1] * sy, '#2f7ed8', size);
    }
  }
  if (on.faces) {
    ctx.strokeStyle = '#ffffff';
    for (const f of r.faces ?? []) ctx.strokeRect(f.box[0] * sx, f.box[1] * sy, (f.box[2] - f.box[0]) * sx, (f.box[3] - f.box[1]) * sy);
  }
  if (on.keypoints) {
    for (const p of r.poses ?? []) {
      const color = p.trackId !== undefined ? colorOf(p.trackId) : '#00e5ff';
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      for (const [a, b] of SKELETON) {
        const ka = p.keypoints[a];
        const kb = p.keypoints[b];
        if (!ka || !kb || ka[2] < 0.2 || kb[2] < 0.2) continue;
        ctx.beginPath();
        ctx.moveTo(ka[0] * sx, ka[1] * sy);
        ctx.lineTo(kb[0] * sx, kb[1] * sy);
        ctx.stroke();
      }
      for (const k of p.keypoints) {
        if (k[2] < 0.2) continue;
        ctx.beginPath();
        ctx.arc(k[0] * sx, k[1] * sy, Math.max(2, h / 200), 0, Math.PI * 2);
        ctx.fill();
      }
    }
  }
  if (on.line && r.counting) {
    const [[ax, ay], [bx, by]] = r.counting.line;
    ctx.strokeStyle = '#ffd400';
    ctx.lineWidth = Math.max(3, h / 200);
    ctx.beginPath();
    ctx.moveTo(ax * sx, ay * sy);
    ctx.lineTo(bx * sx, by * sy);
    ctx.stroke();
    tag(ctx, `IN ${r.counting.in}   OUT ${r.counting.out}`, 8, size + 12, 'rgba(0,0,0,0.6)', size);
  }
}
