import test from 'ava';
import { startApp } from '../app/app.js';
import { graph, memoryLogger, testSettings } from './helpers.js';

// Terminating a worker thread inside a native ONNX Runtime call (a session still being created)
// aborts the process; stopping must let those calls finish first.
test('stopping the app while transport models are still loading ends cleanly', async (t) => {
  for (let i = 0; i < 3; i++) {
    const log = memoryLogger();
    const app = await startApp(graph(`
models:
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  embed: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
transports:
  ddfr: { port: 0, detector: faces, embedder: embed }
`), testSettings(), { log });
    await app.stop();
    t.false(log.lines.some((l) => /Terminating worker thread/.test(l)), log.lines.join('\n'));
  }
});
