/**
 * The long fuzz run: the same campaign as the test (test/fuzz/campaign.ts) against the default graph in a child
 * process, `--scale` times the inputs (default 8: over 100,000), then a table per class of input: inputs, answers,
 * findings, time; and the RSS at the start and at the peak.
 *
 *   node dist/bench/fuzz.js [--scale 8] [--seed 1]
 */
import { parseArgs } from 'node:util';
import { Campaign, startTarget } from '../test/fuzz/campaign.js';
import { table } from './report.js';

const { values } = parseArgs({ options: { scale: { type: 'string', default: '8' }, seed: { type: 'string', default: '1' } } });
const target = await startTarget();
try {
  const campaign = new Campaign(target, { seed: Number(values.seed), scale: Number(values.scale), rssFactor: 1.5, log: (l) => console.log(l) });
  const r = await campaign.runAll();
  table('fuzz campaign', ['class', 'inputs', 'answered', 'findings', 'seconds'],
    r.batches.map((b) => [b.name, b.inputs, b.answered, b.errors, (b.ms / 1000).toFixed(1)]));
  console.log(`\n${r.inputs} inputs, ${r.findings.length} findings, server ${target.exited ? `EXITED ${JSON.stringify(target.exited)}` : 'alive'}`);
  console.log(`RSS: ${r.rssStartMiB.toFixed(0)} MiB at the start, ${r.rssPeakMiB.toFixed(0)} MiB at the peak (${(r.rssPeakMiB / r.rssStartMiB).toFixed(2)}×)`);
  for (const f of r.findings.slice(0, 50)) console.log(`  ${f.batch}: ${f.problem} — ${f.input.slice(0, 200)}`);
  process.exitCode = r.findings.length || target.exited ? 1 : 0;
} finally {
  await target.stop();
}
