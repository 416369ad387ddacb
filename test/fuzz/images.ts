/**
 * Hostile image bytes for the fuzz suite, built in code (no files): headers that declare enormous sizes, a PNG
 * decompression bomb, SVGs with entities and deep nesting, truncated and mislabelled files, polyglots. Each comes with
 * what a careful server does with it. Plus small valid JPEG/PNG images for control requests.
 */
import { constants as zc, crc32, deflateRawSync, deflateSync } from 'node:zlib';
import { createCanvas } from '@napi-rs/canvas';
import { prng } from '../prng.js';
import { randomBytes } from './inputs.js';

export interface HostileImage {
  name: string;
  bytes: Buffer;
  /** What a careful server does: refuse it (an error answer, the server and the connection fine) or accept it. */
  expect: 'refuse' | 'accept';
  /** Why, in a few words, for a test's failure message. */
  why: string;
  /** True when a lenient decoder may decode the part that is there: either answer is right, so long as one comes. */
  mayDecode?: true;
  /** The size the header declares, where it declares one. */
  declared?: { width: number; height: number };
}

// ---------------------------------------------------------------------------------------------------------------
// Valid images (control requests, and templates for the patched ones)
// ---------------------------------------------------------------------------------------------------------------

/** A deterministic picture: a gradient with a few blocks, so encoders produce ordinary, non-trivial data. */
function drawn(width: number, height: number) {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const g = ctx.createLinearGradient(0, 0, width, height);
  g.addColorStop(0, '#204080');
  g.addColorStop(1, '#e0c060');
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = '#f0f0f0';
  ctx.fillRect(width * 0.2, height * 0.2, width * 0.25, height * 0.5);
  ctx.fillStyle = '#101010';
  ctx.fillRect(width * 0.6, height * 0.3, width * 0.2, height * 0.4);
  return canvas;
}

/** A small valid baseline JPEG (64×48 by default). */
export const validJpeg = (width = 64, height = 48, quality = 80): Buffer => drawn(width, height).encodeSync('jpeg', quality);
/** A small valid PNG (64×48 by default). */
export const validPng = (width = 64, height = 48): Buffer => drawn(width, height).encodeSync('png');

let controls: { jpeg: Buffer; png: Buffer } | undefined;
/** One 64×48 JPEG and PNG, made once, for control requests that must succeed. */
export function validImages(): { jpeg: Buffer; png: Buffer } {
  controls ??= { jpeg: validJpeg(), png: validPng() };
  return controls;
}

// ---------------------------------------------------------------------------------------------------------------
// PNG
// ---------------------------------------------------------------------------------------------------------------

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One PNG chunk with its CRC (over type and data, as the format says). */
export function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** A PNG from an IHDR (8-bit, colour type 0 = grey by default) and ready-made IDAT data. */
export function pngFrom(width: number, height: number, idat: Buffer, colorType = 0, bitDepth = 8): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.writeUInt8(bitDepth, 8);
  ihdr.writeUInt8(colorType, 9);
  // compression 0, filter 0, interlace 0
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A PNG whose IHDR declares 50000×50000 with correct CRCs; the IDAT holds one grey row only. */
export const pngHugeDims = (width = 50_000, height = 50_000): Buffer => pngFrom(width, height, deflateSync(Buffer.alloc(width + 1)));

/**
 * A zlib stream of `n` zero bytes, made without ever holding them: raw deflate pieces of 1 MiB ended with a sync
 * flush (so none is final and no match reaches into another piece) are concatenated, then a final empty block, and
 * the Adler-32 of n zeros, which is known in closed form (a stays 1, b = n mod 65521).
 */
export function zerosZlib(n: number): Buffer {
  const PIECE = 1 << 20;
  const piece = (len: number) => deflateRawSync(Buffer.alloc(len), { level: 9, finishFlush: zc.Z_SYNC_FLUSH });
  const full = piece(PIECE);
  const parts: Buffer[] = [Buffer.from([0x78, 0xda])];
  for (let i = 0; i < Math.floor(n / PIECE); i++) parts.push(full);
  if (n % PIECE) parts.push(piece(n % PIECE));
  parts.push(Buffer.from([0x03, 0x00])); // a final fixed-Huffman block holding only end-of-block
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE(((n % 65521) * 65536 + 1) >>> 0, 0);
  parts.push(adler);
  return Buffer.concat(parts);
}

/**
 * A decompression bomb: a side×side 8-bit grey PNG, all zeros. At 10000 (the default) the file is about 100 KB and
 * inflates to 100 MB (one filter byte per row plus the pixels); 100 Mpx also exceeds any sane pixel limit.
 */
export const pngBomb = (side = 10_000): Buffer => pngFrom(side, side, zerosZlib(side * (side + 1)));

// ---------------------------------------------------------------------------------------------------------------
// GIF, JPEG, BMP, TIFF, HEIF/AVIF, WebP, SVG, PDF
// ---------------------------------------------------------------------------------------------------------------

/** A 43-byte GIF89a whose logical screen and only image declare width×height; the LZW data is one pixel's. */
export function gifHugeDims(width = 20_000, height = 20_000): Buffer {
  const b = Buffer.alloc(43);
  let o = b.write('GIF89a', 0, 'latin1');
  o = b.writeUInt16LE(width, o);
  o = b.writeUInt16LE(height, o);
  o = b.writeUInt8(0x80, o); // global colour table of 2 entries
  o += 2; // background colour, aspect ratio
  o += Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff, 0xff]).copy(b, o);
  o += Buffer.from([0x21, 0xf9, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]).copy(b, o); // graphic control extension
  o = b.writeUInt8(0x2c, o); // image descriptor at 0,0
  o += 4;
  o = b.writeUInt16LE(width, o);
  o = b.writeUInt16LE(height, o);
  o += 1; // no local colour table
  // LZW minimum code size 2, one sub-block: clear, index 0, end of information; then the block terminator and trailer.
  Buffer.from([0x02, 0x02, 0x44, 0x01, 0x00, 0x3b]).copy(b, o);
  return b;
}

/** Offset of the first SOFn segment of a JPEG (its length field), or -1. Walks the marker segments. */
export function jpegSofOffset(jpeg: Buffer): number {
  let i = 2;
  while (i + 4 <= jpeg.length && jpeg[i] === 0xff) {
    const marker = jpeg[i + 1];
    if (marker === 0xff) { i++; continue; } // fill byte
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return i + 2;
    if (marker === 0xd9 || marker === 0xda) return -1;
    i += 2 + jpeg.readUInt16BE(i + 2);
  }
  return -1;
}

/** A real small JPEG with its SOF dimensions patched (65500×65500 by default; the scan data stays 8×8's). */
export function jpegWithDims(width = 65_500, height = 65_500, template = validJpeg(8, 8)): Buffer {
  const b = Buffer.from(template);
  const sof = jpegSofOffset(b);
  if (sof < 0) throw new Error('the template JPEG has no SOF segment');
  b.writeUInt16BE(height, sof + 3); // after length (2) and precision (1)
  b.writeUInt16BE(width, sof + 5);
  return b;
}

/** A BMP file header and BITMAPINFOHEADER declaring width×height at 24 bits, and no pixels. */
export function bmpHugeDims(width = 100_000, height = 100_000): Buffer {
  const b = Buffer.alloc(54);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(54, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(width, 18);
  b.writeInt32LE(height, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  return b;
}

/** A little-endian TIFF whose only IFD declares width×height, one strip far past the end of the file. */
export function tiffHugeDims(width = 100_000, height = 100_000): Buffer {
  const LONG = 4;
  const SHORT = 3;
  const entries: [number, number, number][] = [
    [256, LONG, width], [257, LONG, height], [258, SHORT, 8], [259, SHORT, 1], [262, SHORT, 1],
    [273, LONG, 0xffffff00], [277, SHORT, 1], [278, LONG, height], [279, LONG, 0xffffffff],
  ];
  const b = Buffer.alloc(8 + 2 + entries.length * 12 + 4);
  b.write('II', 0, 'latin1');
  b.writeUInt16LE(42, 2);
  b.writeUInt32LE(8, 4);
  b.writeUInt16LE(entries.length, 8);
  entries.forEach(([tag, type, value], i) => {
    const o = 10 + i * 12;
    b.writeUInt16LE(tag, o);
    b.writeUInt16LE(type, o + 2);
    b.writeUInt32LE(1, o + 4);
    if (type === SHORT) b.writeUInt16LE(value, o + 8); else b.writeUInt32LE(value, o + 8);
  });
  return b; // next IFD offset: 0
}

/** An ISO-BMFF `ftyp` box (HEIF `heic` or AVIF `avif`) and a `meta` box that claims 4 GB and stops. */
export function isoBmffHeader(brand: 'heic' | 'avif' = 'heic'): Buffer {
  const ftyp = Buffer.alloc(24);
  ftyp.writeUInt32BE(24, 0);
  ftyp.write(`ftyp${brand}`, 4, 'latin1');
  ftyp.write(`mif1${brand === 'heic' ? 'heic' : 'miaf'}`, 16, 'latin1');
  const meta = Buffer.alloc(12);
  meta.writeUInt32BE(0xfffffff0, 0);
  meta.write('meta', 4, 'latin1');
  return Buffer.concat([ftyp, meta]);
}

/** A WebP RIFF with a VP8X chunk whose canvas is 16777216×16777216 (the format's most), and no image data. */
export function webpHugeCanvas(width = 1 << 24, height = 1 << 24): Buffer {
  const b = Buffer.alloc(30);
  b.write('RIFF', 0, 'latin1');
  b.writeUInt32LE(22, 4);
  b.write('WEBPVP8X', 8, 'latin1');
  b.writeUInt32LE(10, 16);
  b.writeUIntLE(width - 1, 24, 3); // flags (1) and reserved (3) stay 0
  b.writeUIntLE(height - 1, 27, 3);
  return b;
}

const SVG_NS = 'xmlns="http://www.w3.org/2000/svg"';
/** About 107 bytes declaring a 100000×100000 canvas (10 Gpx at 4 bytes each, if rasterised). */
export const svgHugeDims = (): Buffer => Buffer.from(`<svg ${SVG_NS} width="100000" height="100000"><rect width="100%" height="100%"/></svg>`);
/** `depth` nested groups around one rectangle. */
export const svgNested = (depth = 5000): Buffer =>
  Buffer.from(`<svg ${SVG_NS} width="64" height="48">${'<g>'.repeat(depth)}<rect width="8" height="8"/>${'</g>'.repeat(depth)}</svg>`);
/** An external entity and xlink:href to local files (and a loopback URL): nothing may be read or fetched. */
export const svgExternalRefs = (): Buffer => Buffer.from([
  '<?xml version="1.0"?>',
  '<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
  `<svg ${SVG_NS} xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="48">`,
  '<text x="0" y="20">&xxe;</text>',
  '<image xlink:href="file:///etc/passwd" width="64" height="48"/>',
  '<image href="http://127.0.0.1:1/x.png" width="1" height="1"/>',
  '</svg>',
].join('\n'));
/** Billion laughs: ten levels of ten entity references (10^9 "lol"s, if expanded). */
export function svgBillionLaughs(): Buffer {
  const ents = ['<!ENTITY lol0 "lol">'];
  for (let i = 1; i < 10; i++) ents.push(`<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`);
  return Buffer.from(`<?xml version="1.0"?>\n<!DOCTYPE svg [${ents.join('')}]>\n<svg ${SVG_NS} width="64" height="48"><text y="20">&lol9;</text></svg>`);
}

export const pdfHeader = (): Buffer =>
  Buffer.from('%PDF-1.7\n%\u00e2\u00e3\u00cf\u00d3\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n', 'latin1');

/** JPEG magic (SOI, APP0 marker) followed by an SVG: sniffers and decoders disagree on what it is. */
export const jpegSvgPolyglot = (): Buffer => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), svgHugeDims()]);

// ---------------------------------------------------------------------------------------------------------------
// Reading back what a header declares (for tests, and to check the builders)
// ---------------------------------------------------------------------------------------------------------------

/** The format and size a file's header declares (PNG, GIF, JPEG, BMP, WebP VP8X), or undefined. */
export function declaredSize(b: Buffer): { format: string; width: number; height: number } | undefined {
  if (b.length >= 24 && b.subarray(0, 8).equals(PNG_SIGNATURE)) return { format: 'png', width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  if (b.length >= 10 && b.toString('latin1', 0, 3) === 'GIF') return { format: 'gif', width: b.readUInt16LE(6), height: b.readUInt16LE(8) };
  if (b.length >= 26 && b.toString('latin1', 0, 2) === 'BM') return { format: 'bmp', width: b.readInt32LE(18), height: Math.abs(b.readInt32LE(22)) };
  if (b.length >= 30 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 16) === 'WEBPVP8X') {
    return { format: 'webp', width: b.readUIntLE(24, 3) + 1, height: b.readUIntLE(27, 3) + 1 };
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    const sof = jpegSofOffset(b);
    if (sof >= 0 && sof + 7 <= b.length) return { format: 'jpeg', width: b.readUInt16BE(sof + 5), height: b.readUInt16BE(sof + 3) };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------------------------------------------

/** Cuts of a real image at several lengths: inside the headers (nothing to decode) and inside the data. */
function truncations(format: 'jpeg' | 'png', whole: Buffer): HostileImage[] {
  const headerEnd = format === 'jpeg' ? whole.indexOf(Buffer.from([0xff, 0xda])) : whole.indexOf(Buffer.from('IDAT', 'latin1'));
  const inHeaders = [2, 8, 20, Math.max(24, headerEnd - 2)].filter((n, i, all) => n < headerEnd && all.indexOf(n) === i);
  return [
    ...inHeaders.map((n): HostileImage => ({ name: `${format}-truncated-${n}`, bytes: whole.subarray(0, n), expect: 'refuse', why: 'cut inside the headers' })),
    ...[0.5, 0.8].map((f): HostileImage => ({
      name: `${format}-truncated-${Math.round(f * 100)}pct`, bytes: whole.subarray(0, Math.floor(whole.length * f)), expect: 'refuse',
      why: 'cut inside the image data', mayDecode: true,
    })),
  ];
}

export interface HostileImageOptions {
  /** Include the PNG decompression bomb (default true). */
  bomb?: boolean;
  /** Its side in pixels (default 10000: about 100 KB inflating to 100 MB). */
  bombSide?: number;
  /** Seed of the random-bytes cases (default 1). */
  seed?: number;
}

/** Every hostile image, and the two 64×48 controls (`expect: 'accept'`), in a fixed order. */
export function hostileImages(opts: HostileImageOptions = {}): HostileImage[] {
  const rng = prng(opts.seed ?? 1);
  const { jpeg, png } = validImages();
  const sized = (name: string, bytes: Buffer, why: string): HostileImage => {
    const d = declaredSize(bytes);
    return { name, bytes, expect: 'refuse', why, ...(d ? { declared: { width: d.width, height: d.height } } : {}) };
  };
  const list: HostileImage[] = [
    { name: 'control-jpeg', bytes: jpeg, expect: 'accept', why: 'a valid 64x48 baseline JPEG', declared: { width: 64, height: 48 } },
    { name: 'control-png', bytes: png, expect: 'accept', why: 'a valid 64x48 PNG', declared: { width: 64, height: 48 } },
    {
      name: 'svg-huge-dims', bytes: svgHugeDims(), expect: 'refuse', why: 'SVG (not JPEG/PNG) declaring 100000x100000',
      declared: { width: 100_000, height: 100_000 },
    },
    { name: 'svg-nested-5000', bytes: svgNested(5000), expect: 'refuse', why: 'SVG with 5000 nested <g>: recursion in a renderer' },
    { name: 'svg-external-refs', bytes: svgExternalRefs(), expect: 'refuse', why: 'SVG with an external entity and xlink:href to file:///etc/passwd' },
    { name: 'svg-billion-laughs', bytes: svgBillionLaughs(), expect: 'refuse', why: 'SVG whose entities expand to 10^9 strings' },
    sized('gif-huge-dims', gifHugeDims(), '43-byte GIF declaring 20000x20000 (400 Mpx)'),
    sized('png-huge-dims', pngHugeDims(), 'PNG IHDR declaring 50000x50000 with correct CRCs'),
    sized('png-zero-dims', pngFrom(0, 0, deflateSync(Buffer.alloc(1))), 'PNG IHDR declaring 0x0'),
    { ...sized('png-bad-crc', (() => { const b = Buffer.from(png); b[29] ^= 0xff; return b; })(), 'valid PNG with a corrupt IHDR CRC'), mayDecode: true },
    sized('jpeg-huge-dims', jpegWithDims(), 'JPEG SOF0 declaring 65500x65500 (4.3 Gpx)'),
    // Few pixels but an extreme aspect ratio: resizing it to a model's input gives a zero-sized side.
    { ...sized('jpeg-strip', jpegWithDims(1, 65_500), 'JPEG SOF0 declaring 1x65500 (scan data of 8x8)'), mayDecode: true },
    sized('jpeg-zero-dims', jpegWithDims(0, 0), 'JPEG SOF0 declaring 0x0'),
    {
      name: 'jpeg-garbage-after-soi', bytes: Buffer.concat([Buffer.from([0xff, 0xd8]), randomBytes(rng, 1024)]), expect: 'refuse',
      why: 'SOI then random bytes',
    },
    ...truncations('jpeg', jpeg),
    ...truncations('png', png),
    { name: 'random-bytes', bytes: randomBytes(rng, 4096), expect: 'refuse', why: '4 KiB of noise' },
    { name: 'empty', bytes: Buffer.alloc(0), expect: 'refuse', why: 'no bytes' },
    { name: 'one-byte', bytes: Buffer.from([0xff]), expect: 'refuse', why: 'a single 0xFF' },
    { name: 'soi-only', bytes: Buffer.from([0xff, 0xd8]), expect: 'refuse', why: 'JPEG SOI and nothing else' },
    sized('bmp-huge-dims', bmpHugeDims(), 'BMP declaring 100000x100000, no pixels'),
    {
      name: 'tiff-huge-dims', bytes: tiffHugeDims(), expect: 'refuse', why: 'TIFF declaring 100000x100000, strip past the end',
      declared: { width: 100_000, height: 100_000 },
    },
    { name: 'heif-ftyp', bytes: isoBmffHeader('heic'), expect: 'refuse', why: 'HEIF ftyp and a meta box claiming 4 GB' },
    { name: 'avif-ftyp', bytes: isoBmffHeader('avif'), expect: 'refuse', why: 'AVIF ftyp and a meta box claiming 4 GB' },
    sized('webp-huge-canvas', webpHugeCanvas(), 'WebP VP8X canvas 16777216x16777216, no image data'),
    { name: 'pdf', bytes: pdfHeader(), expect: 'refuse', why: 'a PDF, not an image' },
    { name: 'jpeg-svg-polyglot', bytes: jpegSvgPolyglot(), expect: 'refuse', why: 'JPEG magic followed by an SVG' },
  ];
  if (opts.bomb ?? true) {
    const side = opts.bombSide ?? 10_000;
    list.push(sized('png-bomb', pngBomb(side), `${side}x${side} grey PNG, all zeros: ~${Math.round(side * (side + 1) / 1e6)} MB inflated`));
  }
  return list;
}

/** The images a test should see refused, by name. */
export const refusedImages = (opts: HostileImageOptions = {}): HostileImage[] => hostileImages(opts).filter((i) => i.expect === 'refuse');
