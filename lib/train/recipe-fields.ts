// A recipe part is a table of fields: for each one its recipe key, its `pit` flag, its help
// line and the rule its value obeys. The one table checks a recipe (errors name the field) and
// gives the CLI its flags, parsers and defaults, so the two cannot drift apart.

/** What a field's value must be. */
export type FieldRule =
  /** nullWord: what the flag takes for null ('inf' for an unbounded distance); without it null has no flag value. */
  | { kind: 'integer'; min: number; max?: number; nullable?: boolean; nullWord?: string }
  /** A number in [min, max) (or [min, max] with maxClosed); max defaults to Infinity. */
  | { kind: 'number'; min: number; max?: number; maxClosed?: boolean }
  | { kind: 'choice'; values: readonly string[] }
  | { kind: 'boolean' }
  /**
   * Free text (a folder, a model name); `check` narrows it, throwing an error that says what is
   * wrong with the value; `expected` says in words what it must be.
   */
  | { kind: 'text'; nullable?: boolean; check?: (value: string) => void; expected?: string };

export interface RecipeField<R> {
  /**
   * The recipe key the flag sets; several keys make one flag of comma-separated values, one per
   * key, each obeying the rule (`--betas 0.9,0.95` → beta1, beta2).
   */
  key: (keyof R & string) | readonly (keyof R & string)[];
  /** Commander's syntax: '--lr <lr>'; a boolean's flag takes no value and gets a --no- twin. */
  flag: string;
  help: string;
  rule: FieldRule;
  /** Said in --help instead of the default when the default depends on other fields. */
  defaultHelp?: string;
}

/** One part of a recipe: its fields with their defaults, and the checks that span fields. */
export interface RecipePart<P> {
  readonly defaults: Readonly<P>;
  readonly fields: readonly RecipeField<P>[];
  /** Checks across fields, run after every field's own rule (use failField to throw). */
  check?(recipe: Readonly<P>): void;
}

/** Throws the recipe error that names `key`, what it must be and what it is. */
export function failField(recipe: object, key: string, expected: string): never {
  const value = (recipe as Record<string, unknown>)[key];
  // JSON writes Infinity and NaN as null, which would hide what was given.
  const shown = typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value);
  throw new RangeError(`recipe: '${key}' must be ${expected}, got ${shown}`);
}

export const fieldKeys = <R>(field: RecipeField<R>): readonly (keyof R & string)[] => (typeof field.key === 'string' ? [field.key] : field.key);

const quoted = (values: readonly string[]) => values.map((v) => JSON.stringify(v)).join(', ').replace(/, ([^,]*)$/, ' or $1');

/**
 * What a value obeying `rule` is, in words: 'an integer ≥ 1 or null', 'a number in [0, 1)';
 * `nullWord` names null as a flag takes it ('inf').
 */
export function ruleText(rule: FieldRule, nullWord = 'null'): string {
  switch (rule.kind) {
    case 'integer': return `an integer ${rule.max === undefined ? `≥ ${rule.min}` : `in [${rule.min}, ${rule.max}]`}${rule.nullable ? ` or ${nullWord}` : ''}`;
    case 'number': return `a number in [${rule.min}, ${rule.max === undefined ? '∞' : rule.max}${rule.maxClosed ? ']' : ')'}`;
    case 'choice': return quoted(rule.values);
    case 'boolean': return 'true or false';
    case 'text': return `${rule.expected ?? 'a string'}${rule.nullable ? ` or ${nullWord}` : ''}`;
  }
}

/** What a text rule's check says is wrong with `value` (its error's message), or null. */
export function textProblem(rule: FieldRule, value: unknown): string | null {
  if (rule.kind !== 'text' || !rule.check || typeof value !== 'string') return null;
  try {
    rule.check(value);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Whether `value` obeys `rule`. */
export function obeys(rule: FieldRule, value: unknown): boolean {
  switch (rule.kind) {
    case 'integer': return (rule.nullable && value === null) || (typeof value === 'number' && Number.isInteger(value) && value >= rule.min && value <= (rule.max ?? Infinity));
    case 'number': {
      const max = rule.max ?? Infinity;
      return typeof value === 'number' && value >= rule.min && (rule.maxClosed ? value <= max : value < max);
    }
    case 'choice': return typeof value === 'string' && rule.values.includes(value);
    case 'boolean': return typeof value === 'boolean';
    case 'text': return (rule.nullable && value === null) || (typeof value === 'string' && textProblem(rule, value) === null);
  }
}

/** Checks every field of `part` in `recipe` by its rule, then the part's own check. */
export function checkPart<P>(part: RecipePart<P>, recipe: Readonly<P>): void {
  for (const field of part.fields)
    for (const key of fieldKeys(field)) {
      const problem = textProblem(field.rule, recipe[key]);
      if (problem) throw new RangeError(`recipe: '${key}': ${problem}`);
      if (!obeys(field.rule, recipe[key])) failField(recipe, key, ruleText(field.rule));
    }
  part.check?.(recipe);
}
