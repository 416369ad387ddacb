/**
 * The code blocks of the protocol documents (docs/protocols/), read at test time: fenced blocks of Markdown and
 * `.. code-block::` directives of reStructuredText, each with its language, its text (dedented, as a reader would
 * copy it), the line it starts on and the section it sits in. Tests run these blocks as they are, so the documents
 * stay the single source of the client code they check.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const PROTOCOLS_DIR = path.resolve('docs/protocols');

export interface CodeBlock {
  /** The document's file name. */
  file: string;
  /** As the document names it (`javascript`, `python`, `json`…); empty when it names none. */
  lang: string;
  code: string;
  /** 1-based line of the block's first line of code. */
  line: number;
  /** The heading of the section the block is in. */
  heading: string;
  /** `<heading> #n`: the n-th block of its section (from 1), which names a block in test tables. */
  id: string;
}

/** Every code block of a document of docs/protocols, in order. */
export function codeBlocks(file: string): CodeBlock[] {
  const text = readFileSync(path.join(PROTOCOLS_DIR, file), 'utf8');
  const raw = file.endsWith('.rst') ? rstBlocks(text) : markdownBlocks(text);
  const seen = new Map<string, number>();
  return raw.map((b) => {
    const n = (seen.get(b.heading) ?? 0) + 1;
    seen.set(b.heading, n);
    return { ...b, file, id: `${b.heading} #${n}` };
  });
}

/** The blocks of a document in one of these languages (client code: what a reader runs). */
export function blocksIn(file: string, langs: readonly string[]): CodeBlock[] {
  return codeBlocks(file).filter((b) => langs.includes(b.lang));
}

/** The one block with this id; throws (naming the ids there are) when the document has none. */
export function block(file: string, id: string): CodeBlock {
  const all = codeBlocks(file);
  const found = all.find((b) => b.id === id);
  if (!found) throw new Error(`${file} has no code block "${id}"; it has: ${all.map((b) => b.id).join(' | ')}`);
  return found;
}

type Raw = Omit<CodeBlock, 'file' | 'id'>;

function markdownBlocks(text: string): Raw[] {
  const lines = text.split('\n');
  const out: Raw[] = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(\s*)(`{3,})\s*([\w+-]*)/.exec(lines[i]);
    if (!fence) {
      const h = /^#{1,6}\s+(.*\S)\s*$/.exec(lines[i]);
      if (h) heading = h[1];
      continue;
    }
    const [, indent, ticks, lang] = fence;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !new RegExp(`^\\s*${ticks}\\s*$`).test(lines[j]); j++) body.push(lines[j]);
    out.push({ lang: lang.toLowerCase(), code: dedent(body.map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l))), line: i + 2, heading });
    i = j;
  }
  return out;
}

function rstBlocks(text: string): Raw[] {
  const lines = text.split('\n');
  const out: Raw[] = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    // A section title is a line underlined by a run of one punctuation character at least as long.
    if (i + 1 < lines.length && lines[i].trim() && /^([=\-~^"'`#*+])\1+\s*$/.test(lines[i + 1]) && lines[i + 1].trim().length >= lines[i].trim().length) {
      heading = lines[i].trim();
      continue;
    }
    const directive = /^(\s*)\.\. code-block::\s*([\w+-]*)/.exec(lines[i]);
    if (!directive) continue;
    const indent = directive[1].length;
    let j = i + 1;
    // Options (":linenos:") and the blank line before the content.
    while (j < lines.length && /^\s+:[\w-]+:/.test(lines[j])) j++;
    const body: string[] = [];
    let first = -1;
    for (; j < lines.length; j++) {
      const l = lines[j];
      if (l.trim() && l.length - l.trimStart().length <= indent) break;
      if (first < 0 && l.trim()) first = j;
      if (first >= 0) body.push(l);
    }
    while (body.length && !body[body.length - 1].trim()) body.pop();
    out.push({ lang: directive[2].toLowerCase(), code: dedent(body), line: first + 1, heading });
    i = j - 1;
  }
  return out;
}

function dedent(lines: string[]): string {
  const widths = lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length);
  const cut = widths.length ? Math.min(...widths) : 0;
  return lines.map((l) => l.slice(cut)).join('\n');
}

/**
 * The block's code with each `[from, to]` replaced everywhere. Only addresses, tokens, session ids and file names are
 * ever replaced; each `from` must occur, so a document that changes its example fails here instead of silently
 * running something else.
 */
export function substitute(b: CodeBlock, pairs: [string, string][]): string {
  let code = b.code;
  for (const [from, to] of pairs) {
    if (!code.includes(from)) throw new Error(`${b.file}:${b.line} (${b.id}) does not contain ${JSON.stringify(from)}`);
    code = code.split(from).join(to);
  }
  return code;
}
