// The real `pit` program (cli/program.ts) for in-process parsing in tests: every command throws
// commander's error instead of exiting, writes nowhere, and stops with `Parsed` just before an
// action would run, so a test learns whether an argument list parses without running it.
import type { Command } from 'commander';
import { pitProgram } from '../cli/program.js';

export class Parsed extends Error {}

export function quietProgram(): { program: Command; output: string[] } {
  const output: string[] = [];
  const program = pitProgram();
  const quiet = (c: Command) => {
    c.exitOverride().configureOutput({ writeOut: (s) => output.push(s), writeErr: (s) => output.push(s) });
    c.commands.forEach(quiet);
  };
  quiet(program);
  program.hook('preAction', () => {
    throw new Parsed();
  });
  return { program, output };
}
