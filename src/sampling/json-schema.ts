// JSON Schema to grammar (grammar.ts): the text of the values a schema accepts, so that constrained sampling emits
// only JSON that validates (OpenAI's response_format {"type": "json_schema"}, llama.cpp's json_schema field).
//
// Supported: type (one or a list), properties, required, additionalProperties (false, true or a schema), items,
// minItems, maxItems, minLength, maxLength, enum, const, anyOf, oneOf (as anyOf: exclusivity is not enforced),
// allOf of one schema, $ref to this document (#, #/$defs/…, #/definitions/…, any JSON pointer), boolean schemas, and
// format date, time, date-time and uuid. Annotations (title, description, default, examples, …) and keywords this
// module does not know are ignored, as JSON Schema says; keywords it knows and cannot enforce (pattern, minimum, …)
// are refused with an error that names them and where they are, rather than letting through text that would not
// validate.
//
// The text written follows llama.cpp's json-schema-to-grammar where a choice is open:
// - an object's properties come in the schema's order, each required one present, optional ones may be left out;
//   with `properties` and no additionalProperties no other key is allowed (an object schema without properties
//   allows any members);
// - numbers have at most 16 integer and 16 fraction digits and an exponent of at most 4 digits;
// - whitespace between tokens, and before and after the value, is nothing, one space, or one or two newlines and up
//   to 20 spaces or tabs of indentation.

import { GrammarBuilder, type Grammar, type GrammarSymbol } from './grammar.js';

/** A JSON Schema: an object of keywords, or true (anything) / false (nothing). */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

const MAX_INDENT = 20;
const MAX_INTEGER_DIGITS = 16;
const MAX_FRACTION_DIGITS = 16;
const MAX_EXPONENT_DIGITS = 4;
/** Bounds above this are refused (each step of a bounded count is a grammar rule). */
const MAX_COUNT = 1000;

const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$anchor', '$comment', 'default', 'examples',
  'deprecated', 'readOnly', 'writeOnly', 'contentMediaType', 'contentEncoding', '$defs', 'definitions', 'strict']);
const SUPPORTED = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems',
  'minLength', 'maxLength', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', 'format']);
const REFUSED = new Set(['pattern', 'patternProperties', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
  'multipleOf', 'uniqueItems', 'contains', 'minContains', 'maxContains', 'prefixItems', 'propertyNames',
  'minProperties', 'maxProperties', 'dependentRequired', 'dependentSchemas', 'dependencies', 'if', 'then', 'else',
  'not', 'unevaluatedProperties', 'unevaluatedItems', '$dynamicRef', '$recursiveRef']);
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'] as const;
type JsonType = (typeof TYPES)[number];
const FORMATS = ['date', 'time', 'date-time', 'uuid'];

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** An error in a schema: names the place (a JSON pointer) and the problem. */
export class JsonSchemaError extends RangeError {
  constructor(readonly pointer: string, problem: string) {
    super(`json schema at ${pointer}: ${problem}`);
    this.name = 'JsonSchemaError';
  }
}

/** Compiles a schema into the grammar of the JSON texts it accepts (surrounded by optional whitespace). */
export function compileJsonSchema(schema: unknown): Grammar {
  return new SchemaCompiler(schema).compile();
}

class SchemaCompiler {
  private readonly g = new GrammarBuilder();
  private readonly refs = new Map<string, GrammarSymbol>();
  private readonly shared = new Map<string, GrammarSymbol>();

  constructor(private readonly root: unknown) {}

  compile(): Grammar {
    const ws = this.ws();
    const value = this.schema(this.root, '#');
    try {
      return this.g.build(this.g.ruleOf('root', [[ws, value, ws]]));
    } catch (error) {
      // Left recursion: a $ref cycle that reads nothing (the rules are named by their pointers).
      throw new JsonSchemaError('#', (error as Error).message.replace(/^grammar: /, ''));
    }
  }

  /** A rule made once per key (the shared pieces: whitespace, strings, numbers, any value). */
  private once(key: string, make: (rule: GrammarSymbol) => GrammarSymbol[][]): GrammarSymbol {
    let rule = this.shared.get(key);
    if (rule === undefined) {
      rule = this.g.rule(key);
      this.shared.set(key, rule);
      this.g.define(rule, make(rule));
    }
    return rule;
  }

  /**
   * Whitespace as llama.cpp's json-schema grammars allow it: nothing, one space, or one or two newlines and an
   * indentation of up to MAX_INDENT spaces or tabs. Free whitespace lets a small model drift into runs of blank lines
   * and never write the value (measured on stories260K: 120 tokens of it with 24-byte runs allowed).
   */
  private ws(): GrammarSymbol {
    return this.once('ws', () => {
      const g = this.g;
      const indent = this.repeat('indent', [g.bytes((b) => b === 0x20 || b === 0x09)], 0, MAX_INDENT);
      const newline = g.literal('\n');
      return [[], g.literal(' '), [...newline, indent], [...newline, ...newline, indent]];
    });
  }

  /** `item` repeated min..max times (max ≤ MAX_COUNT), as a chain of rules. */
  private repeat(name: string, item: GrammarSymbol[], min: number, max: number): GrammarSymbol {
    let rest = this.g.ruleOf(`${name}-end`, [[]]);
    for (let k = max - 1; k >= 0; k--) {
      rest = this.g.ruleOf(`${name}-${k}`, k >= min ? [[], [...item, rest]] : [[...item, rest]]);
    }
    return rest;
  }

  private digit(): GrammarSymbol {
    return this.g.bytes((b) => b >= 0x30 && b <= 0x39);
  }

  /** One character of a JSON string (UTF-8 checked: a multi-byte character counts as one). */
  private char(): GrammarSymbol {
    return this.once('char', () => {
      const g = this.g;
      const cont = g.bytes((b) => b >= 0x80 && b <= 0xbf);
      const hex = g.bytes((b) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66));
      const escape = g.ruleOf('escape', [[g.bytes((b) => '"\\/bfnrt'.includes(String.fromCharCode(b)))],
        [...g.literal('u'), hex, hex, hex, hex]]);
      return [
        [g.bytes((b) => b >= 0x20 && b < 0x80 && b !== 0x22 && b !== 0x5c)],
        [g.bytes((b) => b >= 0xc2 && b <= 0xdf), cont],
        [g.bytes((b) => b >= 0xe0 && b <= 0xef), cont, cont],
        [g.bytes((b) => b >= 0xf0 && b <= 0xf4), cont, cont, cont],
        [...g.literal('\\'), escape],
      ];
    });
  }

  /** A JSON string of min..max characters (max Infinity: unbounded). */
  private string(min: number, max: number): GrammarSymbol {
    return this.once(`string-${min}-${max}`, () => {
      const quote = this.g.literal('"');
      const char = this.char();
      if (max === Infinity) {
        const tail = this.g.rule(`string-${min}-chars`);
        this.g.define(tail, [quote, [char, tail]]);
        return [[...quote, this.repeatExactly('string-min', [char], min), tail]];
      }
      return [[...quote, this.repeat(`string-${min}-${max}`, [char], min, max), ...quote]];
    });
  }

  /** `item` exactly n times. */
  private repeatExactly(name: string, item: GrammarSymbol[], n: number): GrammarSymbol {
    return this.repeat(`${name}-${n}`, item, n, n);
  }

  private integer(): GrammarSymbol {
    return this.once('integer', () => {
      const g = this.g;
      const natural = g.ruleOf('natural', [g.literal('0'),
        [g.bytes((b) => b >= 0x31 && b <= 0x39), this.repeat('integer-digits', [this.digit()], 0,
          MAX_INTEGER_DIGITS - 1)]]);
      return [[natural], [...g.literal('-'), natural]];
    });
  }

  private number(): GrammarSymbol {
    return this.once('number', () => {
      const g = this.g;
      const digit = this.digit();
      const fraction = g.ruleOf('fraction', [[], [...g.literal('.'), digit,
        this.repeat('fraction-digits', [digit], 0, MAX_FRACTION_DIGITS - 1)]]);
      const exponent = g.ruleOf('exponent', [[], [g.bytes((b) => b === 0x65 || b === 0x45),
        g.ruleOf('exponent-sign', [[], [g.bytes((b) => b === 0x2b || b === 0x2d)]]), digit,
        this.repeat('exponent-digits', [digit], 0, MAX_EXPONENT_DIGITS - 1)]]);
      return [[this.integer(), fraction, exponent]];
    });
  }

  /** Any JSON value (the schema true or {}). */
  private anyValue(): GrammarSymbol {
    const existing = this.shared.get('value');
    if (existing !== undefined) return existing;
    const g = this.g;
    const value = g.rule('value');
    this.shared.set('value', value);
    const ws = this.ws();
    const key = this.string(0, Infinity);
    const members = g.rule('object-members');
    g.define(members, [g.literal('}'), [...g.literal(','), ws, key, ws, ...g.literal(':'), ws, value, ws, members]]);
    const object = g.ruleOf('object', [[...g.literal('{'), ws, g.ruleOf('object-first', [g.literal('}'),
      [key, ws, ...g.literal(':'), ws, value, ws, members]])]]);
    const elements = g.rule('array-elements');
    g.define(elements, [g.literal(']'), [...g.literal(','), ws, value, ws, elements]]);
    const array = g.ruleOf('array', [[...g.literal('['), ws, g.ruleOf('array-first', [g.literal(']'),
      [value, ws, elements]])]]);
    g.define(value, [[object], [array], [key], [this.number()], g.literal('true'), g.literal('false'),
      g.literal('null')]);
    return value;
  }

  private count(schema: Record<string, unknown>, keyword: string, pointer: string): number | undefined {
    const value = schema[keyword];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
      throw new JsonSchemaError(pointer, `${keyword}: expected a non-negative integer, got ${JSON.stringify(value)}`);
    }
    if (value > MAX_COUNT) throw new JsonSchemaError(pointer, `${keyword}: at most ${MAX_COUNT} is supported, got ${value}`);
    return value;
  }

  /** The value a schema accepts; pointer: where it is in the document (for messages). */
  private schema(schema: unknown, pointer: string): GrammarSymbol {
    if (schema === true) return this.anyValue();
    if (schema === false) throw new JsonSchemaError(pointer, 'the schema false accepts no value');
    if (!isObject(schema)) {
      throw new JsonSchemaError(pointer, `expected a schema (an object or a boolean), got ${JSON.stringify(schema)}`);
    }
    for (const keyword of Object.keys(schema)) {
      if (REFUSED.has(keyword)) {
        throw new JsonSchemaError(pointer, `"${keyword}" is not supported (supported: ${[...SUPPORTED].join(', ')})`);
      }
    }
    const constraining = Object.keys(schema).filter((k) => SUPPORTED.has(k));
    // A type beside const or enum only restates it (pydantic writes both): the values are the text.
    const alone = (keyword: string): void => {
      const others = constraining.filter((k) => k !== keyword && !(k === 'type' && (keyword === 'const' ||
        keyword === 'enum')));
      if (others.length > 0) {
        throw new JsonSchemaError(pointer, `"${keyword}" beside ${others.map((k) => `"${k}"`).join(', ')} is not ` +
          `supported (put the other keywords inside each of its schemas)`);
      }
    };
    if (schema['$ref'] !== undefined) {
      alone('$ref');
      return this.ref(schema['$ref'], pointer);
    }
    for (const keyword of ['anyOf', 'oneOf', 'allOf']) {
      if (schema[keyword] === undefined) continue;
      alone(keyword);
      const list = schema[keyword];
      if (!Array.isArray(list) || list.length === 0) {
        throw new JsonSchemaError(pointer, `${keyword}: expected a non-empty array of schemas`);
      }
      if (keyword === 'allOf') {
        if (list.length > 1) {
          throw new JsonSchemaError(pointer, `allOf: only one schema is supported, got ${list.length}`);
        }
        return this.schema(list[0], `${pointer}/allOf/0`);
      }
      const alternatives = list.map((item, i) => [this.schema(item, `${pointer}/${keyword}/${i}`)]);
      return this.g.ruleOf(`${pointer}/${keyword}`, alternatives);
    }
    if (schema['const'] !== undefined) {
      alone('const');
      return this.g.ruleOf(`${pointer}/const`, [this.g.literal(JSON.stringify(schema['const']))]);
    }
    if (schema['enum'] !== undefined) {
      const values = schema['enum'];
      if (!Array.isArray(values) || values.length === 0) {
        throw new JsonSchemaError(pointer, 'enum: expected a non-empty array of values');
      }
      alone('enum');
      const literals = [...new Set(values.map((v) => JSON.stringify(v)))];
      return this.g.ruleOf(`${pointer}/enum`, literals.map((text) => this.g.literal(text)));
    }
    const types = this.types(schema, pointer);
    if (types === undefined) return this.anyValue();
    const alternatives = types.map((type) => [this.typed(type, schema, pointer)]);
    return alternatives.length === 1 ? alternatives[0][0] : this.g.ruleOf(`${pointer}/type`, alternatives);
  }

  /** The schema's types: stated, or read off its keywords; undefined: any value. */
  private types(schema: Record<string, unknown>, pointer: string): JsonType[] | undefined {
    const stated = schema['type'];
    if (stated === undefined) {
      if (['properties', 'additionalProperties', 'required'].some((k) => schema[k] !== undefined)) return ['object'];
      if (['items', 'minItems', 'maxItems'].some((k) => schema[k] !== undefined)) return ['array'];
      if (['minLength', 'maxLength', 'format'].some((k) => schema[k] !== undefined)) return ['string'];
      return undefined;
    }
    const list = Array.isArray(stated) ? stated : [stated];
    if (list.length === 0) throw new JsonSchemaError(pointer, 'type: expected a type or a non-empty list of types');
    for (const type of list) {
      if (!(TYPES as readonly unknown[]).includes(type)) {
        throw new JsonSchemaError(pointer, `type: expected one of ${TYPES.join(', ')}, got ${JSON.stringify(type)}`);
      }
    }
    return [...new Set(list as JsonType[])];
  }

  private typed(type: JsonType, schema: Record<string, unknown>, pointer: string): GrammarSymbol {
    const g = this.g;
    switch (type) {
      case 'null':
        return this.once('null', () => [g.literal('null')]);
      case 'boolean':
        return this.once('boolean', () => [g.literal('true'), g.literal('false')]);
      case 'integer':
        return this.integer();
      case 'number':
        return this.number();
      case 'string':
        return this.stringSchema(schema, pointer);
      case 'array':
        return this.array(schema, pointer);
      case 'object':
        return this.object(schema, pointer);
    }
  }

  private stringSchema(schema: Record<string, unknown>, pointer: string): GrammarSymbol {
    const format = schema['format'];
    if (format !== undefined) {
      if (typeof format !== 'string' || !FORMATS.includes(format)) {
        throw new JsonSchemaError(pointer, `format: ${JSON.stringify(format)} is not supported (supported: ` +
          `${FORMATS.join(', ')})`);
      }
      if (schema['minLength'] !== undefined || schema['maxLength'] !== undefined) {
        throw new JsonSchemaError(pointer, 'format beside minLength or maxLength is not supported');
      }
      return this.formatted(format);
    }
    const min = this.count(schema, 'minLength', pointer) ?? 0;
    const max = this.count(schema, 'maxLength', pointer) ?? Infinity;
    if (min > max) throw new JsonSchemaError(pointer, `minLength ${min} is above maxLength ${max}: no string fits`);
    return this.string(min, max);
  }

  /** The formats' texts, quoted (RFC 3339 dates and times, RFC 4122 UUIDs). */
  private formatted(format: string): GrammarSymbol {
    return this.once(`format-${format}`, () => {
      const g = this.g;
      const digit = this.digit();
      const range = (lo: string, hi: string): GrammarSymbol =>
        g.bytes((b) => b >= lo.charCodeAt(0) && b <= hi.charCodeAt(0));
      const quote = g.literal('"');
      const date = (): GrammarSymbol => this.once('date', () => [[digit, digit, digit, digit, ...g.literal('-'),
        g.ruleOf('month', [[range('0', '0'), range('1', '9')], [range('1', '1'), range('0', '2')]]),
        ...g.literal('-'),
        g.ruleOf('day', [[range('0', '0'), range('1', '9')], [range('1', '2'), digit], [range('3', '3'),
          range('0', '1')]])]]);
      const time = (): GrammarSymbol => this.once('time', () => {
        const hour = g.ruleOf('hour', [[range('0', '1'), digit], [range('2', '2'), range('0', '3')]]);
        const minute = [range('0', '5'), digit];
        return [[hour, ...g.literal(':'), ...minute, ...g.literal(':'), ...minute,
          g.ruleOf('time-fraction', [[], [...g.literal('.'), digit, this.repeat('time-digits', [digit], 0, 8)]]),
          g.ruleOf('time-offset', [g.literal('Z'), [g.bytes((b) => b === 0x2b || b === 0x2d), hour,
            ...g.literal(':'), ...minute]])]];
      });
      if (format === 'date') return [[...quote, date(), ...quote]];
      if (format === 'time') return [[...quote, time(), ...quote]];
      if (format === 'date-time') return [[...quote, date(), ...g.literal('T'), time(), ...quote]];
      const hex = g.bytes((b) => (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46));
      const hexes = (n: number): GrammarSymbol[] => Array.from({ length: n }, () => hex);
      const dash = g.literal('-');
      return [[...quote, ...hexes(8), ...dash, ...hexes(4), ...dash, ...hexes(4), ...dash, ...hexes(4), ...dash,
        ...hexes(12), ...quote]];
    });
  }

  private array(schema: Record<string, unknown>, pointer: string): GrammarSymbol {
    const g = this.g;
    const ws = this.ws();
    const items = schema['items'];
    if (Array.isArray(items)) {
      throw new JsonSchemaError(pointer, 'items: a list of schemas (tuple form) is not supported; give one schema');
    }
    const item = items === undefined ? this.anyValue() : this.schema(items, `${pointer}/items`);
    const min = this.count(schema, 'minItems', pointer) ?? 0;
    const max = this.count(schema, 'maxItems', pointer) ?? Infinity;
    if (min > max) throw new JsonSchemaError(pointer, `minItems ${min} is above maxItems ${max}: no array fits`);
    // after[k]: what follows k items (the closer once min are there, another item while fewer than max).
    const close = g.literal(']');
    const comma = [...g.literal(','), ws];
    const star = max === Infinity ? g.rule(`${pointer}/items-more`) : undefined;
    if (star !== undefined) g.define(star, [close, [...comma, item, ws, star]]);
    const firstStar = Math.max(min, 1);
    const after = (k: number): GrammarSymbol => {
      if (star !== undefined && k >= firstStar) return star;
      const alternatives: GrammarSymbol[][] = [];
      if (k >= min) alternatives.push(close);
      if (k < max) alternatives.push([...(k > 0 ? comma : []), item, ws, after(k + 1)]);
      return g.ruleOf(`${pointer}/items-${k}`, alternatives);
    };
    return g.ruleOf(pointer, [[...g.literal('['), ws, after(0)]]);
  }

  private object(schema: Record<string, unknown>, pointer: string): GrammarSymbol {
    const g = this.g;
    const ws = this.ws();
    const properties = schema['properties'] ?? {};
    if (!isObject(properties)) throw new JsonSchemaError(pointer, 'properties: expected an object of schemas');
    const names = Object.keys(properties);
    const requiredList = schema['required'] ?? [];
    if (!Array.isArray(requiredList) || requiredList.some((name) => typeof name !== 'string')) {
      throw new JsonSchemaError(pointer, 'required: expected an array of property names');
    }
    const required = new Set(requiredList as string[]);
    for (const name of required) {
      if (!names.includes(name)) {
        throw new JsonSchemaError(pointer, `required: "${name}" is not one of the properties ` +
          `(${names.map((n) => `"${n}"`).join(', ') || 'none'}); describe it under properties`);
      }
    }
    // Other members: none where properties are listed and additionalProperties is absent (llama.cpp's reading).
    const additional = schema['additionalProperties'] ?? (names.length > 0 ? false : true);
    const extra = additional === false ? undefined : this.schema(additional, `${pointer}/additionalProperties`);
    const comma = [...g.literal(','), ws];
    const close = g.literal('}');
    const member = (key: GrammarSymbol[], value: GrammarSymbol): GrammarSymbol[] =>
      [...key, ws, ...g.literal(':'), ws, value, ws];
    // rest(i, first): properties i.. may follow; first: no member written yet (no comma before the next).
    const memo = new Map<string, GrammarSymbol>();
    const values = new Map<number, GrammarSymbol>();
    const valueOf = (i: number): GrammarSymbol => {
      let value = values.get(i);
      if (value === undefined) {
        value = this.schema(properties[names[i]], `${pointer}/properties/${escapePointer(names[i])}`);
        values.set(i, value);
      }
      return value;
    };
    const extras = (first: boolean): GrammarSymbol => {
      const key = `extra-${first}`;
      const known = memo.get(key);
      if (known !== undefined) return known;
      const rule = g.rule(`${pointer}/additionalProperties${first ? '-first' : ''}`);
      memo.set(key, rule);
      const alternatives: GrammarSymbol[][] = [close];
      if (extra !== undefined) {
        alternatives.push([...(first ? [] : comma), ...member([this.string(0, Infinity)], extra), extras(false)]);
      }
      return g.define(rule, alternatives);
    };
    const rest = (i: number, first: boolean): GrammarSymbol => {
      if (i === names.length) return extras(first);
      const key = `${i}-${first}`;
      const known = memo.get(key);
      if (known !== undefined) return known;
      const name = names[i];
      const value = valueOf(i);
      const alternatives: GrammarSymbol[][] = [
        [...(first ? [] : comma), ...member(g.literal(JSON.stringify(name)), value), rest(i + 1, false)]];
      if (!required.has(name)) alternatives.push([rest(i + 1, first)]);
      const rule = g.ruleOf(`${pointer}/properties/${escapePointer(name)}${first ? '-first' : ''}`, alternatives);
      memo.set(key, rule);
      return rule;
    };
    return g.ruleOf(pointer, [[...g.literal('{'), ws, rest(0, true)]]);
  }

  /** A $ref inside this document: a rule per target, declared before it is compiled (recursive schemas). */
  private ref(ref: unknown, pointer: string): GrammarSymbol {
    if (typeof ref !== 'string' || !ref.startsWith('#')) {
      throw new JsonSchemaError(pointer, `$ref: only references inside the schema ("#", "#/$defs/…") are ` +
        `supported, got ${JSON.stringify(ref)}`);
    }
    const known = this.refs.get(ref);
    if (known !== undefined) return known;
    let target: unknown = this.root;
    const path = ref.slice(1);
    if (path !== '' && !path.startsWith('/')) {
      throw new JsonSchemaError(pointer, `$ref: ${JSON.stringify(ref)} is not a JSON pointer (anchors are not ` +
        'supported)');
    }
    for (const raw of path === '' ? [] : path.slice(1).split('/')) {
      const part = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
      const next = Array.isArray(target) ? target[Number(part)] : isObject(target) ? target[part] : undefined;
      if (next === undefined) throw new JsonSchemaError(pointer, `$ref: ${JSON.stringify(ref)} points at nothing`);
      target = next;
    }
    const rule = this.g.rule(ref);
    this.refs.set(ref, rule);
    this.g.define(rule, [[this.schema(target, ref)]]);
    return rule;
  }
}

function escapePointer(name: string): string {
  return name.replaceAll('~', '~0').replaceAll('/', '~1');
}
