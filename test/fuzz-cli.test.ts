// Seeded random flags and values for `pit train`, `pit eval`, `pit eval-gen`, `pit diffuse`, `pit sample` and `pit bench …`, parsed
// in-process by the real program (cli/program.ts): each parse either succeeds (the action is
// stopped before it runs) or is commander's error with exit code 1 and a message naming the
// flag or argument at fault. Never a stack trace, a TypeError or another exception.
import test from 'ava';
import { CommanderError, type Command } from 'commander';
import { rng } from './helpers.js';
import { Parsed, quietProgram } from './quiet-program.js';

const values = [
  '1', '0', '-1', '3', '64', '2.5', '1e3', '1e400', '-0', 'NaN', 'Infinity', '', ' ', 'abc', '0x10', '9007199254740993', '1000000000',
  '0.5', '1,2', '0.9,0.95', ',', 'f32', 'bf16', 'f32,bf16', 'cpu', 'cuda', 'gpu', 'auto', 'pit-t', 'vit-s/2', 'pit-d4w64h4', 'pit-x', 'vit-t/0',
  'mnist', 'cifar10', 'imagenet', 'learned', 'none', 'avg', '512MiB', '8GiB', '-5GiB', '--', '--lr', '/tmp/nowhere',
  'latents', 'dit-d4w64h4/1', 'dit-s/2', 'dit-l', 'sincos', 'ddpm', 'ddim', '0,1,2', '0.18215', 'classify,dit',
];

const commands: { argv: string[]; positional?: number }[] = [
  { argv: ['train'] }, { argv: ['eval'] }, { argv: ['eval-gen'] }, { argv: ['diffuse'] }, { argv: ['sample'] }, { argv: ['bench', 'kernels'] }, { argv: ['bench', 'train'] },
  { argv: ['bench', 'compare'], positional: 2 },
];

/**
 * A stack trace's frame line ("    at f (file:///…/x.js:1:2)", "    at node:internal/…:3:4"),
 * not a wrapped help line that happens to start with "at".
 */
const stackFrame = /^\s+at (?:.+ \()?(?:file:|node:|\/)\S*:\d+:\d+\)?$/m;

/** The long flags a command declares (without --help), plus ones it does not. */
function flagsOf(program: Command, argv: string[]): string[] {
  let c = program;
  for (const name of argv) c = c.commands.find((s) => s.name() === name)!;
  return [...c.options.map((o) => o.long!).filter(Boolean), '--bogus', '--no-such-flag'];
}

test('fuzz: 400 random pit train / eval / diffuse / sample / bench argument lists parse or exit 1 naming the flag, never crash', async (t) => {
  const random = rng(2024);
  const pick = <X>(xs: readonly X[]) => xs[Math.floor(random() * xs.length)]!;
  const counts = { cases: 0, parsed: 0, cleanErrors: 0, crashes: 0 };
  for (let i = 0; i < 400; i++) {
    const { program, output } = quietProgram();
    const command = pick(commands);
    const flags = flagsOf(program, command.argv);
    const argv = [...command.argv];
    for (let k = Math.floor(random() * 3); k > 0; k--) if (command.positional) argv.push(pick(values));
    for (let k = 1 + Math.floor(random() * 4); k > 0; k--) {
      argv.push(pick(flags));
      if (random() < 0.85) argv.push(pick(values));
    }
    counts.cases++;
    try {
      await program.parseAsync(argv, { from: 'user' });
      counts.parsed++; // a command without an action (none here) would end up here
    } catch (err) {
      if (err instanceof Parsed) counts.parsed++;
      else if (err instanceof CommanderError && err.exitCode === 1 && /'-{0,2}\w/.test(err.message) && !stackFrame.test(output.join(''))) counts.cleanErrors++;
      else {
        counts.crashes++;
        t.fail(`pit ${argv.join(' ')}: ${(err as Error).stack}\n${output.join('')}`);
      }
    }
  }
  t.log(`CLI fuzz: ${counts.cases} cases, ${counts.parsed} valid parses, ${counts.cleanErrors} clean errors, ${counts.crashes} crashes`);
  t.is(counts.crashes, 0);
  t.true(counts.parsed > 10 && counts.cleanErrors > 100, 'both outcomes are exercised');
});
