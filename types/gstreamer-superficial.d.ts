/** The part of gstreamer-superficial's API that Sightline uses (the package ships no types). */
declare module 'gstreamer-superficial' {
  export interface BusMessage {
    type: string;
    _src_element_name?: string;
    /** Set on error messages. */
    message?: string;
    /** Element path, set on error messages. */
    name?: string;
    [field: string]: unknown;
  }
  export interface Caps {
    name?: string;
    width?: number;
    height?: number;
    format?: string;
    framerate?: string;
    /** Presentation timestamp of the pulled buffer in ns (added by Sightline's patch of the binding). */
    pts?: number;
    [field: string]: unknown;
  }
  export interface AppSink {
    /**
     * Pulls one sample on a libuv thread; `buf` is null at EOS or when the pipeline stops. With `into` of exactly the
     * sample's size, the pixels are copied into it and `buf` is a view of it (Sightline's patch); else a new Buffer.
     */
    pull(cb: (buf: Buffer | null, caps: Caps) => void, into?: ArrayBuffer): void;
    [property: string]: unknown;
  }
  export class Pipeline {
    constructor(launch: string);
    play(): void;
    pause(): void;
    stop(): void;
    sendEOS(): void;
    findChild(name: string): AppSink | undefined;
    pollBus(cb: (msg: BusMessage) => void): void;
    queryPosition(): number;
    queryDuration(): number;
  }
  const gstreamer: { Pipeline: typeof Pipeline };
  export default gstreamer;
}
