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
  /** A readable form of one token for debugging/UI, e.g. "<0x0A>", " the", "<s>". */
  tokenPiece(id: number): string;
}

export interface EncodeOptions {
  readonly bos?: boolean;
  readonly eos?: boolean;
}

export interface StreamingDecoder {
  /** Adds one token and returns the text that is now complete (possibly ""). */
  push(id: number): string;
  /** Returns whatever is held back (incomplete UTF-8 becomes U+FFFD); the decoder can be used again afterwards. */
  flush(): string;
}
