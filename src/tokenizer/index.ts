// tokenizer/: text <-> token ids. SentencePiece-style BPE over llama2.c tokenizer.bin vocabularies.

export type { EncodeOptions, StreamingDecoder, Tokenizer } from './types.js';
export {
  createSentencePieceTokenizer,
  loadSentencePieceTokenizer,
  type SentencePieceOptions,
  type SentencePieceVocab,
} from './sentencepiece.js';
