// The tokenizer contract shared by every tokenizer kind (SentencePiece-style BPE now, byte-level BPE later).

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Token ids of `text`; BOS/EOS only when asked (both default to false). */
  encode(text: string, options?: EncodeOptions): number[];
  /**
   * The whole text as a user would see it: UTF-8 decoded, control tokens omitted, invalid bytes as U+FFFD. The
   * dummy-prefix space is dropped only right after BOS, so decoding a continuation separately and appending it gives
   * the same text as decoding everything at once.
   */
  decode(ids: readonly number[]): string;
  /** Incremental decoding for streaming output; never emits part of a UTF-8 sequence. */
  createDecoder(): StreamingDecoder;
  /**
   * The bytes token `id` adds to the output after other tokens (not right after BOS): UTF-8, possibly part of a
   * character; empty for control tokens. For constraints over the text (JSON mode). Do not modify.
   */
  tokenBytes(id: number): Uint8Array;
  /** A readable form of one token for debugging/UI, e.g. "<0x0A>", " the", "<s>". */
  tokenPiece(id: number): string;
  /**
   * Renders a conversation with the model's chat template (tokenizer_config.json `chat_template` or GGUF
   * `tokenizer.chat_template`); absent when the tokenizer has no template. Encode the result with `bos: false` when the
   * template writes the BOS token itself (most do), so it is not doubled.
   */
  applyChatTemplate?(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
  /** The Jinja source applyChatTemplate renders (present with it). */
  readonly chatTemplate?: string;
}

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface ChatTemplateOptions {
  /** End with the header of an assistant turn, so the model writes the reply (default true). */
  readonly addGenerationPrompt?: boolean;
  /** More variables for the template (e.g. `tools`, `date_string`). */
  readonly variables?: Readonly<Record<string, unknown>>;
}

export interface EncodeOptions {
  /**
   * Put the model's start-of-text tokens first. Byte-level BPE adds them only where the vocabulary's convention does
   * (Llama 3's <|begin_of_text|>; nothing for Qwen2), as Hugging Face's post-processor and llama.cpp's add_bos do.
   */
  readonly bos?: boolean;
  readonly eos?: boolean;
  /**
   * Recognise special (control) tokens written in the text, such as "<|im_start|>" or "<s>" / "</s>" in a rendered
   * chat template (default true, as Hugging Face's encode does; llama.cpp calls this parse_special). false encodes
   * them as text (as the SentencePiece library itself always does).
   */
  readonly special?: boolean;
}

export interface StreamingDecoder {
  /** Adds one token and returns the text that is now complete (possibly ""). */
  push(id: number): string;
  /** Returns whatever is held back (incomplete UTF-8 becomes U+FFFD); the decoder can be used again afterwards. */
  flush(): string;
}
