/**
 * Adds a column selection to a detector's output, in memory (the file is not touched): a Gather on the last axis of
 * the first graph output, with the columns to keep as a new int64 input. YOLOX-Nano answers 85 floats for each of
 * its 2,730 anchors at 416×320 (box, objectness and 80 class scores) where a stage that counts people reads 6.
 * ONNX Runtime's Node binding copies every output into a new ArrayBuffer, so the 79 unread columns were 0.9 MB of
 * garbage per frame in each worker, which V8 frees only when external memory pressure starts a collection: about
 * 30 MB held in each worker between collections, 35 MiB of the offline run's peak RSS.
 */
import { concat, delimited, fields, reshapeValue, rewrite, stringField, symbolic, varintField } from './onnx-wire.js';

/** The input that names the columns to keep (int64, any length; each index below the output's last dim). */
export const COLUMNS_INPUT = 'sightline_columns';
const SELECTED_OUTPUT = 'sightline_selected';
const ONNX_INT64 = 7;
const ATTRIBUTE_INT = 2;

/** Returns the model whose first output is [N, anchors, columns] selected by COLUMNS_INPUT, or null if not rank 3. */
export function withOutputColumns(model: Uint8Array): Uint8Array | null {
  let selected: string | null = null;
  try {
    const out = concat(rewrite(model, (f) => {
      if (f.no !== 7 || !f.body) return [f.raw];
      const graph = rewrite(f.body, (g) => {
        if (g.no === 11 && g.body && nameOf(g.body) === COLUMNS_INPUT) throw new Error('already selects columns');
        if (g.no !== 12 || !g.body || selected !== null) return [g.raw];
        selected = nameOf(g.body);
        const reshaped = concat(reshapeValue(g.body, (dims) => {
          if (dims.length !== 3) throw new Error('not a [N, anchors, columns] output');
          return [dims[0], dims[1], symbolic('columns')];
        }));
        return delimited(12, rewrite(reshaped, (v) => (v.no === 1 ? stringField(1, SELECTED_OUTPUT) : [v.raw])));
      });
      if (selected === null) throw new Error('no output');
      // Appended last, the node follows every node it reads from, as ONNX's topological order requires.
      const gather = delimited(1, [
        ...stringField(1, selected), ...stringField(1, COLUMNS_INPUT), ...stringField(2, SELECTED_OUTPUT),
        ...stringField(3, 'sightline_select_columns'), ...stringField(4, 'Gather'),
        ...delimited(5, [...stringField(1, 'axis'), varintField(3, 2), varintField(20, ATTRIBUTE_INT)]),
      ]);
      const columns = delimited(11, [
        ...stringField(1, COLUMNS_INPUT),
        ...delimited(2, delimited(1, [varintField(1, ONNX_INT64), ...delimited(2, [symbolic('columns')])])),
      ]);
      return delimited(7, [...graph, ...gather, ...columns]);
    }));
    return selected === null ? null : out;
  } catch {
    return null;
  }
}

/** ValueInfoProto.name. */
function nameOf(valueInfo: Uint8Array): string {
  const name = fields(valueInfo).find((f) => f.no === 1 && f.body);
  if (!name?.body) throw new Error('unnamed value');
  return new TextDecoder().decode(name.body);
}
