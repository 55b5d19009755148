// Chat templates: the Jinja templates of tokenizer_config.json / GGUF `tokenizer.chat_template`, rendered with
// @huggingface/jinja (the implementation transformers.js uses) and the variables transformers passes:
// `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, plus any the caller adds.

import { Template } from '@huggingface/jinja';
import type { ChatMessage, ChatTemplateOptions } from './types.js';

export interface RenderOptions extends ChatTemplateOptions {
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** File the template came from (for messages). */
  readonly origin?: string;
}

const cache = new Map<string, Template>();

/** Renders `template`; throws an Error naming the origin when there is no template or it fails to parse/render. */
export function renderChatTemplate(template: string | null, messages: readonly ChatMessage[], options: RenderOptions = {}): string {
  const origin = options.origin ?? 'tokenizer';
  if (template === null) throw new Error(`${origin}: the tokenizer has no chat template`);
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
