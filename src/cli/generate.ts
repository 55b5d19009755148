// `redrafter generate`: text or JSON output of one generation.

import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { generate, type GenerationStats, type ResponseFormat } from '../engine/generate.js';
import { compileJsonSchema, type JsonSchema } from '../sampling/index.js';
import type { SimdBuild } from '../kernels/index.js';
import { loadDrafter } from '../engine/load.js';
import type { AcceptanceRule } from '../engine/redrafter.js';
import { decodingMode, readTuning, writeTuning } from '../engine/tuning.js';
import { controllerState, prepareSpeculationController, speculationController } from '../engine/speculation.js';
import type { SpeculationController } from '../engine/controller.js';
import { defaultDrafterPath } from '../engine/default-model.js';
import { addModelOptions, drafterOptions, openModel, type ModelFlags } from './model-options.js';
import { acceptance, collect, decimal, format, idList, integer, logitBias } from './options.js';
import { shapesText } from './bench.js';

interface GenerateFlags extends ModelFlags {
  promptIds?: number[];
  maxTokens?: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
  penaltyWindow: number;
  logitBias?: Record<number, number>;
  responseFormat: 'text' | 'json_object';
  jsonSchema?: string;
  seed: number;
  stop: string[];
  format: 'text' | 'json';
  drafter?: string;
  beams?: number;
  beamLength?: number;
  acceptance: AcceptanceRule;
  chat?: boolean;
  system?: string;
}

/** --response-format, or --json-schema's file read and checked (before the model loads: a bad schema fails fast). */
function responseFormatOf(flags: GenerateFlags): ResponseFormat {
  if (flags.jsonSchema === undefined) return flags.responseFormat;
  if (flags.responseFormat !== 'text') {
    throw new Error(`--json-schema: cannot be combined with --response-format ${flags.responseFormat}`);
  }
  let schema: JsonSchema;
  try {
    schema = JSON.parse(readFileSync(flags.jsonSchema, 'utf8')) as JsonSchema;
  } catch (error) {
    throw new Error(`--json-schema: cannot read ${flags.jsonSchema} as JSON: ${(error as Error).message}`,
      { cause: error });
  }
  try {
    compileJsonSchema(schema);
  } catch (error) {
    throw new Error(`--json-schema ${flags.jsonSchema}: ${(error as Error).message}`, { cause: error });
  }
  return { type: 'json_schema', schema };
}

export function registerGenerate(program: Command): void {
  const command = program.command('generate')
    .description('generate text from a prompt')
    .argument('[prompt]', 'text prompt (encoded with BOS)');
  addModelOptions(command)
    .option('--prompt-ids <ids>', 'comma-separated prompt token ids, fed as they are (for models without tokenizer)',
      idList)
    .option('-n, --max-tokens <n>', 'most tokens to generate (default: until EOS or the context is full)', integer(0))
    .option('-t, --temperature <t>', 'sampling temperature; 0 = greedy', decimal(0, 100), 0)
    .option('--top-p <p>', 'nucleus sampling threshold', decimal(0, 1), 1)
    .option('--top-k <k>', 'keep the k most likely tokens; 0 = off', integer(0), 0)
    .option('--min-p <p>', 'drop tokens below p times the top probability', decimal(0, 1), 0)
    .option('--repetition-penalty <r>', 'divides (or multiplies) the logits of tokens in the penalty window',
      decimal(0.01, 100), 1)
    .option('--frequency-penalty <f>', 'subtracted from a token\'s logit per occurrence in the penalty window',
      decimal(-100, 100), 0)
    .option('--presence-penalty <p>', 'subtracted from the logit of every token in the penalty window',
      decimal(-100, 100), 0)
    .option('--penalty-window <n>', 'last tokens (prompt and output) the penalties look at; 0 = all', integer(0), 64)
    .option('--logit-bias <id=bias>', 'add BIAS to token ID\'s logit (repeatable; -inf bans it)', logitBias)
    .addOption(new Option('--response-format <kind>', 'json_object: only tokens that keep the output one JSON object ' +
      '(it ends only complete)').choices(['text', 'json_object']).default('text'))
    .option('--json-schema <file>', 'only tokens that keep the output a JSON value this JSON Schema accepts (the ' +
      'keywords supported: README)')
    .option('-s, --seed <s>', 'seed of the sampling random stream', integer(0, 0xffffffff), 0)
    .option('--stop <text>', 'stop before this string (repeatable)', collect, [])
    .option('--drafter <path>', 'ReDrafter drafter folder (Apple format), or "none" for autoregressive decoding ' +
      '(default: the shipped stories260K drafter when --model is not given, else none)')
    .option('-W, --beams <n>', 'ReDrafter beam width W of a fixed tree (default: the speculation controller picks ' +
      'each step\'s tree, or plain decoding, from measured costs and acceptance; with -L alone, 4)', integer(1, 64))
    .option('-L, --beam-length <n>', 'ReDrafter beam length L of a fixed tree, counting the LLM\'s own first token ' +
      '(with -W alone, 5)', integer(2, 16))
    .option('--acceptance <rule>', 'ReDrafter verification: exact (reproduces plain decoding) or apple', acceptance,
      'exact')
    .option('--chat', 'send PROMPT as a user message through the model\'s chat template')
    .option('--system <text>', 'with --chat: a system message first')
    .option('--format <format>', 'text (streamed) or json (one object)', format, 'text')
    .action(async (prompt: string | undefined, flags: GenerateFlags) => {
      if (prompt === undefined && !flags.promptIds) prompt = 'Once upon a time';
      const responseFormat = responseFormatOf(flags);
      const loaded = await openModel(flags);
      const vocab = loaded.model.config.vocabSize;
      const outside = Object.keys(flags.logitBias ?? {}).find((id) => Number(id) >= vocab);
      if (outside !== undefined) {
        await loaded.close();
        throw new Error(`--logit-bias: token id ${outside} is outside the model's vocabulary 0..${vocab - 1}`);
      }
      // The default model decodes with its shipped drafter unless told otherwise.
      const drafterPath = flags.drafter ?? (flags.model === undefined ? defaultDrafterPath() : undefined);
      const drafter = drafterPath && drafterPath !== 'none' ? loadDrafter(loaded, drafterPath, drafterOptions(flags)) : undefined;
      const fixed = flags.beams !== undefined || flags.beamLength !== undefined;
      const mode = decodingMode(flags.temperature);
      // Costs differ by backend: a WebGPU run keeps its own tuning entries.
      const modelKey = (flags.model ?? loaded.path) + (loaded.backend === 'webgpu' ? ' (webgpu)' : '');
      // No shape given: the controller, starting from what earlier runs here measured and saw (the tuning file).
      let controller: SpeculationController | undefined;
      if (drafter && !fixed) {
        const saved = readTuning(modelKey, drafter.path, loaded.kernels.threads, mode).controller;
        if (!saved && loaded.model.forwardSequencesAsync) await prepareSpeculationController(loaded, drafter);
        controller = speculationController(loaded, drafter, mode, saved).controller;
      }
      try {
        const generation = generate(loaded, {
          drafter, acceptance: flags.acceptance,
          ...(fixed ? { beams: flags.beams ?? 4, beamLength: flags.beamLength ?? 5 } : {}),
          prompt: flags.chat ? undefined : prompt, promptIds: flags.promptIds,
          messages: flags.chat && prompt !== undefined
            ? [...(flags.system ? [{ role: 'system', content: flags.system }] : []), { role: 'user', content: prompt }]
            : undefined, maxTokens: flags.maxTokens, temperature: flags.temperature,
          topP: flags.topP, topK: flags.topK, minP: flags.minP, repetitionPenalty: flags.repetitionPenalty,
          frequencyPenalty: flags.frequencyPenalty, presencePenalty: flags.presencePenalty,
          repetitionWindow: flags.penaltyWindow, logitBias: flags.logitBias, responseFormat,
          seed: flags.seed, stop: flags.stop,
        });
        const ids: number[] = [];
        let text = '';
        if (flags.format === 'text' && prompt !== undefined && !flags.promptIds && !flags.chat) process.stdout.write(prompt);
        for await (const chunk of generation) {
          ids.push(...chunk.ids);
          text += chunk.text;
          if (flags.format === 'text') process.stdout.write(chunk.text);
        }
        const { stats } = generation;
        // What the controller refined in this run is kept for the next one (a failed write only loses that).
        if (controller && drafter) {
          try {
            writeTuning(modelKey, drafter.path, loaded.kernels.threads, mode, { controller: controllerState(controller) });
          } catch (error) {
            process.stderr.write(`note: could not save the speculation controller's state: ${String(error)}\n`);
          }
        }
        if (flags.format === 'json') {
          const speculation: SpeculationReport | null = !drafter ? null : fixed
            ? { speculation: 'fixed', beams: flags.beams ?? 4, beamLength: flags.beamLength ?? 5, acceptance: flags.acceptance }
            : { speculation: 'auto', acceptance: flags.acceptance };
          process.stdout.write(JSON.stringify({
            promptIds: generation.promptIds, ids, text, finishReason: generation.finishReason,
            stats: statsJson(stats, loaded.kernels.threads, loaded.kernels.simd, speculation),
          }) + '\n');
        } else {
          process.stdout.write('\n');
          const perStep = stats.steps > 0 ? `, ${tokensPerStep(stats).toFixed(2)} tokens/step` : '';
          const shapes = stats.redrafter ? `, steps: ${shapesText(stats.redrafter.shapes)}` : '';
          process.stderr.write(`[${stats.tokens} tokens, ${stats.tokensPerSecond.toFixed(1)} tokens/s${perStep}${shapes}, ` +
            `${generation.finishReason}]\n`);
        }
      } finally {
        drafter?.dispose();
        await loaded.close();
      }
    });
}

/** Mean tokens committed per decoding step (the first token comes from the prompt forward, not a step). */
function tokensPerStep(stats: GenerationStats): number {
  const committed = stats.committedPerStep.reduce((a, b) => a + b, 0);
  return stats.steps > 0 ? committed / stats.steps : 0;
}

/** How the run speculated: a fixed tree, or the controller's choice per step (stats.redrafter.shapes says which). */
interface SpeculationReport {
  speculation: 'fixed' | 'auto';
  beams?: number;
  beamLength?: number;
  acceptance: AcceptanceRule;
}

function statsJson(stats: GenerationStats, threads: number, simd: SimdBuild, redrafter: SpeculationReport | null):
  Record<string, unknown> {
  const json: Record<string, unknown> = {
    tokens: stats.tokens, steps: stats.steps, tokensPerSecond: round(stats.tokensPerSecond),
    tokensPerStep: round(tokensPerStep(stats)), committedPerStep: stats.committedPerStep,
    promptTokens: stats.promptTokens, prefillSeconds: round(stats.prefillSeconds),
    decodeSeconds: round(stats.decodeSeconds), threads, simd,
  };
  if (redrafter && stats.redrafter) {
    const histogram: Record<string, number> = {};
    for (const count of stats.committedPerStep) histogram[count] = (histogram[count] ?? 0) + 1;
    json['redrafter'] = {
      ...redrafter,
      tokensPerStepHistogram: histogram,
      acceptedAtDepth: stats.redrafter.acceptedAtDepth,
      shapes: stats.redrafter.shapes,
      plainSeconds: round(stats.redrafter.plainSeconds),
      calibrationSeconds: round(stats.redrafter.calibrationSeconds ?? 0),
      draftSeconds: round(stats.redrafter.draftSeconds),
      verifySeconds: round(stats.redrafter.verifySeconds),
      bookkeepingSeconds: round(stats.redrafter.bookkeepingSeconds),
    };
  }
  return json;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
