/**
 * Builds the gst-launch description of a source: capture/demux/decode, then (videorate +) videoscale + videoconvert
 * and caps filters so GStreamer delivers packed RGB at the configured size in C.
 */
import path from 'node:path';
import type { SourceSpec } from '../../config/graph.js';

export type SourceKind = 'file' | 'rtsp' | 'test' | 'v4l2';

export function sourceKind(uri: string): SourceKind {
  const scheme = uri.slice(0, uri.indexOf('://'));
  if (scheme === 'rtsps') return 'rtsp';
  if (scheme === 'file' || scheme === 'rtsp' || scheme === 'test' || scheme === 'v4l2') return scheme;
  throw new Error(`unsupported source URI "${uri}"; expected file://, rtsp://, test:// or v4l2://`);
}

/** Live sources deliver frames on their own clock: the latest frame wins and stale ones are dropped. */
export function isLive(spec: SourceSpec): boolean {
  return sourceKind(spec.uri) !== 'file' || spec.realtime;
}

/** `file://video.avi` and `file://dir/video.avi` are relative to the working directory; `file:///abs` is absolute. */
export function filePath(uri: string): string {
  const rest = decodeURIComponent(uri.slice('file://'.length).split('?')[0]);
  return path.resolve(rest);
}

/** Quotes a value for gst_parse_launch. */
function q(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const TEST_PROPS = /^[a-z][a-z0-9-]*$/;

function captureAndDecode(spec: SourceSpec): string {
  const kind = sourceKind(spec.uri);
  switch (kind) {
    case 'file':
      return `filesrc location=${q(filePath(spec.uri))} ! decodebin`;
    case 'rtsp':
      return `rtspsrc location=${q(spec.uri)} protocols=${spec.transport} latency=${spec.latency} drop-on-latency=true ! decodebin`;
    case 'v4l2': {
      const device = '/' + spec.uri.slice('v4l2://'.length).replace(/^\/+/, '');
      return `v4l2src device=${q(device)} ! decodebin`;
    }
    case 'test': {
      // test://ball?num-buffers=100 → videotestsrc pattern=ball num-buffers=100 is-live=true
      const u = new URL(spec.uri);
      const props = ['is-live=true'];
      if (u.hostname) props.push(`pattern=${q(u.hostname)}`);
      for (const [k, v] of u.searchParams) {
        if (!TEST_PROPS.test(k)) throw new Error(`invalid videotestsrc property "${k}" in ${spec.uri}`);
        props.push(`${k}=${q(v)}`);
      }
      return `videotestsrc ${props.join(' ')}`;
    }
  }
}

/**
 * `viewSide` > 0 adds the detector's view: the picture scaled a second time, to fit viewSide × viewSide (videoscale
 * keeps the aspect: 768×576 → 416×312), into its own appsink `view`, in C beside the full frame. With `fullFrames`
 * false the view is all that is converted; an appsink `size` keeps the newest decoded picture, unconverted, so the
 * frame's size can be read from it.
 */
export function launchDescription(spec: SourceSpec, viewSide = 0, fullFrames = true): string {
  const live = isLive(spec);
  const size = [spec.width && `width=${spec.width}`, spec.height && `height=${spec.height}`].filter(Boolean);
  // Scaled in the decoded format (I420: half the bytes of RGB), then converted at the smaller size. For 768×576
  // MPEG-4 to 640×360 RGB this costs 0.75 ms per frame, against 1.3 ms for videoconvertscale doing both at once.
  const scale = size.length ? ` ! videoscale ! video/x-raw,${size.join(',')},pixel-aspect-ratio=1/1` : '';
  const caps = ['video/x-raw', 'format=RGB'];
  if (spec.fps) caps.push(`framerate=${fraction(spec.fps)}`);
  const rgb = caps.join(',');
  const rate = spec.fps ? ' ! videorate drop-only=true' : '';
  const view = Number.isInteger(viewSide) && viewSide > 0;
  // Live: appsink keeps only the newest buffer, so a stalled consumer never builds latency inside GStreamer.
  // Offline: a small queue and no clock sync, so decoding runs as fast as the stages pull.
  // With a view, the sinks share the tee's streaming thread: a sink that waited to preroll would hold it before the
  // others ever got a buffer, so none waits (async=false).
  const sink = (name: string): string => `appsink name=${name} ${live
    ? `sync=${spec.realtime} max-buffers=1 drop=true`
    : 'sync=false max-buffers=2 drop=false'} enable-last-sample=false${view ? ' async=false' : ''}`;
  // videorate drops surplus frames before they are scaled and converted.
  const decoded = `${captureAndDecode(spec)}${rate}${scale}`;
  const frame = `videoconvert ! ${rgb} ! ${sink('sink')}`;
  if (!view) return `${decoded} ! ${frame}`;
  const scaled = `videoscale ! video/x-raw,width=[1,${viewSide}],height=[1,${viewSide}],pixel-aspect-ratio=1/1 `
    + `! videoconvert ! ${rgb} ! ${sink('view')}`;
  if (fullFrames) return `${decoded} ! tee name=split split. ! ${frame} split. ! ${scaled}`;
  // It is read only now and then, so it must not hold the end of the stream back from the view (wait-on-eos).
  const probe = 'appsink name=size sync=false max-buffers=1 drop=true enable-last-sample=false async=false wait-on-eos=false';
  return `${decoded} ! tee name=split split. ! ${probe} split. ! ${scaled}`;
}

function fraction(fps: number): string {
  return Number.isInteger(fps) ? `${fps}/1` : `${Math.round(fps * 1000)}/1000`;
}
