// JSON schemas of the request bodies (fastify validates them with Ajv before a handler runs) and the translation of
// Ajv's errors into one OpenAI-style message naming the field, what it expects and what it got.

import { MAX_BEAM_LENGTH, MAX_BEAM_WIDTH } from '../drafter/beam-search.js';

type Schema = Record<string, unknown>;

/** OpenAI's clients send null for an unset optional field; null is accepted wherever a field is optional. */
function nullable(schema: Schema): Schema {
  const type = schema['type'];
  if (typeof type === 'string') return { ...schema, type: [type, 'null'] };
  return { anyOf: [schema, { type: 'null' }] };
}

const number = (minimum: number, maximum: number): Schema => nullable({ type: 'number', minimum, maximum });
const integer = (minimum: number, maximum: number): Schema => nullable({ type: 'integer', minimum, maximum });

const stop = nullable({
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 16 }],
});

const speculative = {
  anyOf: [
    { const: 'auto' },
    { const: false },
    {
      type: 'object',
      required: ['beams', 'beam_length'],
      properties: {
        beams: { type: 'integer', minimum: 1, maximum: MAX_BEAM_WIDTH },
        beam_length: { type: 'integer', minimum: 2, maximum: MAX_BEAM_LENGTH },
      },
    },
    { type: 'null' },
  ],
};

/** Fields both generation endpoints take. Unknown fields are ignored (additionalProperties is left open). */
function samplingProperties(): Record<string, Schema> {
  return {
    model: nullable({ type: 'string' }),
    // 2^31 - 1: larger is certainly more than any context; the handler caps it by the context.
    max_tokens: integer(1, 2147483647),
    temperature: number(0, 100),
    top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
    top_k: integer(0, 2147483647),
    min_p: number(0, 1),
    // At least 0.01: a positive logit divided by a penalty near 0 overflows to +Infinity and sampling has no
    // distribution left (it was a 500 for 1e-300).
    repetition_penalty: number(0.01, 100),
    // OpenAI's ranges. Like llama-server, they look at the last 64 tokens, prompt and output.
    frequency_penalty: number(-2, 2),
    presence_penalty: number(-2, 2),
    // Token id (a JSON key, so a string of digits) → bias in OpenAI's -100..100; ids are checked by the handlers.
    logit_bias: nullable({
      type: 'object',
      propertyNames: { pattern: '^(0|[1-9][0-9]{0,9})$', description: 'token ids as keys (integers >= 0)' },
      additionalProperties: { type: 'number', minimum: -100, maximum: 100 },
      maxProperties: 1024,
    }),
    seed: integer(0, 4294967295),
    stop,
    stream: nullable({ type: 'boolean' }),
    stream_options: nullable({
      type: 'object',
      properties: { include_usage: nullable({ type: 'boolean' }), continuous_usage_stats: nullable({ type: 'boolean' }) },
    }),
    // vLLM's and llama-server's extension: EOS does not end the sequence (fixed output lengths for benchmarks).
    ignore_eos: nullable({ type: 'boolean' }),
    // vLLM's: the end tokens wait for this many tokens; more tokens that end the sequence (ids checked by handlers).
    min_tokens: integer(0, 2147483647),
    stop_token_ids: nullable({ type: 'array', maxItems: 64, items: { type: 'integer', minimum: 0 } }),
    // OpenAI's JSON mode and structured outputs (the schema itself is checked by the handler: compileJsonSchema).
    response_format: nullable({
      type: 'object',
      required: ['type'],
      properties: {
        type: { enum: ['text', 'json_object', 'json_schema'] },
        json_schema: nullable({
          type: 'object',
          properties: {
            name: { type: 'string', maxLength: 256 },
            description: { type: 'string' },
            schema: { type: ['object', 'boolean'] },
            strict: nullable({ type: 'boolean' }),
          },
        }),
      },
    }),
    // llama-server's: a JSON schema the output follows.
    json_schema: nullable({ type: ['object', 'boolean'] }),
    n: integer(1, 128),
    speculative,
  };
}

// Token ids are checked against the vocabulary by the handlers: the schemas exist before the model is loaded.
export function completionSchema(): Schema {
  return {
    type: 'object',
    required: ['prompt'],
    properties: {
      ...samplingProperties(),
      prompt: {
        anyOf: [
          { type: 'string', minLength: 1 },
          { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
          // A batch: one choice per prompt.
          { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
          { type: 'array', minItems: 1, items: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } } },
        ],
      },
      // 0 with echo scores the prompt alone.
      max_tokens: integer(0, 2147483647),
      logprobs: integer(0, 20),
      echo: nullable({ type: 'boolean' }),
    },
  };
}

export function chatSchema(): Schema {
  const textPart = { type: 'object', required: ['type', 'text'],
    properties: { type: { const: 'text' }, text: { type: 'string' } } };
  return {
    type: 'object',
    required: ['messages'],
    properties: {
      ...samplingProperties(),
      max_completion_tokens: integer(1, 2147483647),
      messages: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          required: ['role', 'content'],
          properties: {
            role: { type: 'string', minLength: 1 },
            content: { anyOf: [{ type: 'string' }, { type: 'array', items: textPart }] },
          },
        },
      },
      logprobs: nullable({ type: 'boolean' }),
      top_logprobs: integer(0, 20),
    },
  };
}

export function tokenizeSchema(): Schema {
  return {
    type: 'object',
    properties: {
      prompt: { type: 'string' },
      content: { type: 'string' },
      add_special: { type: 'boolean' },
      add_special_tokens: { type: 'boolean' },
    },
  };
}

export function detokenizeSchema(): Schema {
  return {
    type: 'object',
    required: ['tokens'],
    properties: { tokens: { type: 'array', items: { type: 'integer', minimum: 0 } } },
  };
}

/** The part of an Ajv error (with `verbose: true`) this module reads. */
export interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  /** Set when an object's key failed its propertyNames schema (the key). */
  propertyName?: string;
  parentSchema?: Schema;
  data?: unknown;
}

/** `/messages/0/role` → `messages[0].role`. */
export function fieldName(instancePath: string): string {
  let name = '';
  for (const part of instancePath.split('/').slice(1)) {
    name += /^\d+$/.test(part) ? `[${part}]` : name === '' ? part : `.${part}`;
  }
  return name;
}

/** Words for what a schema accepts, e.g. "a number in [0, 100] or null". */
export function describeSchema(schema: Schema | undefined): string {
  if (!schema) return 'a valid value';
  if (Array.isArray(schema['anyOf'])) return (schema['anyOf'] as Schema[]).map(describeSchema).join(' or ');
  if ('const' in schema) return JSON.stringify(schema['const']);
  if (Array.isArray(schema['enum'])) return `one of ${(schema['enum'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  const types = Array.isArray(schema['type']) ? schema['type'] as string[] : [schema['type'] as string];
  return types.map((type) => describeType(type, schema)).join(' or ');
}

function describeType(type: string, schema: Schema): string {
  switch (type) {
    case 'null': return 'null';
    case 'boolean': return 'a boolean';
    case 'string': return schema['minLength'] === 1 ? 'a non-empty string' : 'a string';
    case 'integer':
    case 'number': {
      const noun = type === 'integer' ? 'an integer' : 'a number';
      const low = schema['exclusiveMinimum'] !== undefined ? `(${String(schema['exclusiveMinimum'])}`
        : schema['minimum'] !== undefined ? `[${String(schema['minimum'])}` : undefined;
      const high = schema['maximum'] !== undefined ? `${String(schema['maximum'])}]` : undefined;
      return low && high ? `${noun} in ${low}, ${high}` : low ? `${noun} >= ${String(schema['minimum'])}` : noun;
    }
    case 'array': {
      const items = describeSchema(schema['items'] as Schema | undefined);
      const min = schema['minItems'] === 1 ? 'a non-empty array' : 'an array';
      const max = schema['maxItems'] !== undefined ? ` of at most ${String(schema['maxItems'])} items` : '';
      return `(${min}${max}, each item ${items})`;
    }
    case 'object': {
      const required = schema['required'] as string[] | undefined;
      return required?.length ? `an object with ${required.join(', ')}` : 'an object';
    }
    default: return type;
  }
}

/** A short JSON rendering of what the client sent. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  // JSON.parse turns 1e999 into Infinity, which JSON.stringify would print as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const json = JSON.stringify(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

/**
 * One message for a failed validation: the outermost failing field (an anyOf at a field explains it better than the
 * branch errors below it) with what its schema accepts and the value sent.
 */
export function validationMessage(errors: readonly AjvError[]): { param: string | null; message: string } {
  const missing = errors.find((e) => e.keyword === 'required');
  if (missing) {
    const parent = fieldName(missing.instancePath);
    const field = `${parent ? `${parent}.` : ''}${String(missing.params['missingProperty'])}`;
    return { param: field, message: `${field}: required, got nothing` };
  }
  const depth = (e: AjvError): number => e.instancePath.split('/').length;
  const shallowest = Math.min(...errors.map(depth));
  const top = errors.filter((e) => depth(e) === shallowest);
  const error = top.find((e) => e.keyword === 'anyOf') ?? top[0];
  if (!error) return { param: null, message: 'invalid request body' };
  const field = fieldName(error.instancePath) || 'body';
  const key = error.propertyName ?? (error.keyword === 'propertyNames' ? error.params['propertyName'] : undefined);
  if (typeof key === 'string') {
    // The failing keyword's schema is the propertyNames schema itself, or (keyword propertyNames) the object's.
    const names = error.parentSchema?.['propertyNames'] as Schema | undefined;
    const description = error.parentSchema?.['description'] ?? names?.['description'];
    return { param: field, message: `${field}: expected ${typeof description === 'string' ? description : 'other keys'}` +
      `, got the key ${describeValue(key)}` };
  }
  return {
    param: error.instancePath ? field : null,
    message: `${field}: expected ${describeSchema(error.parentSchema)}, got ${describeValue(error.data)}`,
  };
}
