// A recipe part's field table (lib/train/recipe-fields.ts) as commander options: each field's
// flag, help, parser and default come from the table, and only the flags the user typed go
// back into the recipe (defaults stay the library's, and a resume can tell what was asked).
import { Command, InvalidArgumentError, Option } from 'commander';
import { fieldKeys, obeys, ruleText, textProblem, type FieldRule, type RecipeField } from '../lib/index.js';

const countWords = ['zero', 'one', 'two', 'three', 'four'];
/** What a parser returns for a rule's nullWord: commander stores a parsed null as '', so null travels as this to typed(). */
const NULL_VALUE = Symbol('null');

/** A flag's text as the rule's value (null for its nullWord), or commander's InvalidArgumentError saying what the rule wants. */
export function ruleValue(rule: FieldRule, text: string): unknown {
  const nullWord = rule.kind === 'integer' ? rule.nullWord : undefined;
  if (nullWord !== undefined && text.trim() === nullWord) return null;
  const value = rule.kind === 'text' ? text : text.trim() === '' ? Number.NaN : Number(text);
  const problem = textProblem(rule, value);
  if (problem) throw new InvalidArgumentError(problem);
  if (!obeys(rule, value)) throw new InvalidArgumentError(`expected ${ruleText(rule, nullWord)}`);
  return value;
}

/** The rule as commander's parser, null as NULL_VALUE (commander parses booleans and choices itself). */
function parser(rule: FieldRule): ((value: string) => unknown) | null {
  if (rule.kind === 'boolean' || rule.kind === 'choice') return null;
  return (text: string) => ruleValue(rule, text) ?? NULL_VALUE;
}

/** `--betas <b1,b2>` → [b1, b2], each checked by the field's rule. */
function listParser(rule: FieldRule, defaults: unknown[]) {
  const one = parser(rule)!;
  const n = defaults.length;
  const expected = `expected ${countWords[n] ?? n} values separated by a comma, each ${ruleText(rule)}, e.g. ${defaults.join(',')}`;
  return (value: string): unknown[] => {
    const parts = value.split(',');
    if (parts.length !== n) throw new InvalidArgumentError(expected);
    try {
      return parts.map((p) => one(p.trim()));
    } catch {
      throw new InvalidArgumentError(expected);
    }
  };
}

/** The options of one field (two for a boolean: --x and --no-x). */
function fieldOptions<R>(field: RecipeField<R>, defaults: Readonly<R>): Option[] {
  const keys = fieldKeys(field);
  const values = keys.map((k) => defaults[k]);
  const help = field.defaultHelp ? `${field.help} (default: ${field.defaultHelp})` : field.help;
  const option = new Option(field.flag, help);
  if (field.rule.kind === 'boolean') {
    const negated = new Option(field.flag.replace(/^--/, '--no-'), `no ${field.help}`);
    return [option, negated];
  }
  if (field.rule.kind === 'choice') option.choices(field.rule.values);
  else if (keys.length > 1) option.argParser(listParser(field.rule, values));
  else {
    const parse = parser(field.rule);
    if (parse) option.argParser(parse);
  }
  if (!field.defaultHelp && values.every((v) => v !== null)) {
    if (keys.length > 1) option.default(values, values.join(','));  // as typed: --betas 0.9,0.95
    else option.default(values[0]);
  }
  return [option];
}

export interface RecipeFlags<R> {
  options: Option[];
  /** The recipe fields of the flags typed on the command line (none of the defaults). */
  typed(command: Command): Partial<R>;
}

/** Options for every field of `fields`, with `defaults` (the task's whole default recipe). */
export function recipeFlags<R>(fields: readonly RecipeField<R>[], defaults: Readonly<R>): RecipeFlags<R> {
  const byField = fields.map((field) => ({ field, options: fieldOptions(field, defaults) }));
  return {
    options: byField.flatMap((f) => f.options),
    typed(command) {
      const recipe: Record<string, unknown> = {};
      for (const { field, options } of byField) {
        const name = options[0]!.attributeName();
        if (command.getOptionValueSource(name) !== 'cli') continue;
        const given = command.getOptionValue(name);
        const value = given === NULL_VALUE ? null : given;
        const keys = fieldKeys(field);
        if (keys.length > 1) keys.forEach((k, i) => (recipe[k] = (value as unknown[])[i]));
        else recipe[keys[0]!] = value;
      }
      return recipe as Partial<R>;
    },
  };
}
