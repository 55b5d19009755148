// tokenizer/: text <-> token ids. SentencePiece-style BPE (tokenizer.bin, GGUF "llama") and byte-level BPE
// (tokenizer.json, GGUF "gpt2"), chat templates.

export type { ChatMessage, ChatTemplateOptions, EncodeOptions, StreamingDecoder, Tokenizer } from './types.js';
export {
  createSentencePieceTokenizer,
  loadSentencePieceTokenizer,
  type SentencePieceOptions,
  type SentencePieceVocab,
} from './sentencepiece.js';
export { createByteLevelBpeTokenizer, type ByteBpeAddedToken, type ByteBpeVocab } from './byte-bpe.js';
export { renderChatTemplate, type RenderOptions } from './chat-template.js';
export { bytesToUnicode, compileOnigPattern, createPreTokenizer, type PreTokenizer } from './pretokenize.js';
export { loadHfTokenizer, tokenizerFromGgufVocab, tokenizerFromHf, type TokenizerSourceOptions } from './sources.js';
