// The commands the README shows run in a clone as they are written. `npx pit` in the
// package's own folder installed the clone into itself (re-running the install script and
// rebuilding both addons, ~3 minutes); the README uses `npm run pit -- …`, which runs the
// built CLI in place.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { pitProgram } from '../cli/program.js';
import { Parsed, quietProgram } from './quiet-program.js';

const root = (file: string) => fileURLToPath(new URL(`../../${file}`, import.meta.url));
const readme = readFileSync(root('README.md'), 'utf8');
const pkg = JSON.parse(readFileSync(root('package.json'), 'utf8'));

test('the README never runs npx pit, and npm run pit is the package\'s own bin', (t) => {
  t.false(/npx pit\b/.test(readme), 'npx pit in a clone installs the clone into itself');
  t.is(pkg.scripts.pit, `node ${pkg.bin.pit}`);
  t.is(pkg.scripts.start, `node ${pkg.bin.pit} train`);
});

test('every `npm run pit -- <command>` in the README names a command pit has', (t) => {
  const program = pitProgram();
  const shown = [...readme.matchAll(/npm run pit -- ((?:[a-z]+ ?)+)/g)].map((m) => m[1]!.trim().split(' '));
  t.true(shown.length >= 10);
  for (const words of shown) {
    const top = program.commands.find((c) => c.name() === words[0]);
    t.truthy(top, `pit ${words[0]}`);
    if (top!.commands.length) t.truthy(top!.commands.find((c) => c.name() === words[1]), `pit ${words.slice(0, 2).join(' ')}`);
  }
});

// Every flag and value the README shows parses as written (a renamed flag or a changed value
// grammar fails here, not in a user's terminal). `--help` lines print help and exit 0.
test('every `npm run pit -- …` line of the README parses with its flags and values', async (t) => {
  // In code blocks up to a comment; inline in prose up to the closing backtick.
  const lines = [...readme.matchAll(/npm run pit -- ([^`#\n]+)/g)].map((m) => m[1]!.trim());
  t.true(lines.length >= 10);
  for (const line of lines) {
    const { program, output } = quietProgram();
    try {
      await program.parseAsync(line.split(/\s+/), { from: 'user' });
      t.fail(`pit ${line}: ran past the parse`);
    } catch (err) {
      const ok = err instanceof Parsed || (err instanceof CommanderError && err.exitCode === 0);
      t.true(ok, `pit ${line}: ${(err as Error).message}\n${output.join('')}`);
    }
  }
});
