// Types for the dev-only dependency @agnai/sentencepiece-js (a WebAssembly build of Google's SentencePiece), used by
// sentencepiece-crosscheck.test.ts to compare our encoder with the real one. The package ships no declarations.
declare module '@agnai/sentencepiece-js' {
  export class SentencePieceProcessor {
    /** Loads a SentencePiece ModelProto from a file path. */
    load(path: string): Promise<void>;
    encodeIds(text: string): number[];
    encodePieces(text: string): string[];
  }
  const sentencepiece: { SentencePieceProcessor: typeof SentencePieceProcessor };
  export default sentencepiece;
}
