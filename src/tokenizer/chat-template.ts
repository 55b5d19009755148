// Chat templates: the Jinja templates of tokenizer_config.json / GGUF `tokenizer.chat_template`, rendered with
// @huggingface/jinja (the implementation transformers.js uses) and the variables transformers passes:
// `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, plus any the caller adds.

import { Template } from '@huggingface/jinja';
import type { ChatMessage, ChatTemplateOptions, Tokenizer } from './types.js';

export interface RenderOptions extends ChatTemplateOptions {
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** File the template came from (for messages). */
  readonly origin?: string;
}

const cache = new Map<string, Template>();

/** The template compiled (cached), or an Error naming `origin` when it does not parse. */
function compile(template: string, origin: string): Template {
  let compiled = cache.get(template);
  if (compiled === undefined) {
    try {
      compiled = new Template(template);
    } catch (err) {
      throw new Error(`${origin}: chat template does not parse: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (cache.size > 16) cache.clear();
    cache.set(template, compiled);
  }
  return compiled;
}

/** Throws an Error naming `origin` when `template` does not parse (a template given at load fails there). */
export function checkChatTemplate(template: string, origin: string): void {
  compile(template, origin);
}

/**
 * `tokenizer` rendering conversations with `template` (a GGUF file's `tokenizer.chat_template`, or one given instead
 * of the tokenizer's own: --chat-template), its BOS / EOS pieces as bos_token / eos_token. Parsed when first rendered.
 */
export function withChatTemplate(tokenizer: Tokenizer, template: string, origin: string): Tokenizer {
  return {
    ...tokenizer,
    chatTemplate: template,
    applyChatTemplate: (messages, options = {}) => renderChatTemplate(template, messages, { ...options,
      bosToken: tokenizer.tokenPiece(tokenizer.bosId), eosToken: tokenizer.tokenPiece(tokenizer.eosId), origin }),
  };
}

/** Renders `template`; throws an Error naming the origin when there is no template or it fails to parse/render. */
export function renderChatTemplate(template: string | null, messages: readonly ChatMessage[], options: RenderOptions = {}): string {
  const origin = options.origin ?? 'tokenizer';
  if (template === null) throw new Error(`${origin}: the tokenizer has no chat template`);
  const compiled = compile(template, origin);
  try {
    return compiled.render({
      bos_token: options.bosToken ?? '',
      eos_token: options.eosToken ?? '',
      ...options.variables,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: options.addGenerationPrompt ?? true,
    });
  } catch (err) {
    throw new Error(`${origin}: chat template failed to render: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
