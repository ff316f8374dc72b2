#!/usr/bin/env node
// `pit`: the command line. Each subcommand is a thin layer over the library (cli/program.ts).
import { pitProgram } from './program.js';

pitProgram().parseAsync(process.argv).catch((err: Error) => {
  console.error(`pit: ${err.message}`);
  process.exit(1);
});
